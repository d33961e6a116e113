"""Incremental STOMP 1.2 frame parser: bytes in, frames out, no I/O.

Strategy. ``feed`` only appends to one ``bytearray``; ``next_frame`` does the work with
``bytes.find`` from offsets it remembers, so a peer trickling a frame a byte at a time never
causes a rescan, and no Python loop ever runs over body bytes:

1. the command line is found with one ``find`` bounded by ``max_command_line``;
2. the blank line that ends the headers is found with two bounded ``find`` calls (``\\n\\n``
   and ``\\n\\r\\n``), the header block is decoded in one call and split into lines;
3. a body with ``content-length`` is sliced in one copy once enough bytes are buffered, then
   the next byte must be NUL; without it, the body ends at the first NUL (one ``find``).

Most frames take a shorter road: when a whole head is buffered, short enough that no limit
can be broken and free of ``\r`` and escapes, ``_plain_head`` decodes and splits it in one
pass (and cuts a small body too). It gives up, changing nothing, on anything else, so the
steps above decide every doubtful case and report every error; a property test holds the
two roads to the same frames and errors.

A body announced as large (``content-length`` of ``large_body`` bytes or more) skips the
buffer: its reads are kept as they arrive and joined once (``large_body``).

Limits are checked before the parser buffers past them. The only per-line Python loop that
runs before the header block is complete is the limit walker, and it only runs when a head
arrives in pieces or is big enough to possibly break a limit. Errors are reported in byte
order (the first byte that proves a frame wrong decides the error), so feeding the same
bytes whole, byte by byte or split anywhere gives the same :class:`FrameError`; content
checks (encoding, colons, escapes, content-length) run once the header block is complete.

The buffer is compacted in ``feed`` only when the consumed prefix is at least as large as
what remains, so each byte is moved at most about once.
"""

from __future__ import annotations

from buzon.errors import ErrorCode, FrameError, LocalProtocolError
from buzon.stomp.escaping import UNESCAPED_COMMANDS, unescape
from buzon.stomp.frame import (
    HEARTBEAT,
    NEED_DATA,
    Command,
    Frame,
    Headers,
    Heartbeat,
    NeedData,
)
from buzon.stomp.large_body import LargeBody
from buzon.stomp.limits import DEFAULT_LIMITS, ParserLimits

RawFrame = tuple[Command, Headers, bytes]

# Command lines with and without the \r of a \r\n line ending, so no strip is needed.
_COMMAND_LINES: dict[bytes, Command] = {
    line: command
    for command in Command
    for line in (command.value.encode(), command.value.encode() + b"\r")
}

_COMMAND_NAMES: dict[str, Command] = {command.value: command for command in Command}

LARGE_BODY = 64 * 1024
"""Bodies announced at least this long are gathered read by read (``large_body``)."""

# Bodies up to this size are copied out of a bytearray slice (two copies, but the cheapest
# call); larger ones through a memoryview (one copy). Measured crossover: 8-16 KiB.
_SMALL_BODY = 8192


class FrameParser:
    """Turns a stream of bytes into :class:`Frame` objects and heart-beats.

    Args:
        limits: the size limits to enforce; :attr:`limits` may be replaced between frames
            (the server starts with :data:`PRE_LOGIN_LIMITS`).
        large_body: a body whose ``content-length`` is at least this is kept in the pieces
            it arrives in and joined once, instead of passing through the buffer.
    """

    __slots__ = (
        "_buf",
        "_cmd_end",
        "_command",
        "_error",
        "_large",
        "_large_from",
        "_limits",
        "_lines",
        "_max_digits",
        "_pending",
        "_plain_block",
        "_plain_span",
        "_pos",
        "_quick",
        "_scan",
        "_walk",
        "_walk_scan",
        "_window",
    )

    def __init__(
        self, limits: ParserLimits = DEFAULT_LIMITS, *, large_body: int = LARGE_BODY
    ) -> None:
        self._buf = bytearray()
        self._large: LargeBody | None = None  # the large body under way, if any
        self._large_from = large_body
        self._pos = 0  # start of the unconsumed bytes: the current frame or heart-beat
        self._scan = 0  # where the next find for the current stage resumes
        self._error: FrameError | None = None
        # Set once a frame's command line is known but its head is not complete yet.
        self._command: Command | None = None
        self._cmd_end = 0  # index of the command line's \n
        self._walk = 0  # limit walker: start of the first header line not yet checked
        self._walk_scan = 0  # limit walker: where its find resumes
        self._lines = 0  # limit walker: complete header lines seen
        # (command, headers, body start, content-length or -1) once a frame's head is
        # parsed but its body is not complete yet.
        self._pending: tuple[Command, Headers, int, int] | None = None
        self.limits = limits

    @property
    def limits(self) -> ParserLimits:
        """The limits in force; set a new value between frames to change them."""
        return self._limits

    @limits.setter
    def limits(self, limits: ParserLimits) -> None:
        self._limits = limits
        # A header block this short cannot break a line, count or size limit (every
        # header line takes at least two bytes), so the limit walker is skipped.
        self._quick = min(limits.max_header_line, limits.max_header_block, 2 * limits.max_headers)
        # From the command line's \n, the blank line of a head within the limits ends
        # before this many bytes.
        self._window = limits.max_header_block + 3
        # A header block no longer than one line may be breaks neither the line nor the
        # block limit; _plain_head takes only those (and looks no further for their end).
        self._plain_block = min(limits.max_header_line, limits.max_header_block)
        self._plain_span = limits.max_command_line + self._plain_block + 2
        self._max_digits = len(str(limits.max_body))

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed as frames or heart-beats."""
        large = self._large
        return len(self._buf) - self._pos + (0 if large is None else large.size)

    def feed(self, data: bytes) -> None:
        """Append received bytes; parsing happens in :meth:`next_frame`.

        Args:
            data: bytes as read from the transport (may be empty).

        Raises:
            LocalProtocolError: the parser already raised a :class:`FrameError`.
        """
        if self._error is not None:
            raise LocalProtocolError(detail="feed() after the parser failed")
        large = self._large
        if large is not None and large.missing:
            data = large.take(data)
            if not data:
                return
        pos = self._pos
        if pos and 2 * pos >= len(self._buf):
            del self._buf[:pos]
            self._pos = 0
            self._scan -= pos
            self._cmd_end -= pos
            self._walk -= pos
            self._walk_scan -= pos
            if self._pending is not None:
                command, headers, start, length = self._pending
                self._pending = (command, headers, start - pos, length)
        self._buf += data

    def next_frame(self) -> Frame | Heartbeat | NeedData:
        """Return the next frame or heart-beat from the buffered bytes.

        Call it until it returns :data:`NEED_DATA`, then feed more bytes.

        Returns:
            A :class:`Frame`, :data:`HEARTBEAT` for an EOL between frames, or
            :data:`NEED_DATA`.

        Raises:
            FrameError: the bytes break STOMP 1.2 or a limit; the code says which. The
                parser is then failed for good: every later call raises the same error.
        """
        item = self._next_raw()
        if isinstance(item, tuple):
            return Frame(*item)
        return item

    def _next_raw(self) -> RawFrame | Heartbeat | NeedData:
        """:meth:`next_frame` without building a :class:`Frame`.

        The connection reads frames through this, since it turns each one straight into
        an event and a frozen dataclass costs several times a tuple to build.
        """
        error = self._error
        if error is not None:
            raise FrameError(error.code, error.detail)
        try:
            large = self._large
            if large is not None:
                return self._large_end(large)
            if self._pending is not None:
                return self._body(*self._pending)
            if self._command is None:
                frame = self._plain_head()
                if frame is not None:
                    return frame
            return self._head()
        except FrameError as exc:
            self._error = exc
            raise

    def _consume(self, end: int) -> None:
        self._pos = self._scan = end
        self._command = None
        self._pending = None

    def _plain_head(self) -> RawFrame | NeedData | None:
        """The common case in one pass: a complete, short head with nothing to unescape.

        Returns None, having changed nothing, unless the head is buffered whole, has no
        ``\r`` and no backslash (or belongs to an unescaped command), a known command,
        a colon on every line, and is too short to break any limit: then :meth:`_head`
        would find exactly the same frame, only slower. Anything else (a heart-beat, a
        partial or long head, a doubtful byte) is left to :meth:`_head`, which also
        reports every error.
        """
        buf = self._buf
        pos = self._pos
        limits = self._limits
        end = buf.find(b"\n\n", pos, pos + self._plain_span)
        if end < 0:
            return None
        try:
            head = buf[pos:end].decode()
        except UnicodeDecodeError:
            return None
        if "\r" in head:
            return None
        lines = head.split("\n")
        command = _COMMAND_NAMES.get(lines[0])
        if (
            command is None
            or len(lines[0]) > limits.max_command_line
            or end - pos - len(lines[0]) > self._plain_block
            or len(lines) > limits.max_headers + 1
            or ("\\" in head and command not in UNESCAPED_COMMANDS)
        ):
            return None
        headers = []
        length_text = None
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return None
            if name == "content-length" and length_text is None:
                length_text = value
            headers.append((name, value))
        return self._plain_body(command, tuple(headers), end + 2, length_text)

    def _plain_body(
        self, command: Command, headers: Headers, start: int, length_text: str | None
    ) -> RawFrame | NeedData:
        """Cut a small body that is buffered whole; leave the rest to :meth:`_body` (more
        bytes to wait for, a large body, errors)."""
        buf = self._buf
        pos = self._pos
        limits = self._limits
        if length_text is None:
            length = -1
            stop = buf.find(b"\0", start, min(start + limits.max_body + 1, pos + limits.max_frame))
        else:
            length = _content_length(length_text, limits.max_body, self._max_digits)
            if start - pos + length + 1 > limits.max_frame:
                raise FrameError(ErrorCode.FRAME_TOO_LARGE, "frame larger than the limit")
            stop = start + length
            if stop >= len(buf) or buf[stop]:
                stop = -1
        if stop < 0 or stop - start > _SMALL_BODY:
            return self._body(command, headers, start, length)
        self._pos = self._scan = stop + 1
        return command, headers, bytes(buf[start:stop])

    def _head(self) -> RawFrame | Heartbeat | NeedData:
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if pos == size:
            return NEED_DATA
        command = self._command
        if command is not None:
            return self._header_block(command, self._cmd_end, self._scan)
        first = buf[pos]
        if first == 10:  # \n between frames
            self._consume(pos + 1)
            return HEARTBEAT
        if first == 13 and buf.startswith(b"\r\n", pos):
            self._consume(pos + 2)
            return HEARTBEAT
        max_line = self._limits.max_command_line
        eol = buf.find(b"\n", self._scan, pos + max_line + 1)
        if eol < 0:
            if size - pos > max_line:
                raise FrameError(ErrorCode.LINE_TOO_LONG, "command line too long")
            self._scan = size
            return NEED_DATA
        command = _COMMAND_LINES.get(bytes(buf[pos:eol]))
        if command is None:
            name = bytes(buf[pos:eol]).rstrip(b"\r").decode("utf-8", "replace")
            raise FrameError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {name!r}")
        return self._header_block(command, eol, eol)

    def _header_block(self, command: Command, eol: int, scan: int) -> RawFrame | NeedData:
        """Parse the headers after the command line ending at ``eol``, then the body."""
        buf = self._buf
        size = len(buf)
        limits = self._limits
        # The blank line may end in \n or \r\n; a head within the limits has one inside
        # `window`, so neither search runs on into a large body.
        window = eol + self._window
        if window > size:
            window = size
        end = buf.find(b"\n\n", scan, window)
        crlf = buf.find(b"\n\r\n", scan, window if end < 0 else end + 2)
        if crlf >= 0:
            end, body_start = crlf, crlf + 3
        elif end >= 0:
            body_start = end + 2
        else:
            self._remember_command(command, eol)
            self._scan = max(eol, window - 2)
            self._walk_limits(size, complete=False)
            return NEED_DATA
        # `end` is the \n that ends the last header line (or the command line).
        if end - eol > self._quick:
            self._remember_command(command, eol)
            self._walk_limits(end + 1, complete=True)
        if end == eol:
            return self._body(command, (), body_start, -1)
        try:
            text = buf[eol + 1 : end].decode()
        except UnicodeDecodeError as exc:
            raise FrameError(ErrorCode.BAD_ENCODING, "header bytes are not UTF-8") from exc
        headers, length_text = _parse_header_lines(text, command not in UNESCAPED_COMMANDS)
        if length_text is None:
            return self._body(command, headers, body_start, -1)
        length = _content_length(length_text, limits.max_body, self._max_digits)
        if body_start - self._pos + length + 1 > limits.max_frame:
            raise FrameError(ErrorCode.FRAME_TOO_LARGE, "frame larger than the limit")
        return self._body(command, headers, body_start, length)

    def _remember_command(self, command: Command, eol: int) -> None:
        """Keep a head's progress so the next call resumes instead of starting over."""
        if self._command is None:
            self._command = command
            self._cmd_end = eol
            self._walk = self._walk_scan = eol + 1
            self._lines = 0

    def _walk_limits(self, upto: int, *, complete: bool) -> None:
        """Check header lines in ``[self._walk, upto)`` against the limits, in byte order.

        Args:
            upto: end of the bytes to check.
            complete: the head ends at ``upto``; otherwise the last line may be open.

        Raises:
            FrameError: the first limit broken (LINE_TOO_LONG, HEADERS_TOO_LARGE or
                TOO_MANY_HEADERS).
        """
        buf = self._buf
        limits = self._limits
        block_start = self._cmd_end + 1
        start = self._walk
        lines = self._lines
        eol = buf.find(b"\n", self._walk_scan, upto)
        while eol >= 0:
            _check_line(limits, block_start, start, eol, eol + 1)
            lines += 1
            if lines > limits.max_headers:
                raise FrameError(ErrorCode.TOO_MANY_HEADERS, f"more than {limits.max_headers}")
            start = eol + 1
            eol = buf.find(b"\n", start, upto)
        if not complete:
            length = upto - start
            if length == 1 and buf[start] == 13:
                length = 0  # a lone \r may be the start of the blank line
            _check_line(limits, block_start, start, start + length, start + length)
        self._walk = start
        self._walk_scan = upto
        self._lines = lines

    def _body(
        self, command: Command, headers: Headers, start: int, length: int
    ) -> RawFrame | NeedData:
        buf = self._buf
        size = len(buf)
        if length >= 0:
            end = start + length
            if end >= size:
                return self._await_body(command, headers, start, length, size)
            if buf[end]:
                raise FrameError(ErrorCode.FRAME_MALFORMED, "no NUL after content-length bytes")
        else:
            limits = self._limits
            # The body may not pass max_body, nor the frame max_frame (NUL included).
            stop = min(start + limits.max_body + 1, self._pos + limits.max_frame)
            scan = self._scan if self._pending is not None else start
            end = buf.find(b"\0", scan, min(size, stop))
            if end < 0:
                if size >= stop:
                    raise FrameError(ErrorCode.FRAME_TOO_LARGE, "body larger than the limit")
                return self._await_body(command, headers, start, length, size)
        if end - start <= _SMALL_BODY:
            body = bytes(buf[start:end])
        else:
            with memoryview(buf) as view:
                body = view[start:end].tobytes()
        # _consume() inlined: this runs once per frame
        self._pos = self._scan = end + 1
        if self._pending is not None or self._command is not None:
            self._pending = self._command = None
        return command, headers, body

    def _await_body(
        self, command: Command, headers: Headers, start: int, length: int, size: int
    ) -> NeedData:
        if length < self._large_from:
            self._pending = (command, headers, start, length)
            self._scan = size
            return NEED_DATA
        # A large body: keep its reads as they come (see large_body); the buffer is done.
        self._large = LargeBody(command, headers, length, bytes(self._buf[start:size]))
        del self._buf[:]
        self._pos = self._scan = 0
        self._command = self._pending = None
        return NEED_DATA

    def _large_end(self, large: LargeBody) -> RawFrame | NeedData:
        """The frame of a large body, once the body and the NUL after it are in."""
        pos = self._pos
        if large.missing or pos == len(self._buf):
            return NEED_DATA
        if self._buf[pos]:
            raise FrameError(ErrorCode.FRAME_MALFORMED, "no NUL after content-length bytes")
        self._large = None
        self._pos = self._scan = pos + 1
        return large.command, large.headers, large.join()


def _check_line(
    limits: ParserLimits, block_start: int, start: int, line_end: int, block_end: int
) -> None:
    """Raise for a header line whose bytes break the line or block limit, earliest first."""
    line_over = line_end - start > limits.max_header_line
    block_over = block_end - block_start > limits.max_header_block
    if line_over and (
        not block_over or start + limits.max_header_line <= block_start + limits.max_header_block
    ):
        raise FrameError(ErrorCode.LINE_TOO_LONG, "header line too long")
    if block_over:
        raise FrameError(ErrorCode.HEADERS_TOO_LARGE, "header block too large")


def _parse_header_lines(text: str, escaped: bool) -> tuple[Headers, str | None]:
    """Split decoded header lines into pairs; also return the first content-length.

    Args:
        text: the header lines, without the final EOL.
        escaped: unescape names and values (false for CONNECT and CONNECTED).

    Raises:
        FrameError: FRAME_MALFORMED for a line without a colon, BAD_ESCAPE.
    """
    lines = text.split("\n")
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    unescaping = escaped and "\\" in text
    headers: list[tuple[str, str]] = []
    length = None
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise FrameError(ErrorCode.FRAME_MALFORMED, "header line without a colon")
        if unescaping:
            name = unescape(name)
            value = unescape(value)
        if name == "content-length" and length is None:
            length = value
        headers.append((name, value))
    return tuple(headers), length


def _content_length(text: str, max_body: int, max_digits: int) -> int:
    """Parse ``content-length``: ASCII digits only, at most ``max_body``.

    ``max_digits`` is the length of ``max_body`` in decimal: longer values are checked
    without ``int()``, which is slow for thousands of digits and refuses more than 4300.

    Raises:
        FrameError: BAD_CONTENT_LENGTH for anything but digits (signs, spaces, ``_``,
            non-ASCII digits, empty), FRAME_TOO_LARGE above ``max_body``.
    """
    if not (text.isascii() and text.isdigit()):
        raise FrameError(ErrorCode.BAD_CONTENT_LENGTH, f"content-length {text[:20]!r}")
    if len(text) > max_digits:
        text = text.lstrip("0") or "0"
        if len(text) > max_digits:
            raise FrameError(ErrorCode.FRAME_TOO_LARGE, "content-length above the limit")
    length = int(text)
    if length > max_body:
        raise FrameError(ErrorCode.FRAME_TOO_LARGE, "content-length above the limit")
    return length
