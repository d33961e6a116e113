"""A large body gathered from the reads it arrives in, and joined once.

Bytes normally pass through the parser's buffer: appended on arrival, compacted now and
then, sliced out at the end. For a body of a megabyte that is three copies. Once a frame's
head says (``content-length``) that a large body follows, the parser keeps the reads
themselves instead (the transport's ``bytes``, no copy), and joins them when the last one
is in: one copy in all.
"""

from __future__ import annotations

from buzon.stomp.frame import Command, Headers


class LargeBody:
    """The body of one frame under way.

    Args:
        command: the frame's command.
        headers: its parsed headers.
        length: its ``content-length``.
        first: the part of the body already received.
    """

    __slots__ = ("command", "headers", "missing", "parts", "size")

    def __init__(self, command: Command, headers: Headers, length: int, first: bytes) -> None:
        self.command = command
        self.headers = headers
        self.parts = [first]
        self.size = len(first)
        self.missing = length - len(first)

    def take(self, data: bytes) -> bytes:
        """Keep the part of ``data`` that belongs to the body; return what follows it."""
        missing = self.missing
        if len(data) <= missing:
            self.parts.append(data if type(data) is bytes else bytes(data))
            self.size += len(data)
            self.missing = missing - len(data)
            return b""
        self.parts.append(data[:missing])
        self.size += missing
        self.missing = 0
        return data[missing:]

    def join(self) -> bytes:
        """The whole body (call once ``missing`` is 0)."""
        return b"".join(self.parts)
