"""STOMP 1.2 header escaping: ``\\r``, ``\\n``, ``\\c`` (colon) and ``\\\\``.

CONNECT and CONNECTED frames are exempt (1.2 keeps them readable by 1.0 peers), so their
header text is taken and written as is; :func:`check_unescaped` refuses text that would
then break the frame.
"""

from __future__ import annotations

from buzon.errors import ErrorCode, FrameError, LocalProtocolError
from buzon.stomp.frame import Command

UNESCAPED_COMMANDS = frozenset({Command.CONNECT, Command.CONNECTED})
"""Commands whose headers are neither escaped nor unescaped."""

_ESCAPES = str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"})
_UNESCAPES = {"r": "\r", "n": "\n", "c": ":", "\\": "\\"}


def escape(text: str) -> str:
    """Escape a header name or value for any frame but CONNECT and CONNECTED.

    Args:
        text: the raw text.

    Returns:
        ``text`` itself when nothing needs escaping (the usual case, checked first because
        ``in`` is several times faster than ``translate``), else the escaped copy.
    """
    if "\\" in text or ":" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def unescape(text: str) -> str:
    """Undo :func:`escape`.

    Works with ``split`` and ``replace`` so a line full of escapes costs C-speed work, not
    a Python loop per backslash: splitting on ``\\\\`` first leaves every remaining
    backslash followed by the character it escapes.

    Args:
        text: a header name or value as received.

    Returns:
        The unescaped text.

    Raises:
        FrameError: ``BAD_ESCAPE`` for a backslash followed by anything but ``r``, ``n``,
            ``c`` or a backslash, or at the very end.
    """
    if "\\" not in text:
        return text
    pieces = text.split("\\\\")
    for index, piece in enumerate(pieces):
        if "\\" in piece:
            piece = piece.replace("\\n", "\n").replace("\\r", "\r").replace("\\c", ":")
            bad = piece.find("\\")
            if bad >= 0:
                raise FrameError(ErrorCode.BAD_ESCAPE, f"bad escape {piece[bad : bad + 2]!r}")
            pieces[index] = piece
    return "\\".join(pieces)


def check_unescaped(name: str, value: str) -> None:
    """Refuse a CONNECT or CONNECTED header that cannot be written without escaping.

    Args:
        name: the header name.
        value: the header value.

    Raises:
        LocalProtocolError: the name contains ``:``, or either contains ``\\r`` or ``\\n``
            (written raw they would end the line, i.e. header injection).
    """
    if ":" in name or "\n" in name + value or "\r" in name + value:
        raise LocalProtocolError(
            detail=f"header {name!r} cannot be sent unescaped in CONNECT or CONNECTED"
        )
