"""FrameParser: a table of byte streams, each fed whole, byte by byte and split anywhere."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from buzon.errors import ErrorCode, FrameError, LocalProtocolError
from buzon.stomp import (
    DEFAULT_LIMITS,
    HEARTBEAT,
    NEED_DATA,
    PRE_LOGIN_LIMITS,
    Command,
    Frame,
    FrameParser,
    ParserLimits,
)

from .helpers import Item, parse_chunks, parse_every_way

HB = HEARTBEAT


def frame(command: str, *headers: tuple[str, str], body: bytes = b"") -> Frame:
    return Frame(Command[command], tuple(headers), body)


@dataclass(frozen=True)
class Case:
    data: bytes
    expected: list[Item]
    limits: ParserLimits = DEFAULT_LIMITS


CASES: dict[str, Case] = {
    "minimal frame": Case(b"SEND\n\n\0", [frame("SEND")]),
    "content-length body with NUL bytes": Case(
        b"SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0",
        [frame("SEND", ("destination", "/q"), ("content-length", "5"), body=b"a\0b\0c")],
    ),
    "content-length zero": Case(
        b"SEND\ncontent-length:0\n\n\0", [frame("SEND", ("content-length", "0"))]
    ),
    "content-length with leading zeros": Case(
        b"SEND\ncontent-length:0003\n\nabc\0",
        [frame("SEND", ("content-length", "0003"), body=b"abc")],
    ),
    "NUL-terminated body": Case(
        b"SEND\ndestination:/q\n\nhello\r\nworld\0",
        [frame("SEND", ("destination", "/q"), body=b"hello\r\nworld")],
    ),
    "binary body without NUL": Case(
        b"SEND\n\n" + bytes(range(1, 256)) + b"\0", [frame("SEND", body=bytes(range(1, 256)))]
    ),
    "many frames in one feed": Case(
        b"SEND\nk:1\n\nA\0SEND\nk:2\ncontent-length:1\n\nB\0MESSAGE\nk:3\n\nC\0",
        [
            frame("SEND", ("k", "1"), body=b"A"),
            frame("SEND", ("k", "2"), ("content-length", "1"), body=b"B"),
            frame("MESSAGE", ("k", "3"), body=b"C"),
        ],
    ),
    "heart-beats as LF": Case(b"\n\n\n", [HB, HB, HB]),
    "heart-beats as CRLF": Case(b"\r\n\r\n", [HB, HB]),
    "heart-beats around frames": Case(
        b"\nSEND\n\n\0\r\n\nACK\nid:1\n\n\0\n",
        [HB, frame("SEND"), HB, HB, frame("ACK", ("id", "1")), HB],
    ),
    "CRLF line endings": Case(
        b"SEND\r\ndestination:/q\r\nx:y\r\n\r\nbody\0",
        [frame("SEND", ("destination", "/q"), ("x", "y"), body=b"body")],
    ),
    "CRLF line endings without headers": Case(b"DISCONNECT\r\n\r\n\0", [frame("DISCONNECT")]),
    "mixed line endings": Case(
        b"SEND\r\na:1\nb:2\r\n\nbody\0", [frame("SEND", ("a", "1"), ("b", "2"), body=b"body")]
    ),
    "CRLF command line then LF blank line": Case(b"SEND\r\n\n\0", [frame("SEND")]),
    "raw CR inside a value is kept": Case(b"SEND\nk:a\rb\n\n\0", [frame("SEND", ("k", "a\rb"))]),
    "every escape in names and values": Case(
        b"SEND\na\\cb\\\\c\\n\\r:v\\c\\\\\\n\\r\n\n\0",
        [frame("SEND", ("a:b\\c\n\r", "v:\\\n\r"))],
    ),
    "escaped backslash followed by n": Case(
        b"SEND\nk:a\\\\n\\\\\\\\\n\n\0", [frame("SEND", ("k", "a\\n\\\\"))]
    ),
    "unescaped colon in a value is kept": Case(
        b"SEND\nurl:http://h:1/\n\n\0", [frame("SEND", ("url", "http://h:1/"))]
    ),
    "empty value and empty name": Case(
        b"SEND\nk:\n:v\n\n\0", [frame("SEND", ("k", ""), ("", "v"))]
    ),
    "bad escape \\t": Case(b"SEND\nk:a\\tb\n\n\0", [ErrorCode.BAD_ESCAPE]),
    "bad escape in a name": Case(b"SEND\nk\\x:v\n\n\0", [ErrorCode.BAD_ESCAPE]),
    "trailing backslash": Case(b"SEND\nk:abc\\\n\n\0", [ErrorCode.BAD_ESCAPE]),
    "odd backslashes before the end": Case(b"SEND\nk:\\\\\\\n\n\0", [ErrorCode.BAD_ESCAPE]),
    "no unescaping in CONNECT": Case(
        b"CONNECT\nlogin:a\\cb\\t\\\npasscode:x:y\n\n\0",
        [frame("CONNECT", ("login", "a\\cb\\t\\"), ("passcode", "x:y"))],
    ),
    "no unescaping in CONNECTED": Case(
        b"CONNECTED\nserver:a\\n\n\n\0", [frame("CONNECTED", ("server", "a\\n"))]
    ),
    "repeated headers are all kept": Case(
        b"SEND\nk:1\nk:2\nk:3\n\n\0", [frame("SEND", ("k", "1"), ("k", "2"), ("k", "3"))]
    ),
    "first content-length wins": Case(
        b"SEND\ncontent-length:1\ncontent-length:5\n\nx\0",
        [frame("SEND", ("content-length", "1"), ("content-length", "5"), body=b"x")],
    ),
    "UTF-8 headers": Case("SEND\nclé:ñ€😀\n\n\0".encode(), [frame("SEND", ("clé", "ñ€😀"))]),
    "invalid UTF-8 in a value": Case(b"SEND\nk:\xff\xfe\n\n\0", [ErrorCode.BAD_ENCODING]),
    "invalid UTF-8 in a name": Case(b"SEND\n\xc3:v\n\n\0", [ErrorCode.BAD_ENCODING]),
    "overlong UTF-8": Case(b"SEND\nk:\xc0\xaf\n\n\0", [ErrorCode.BAD_ENCODING]),
    "header line without colon": Case(b"SEND\nnocolon\n\n\0", [ErrorCode.FRAME_MALFORMED]),
    "unknown command": Case(b"FLY\n\n\0", [ErrorCode.UNKNOWN_COMMAND]),
    "lowercase command": Case(b"send\n\n\0", [ErrorCode.UNKNOWN_COMMAND]),
    "command with trailing space": Case(b"SEND \n\n\0", [ErrorCode.UNKNOWN_COMMAND]),
    "CR then command": Case(b"\rSEND\n\n\0", [ErrorCode.UNKNOWN_COMMAND]),
    "unknown command known before its headers end": Case(
        b"FLY\n" + b"k:v\n" * 100, [ErrorCode.UNKNOWN_COMMAND]
    ),
    "lying content-length": Case(
        b"SEND\ncontent-length:2\n\nlonger\0", [ErrorCode.FRAME_MALFORMED]
    ),
    "content-length one past the NUL": Case(
        b"SEND\ncontent-length:3\n\nab\0X", [ErrorCode.FRAME_MALFORMED]
    ),
    "good frame then a bad one": Case(
        b"SEND\n\nok\0NOPE\n\n\0", [frame("SEND", body=b"ok"), ErrorCode.UNKNOWN_COMMAND]
    ),
    "content-length above max_body": Case(
        b"SEND\ncontent-length:16777217\n\n", [ErrorCode.FRAME_TOO_LARGE]
    ),
    "content-length with 5000 digits": Case(
        b"SEND\ncontent-length:" + b"9" * 5000 + b"\n\n", [ErrorCode.FRAME_TOO_LARGE]
    ),
    "content-length of zeros then a big number": Case(
        b"SEND\ncontent-length:00000000000000000000099999999\n\n", [ErrorCode.FRAME_TOO_LARGE]
    ),
}

BAD_LENGTHS = [
    " 5",
    "5 ",
    " 5 ",
    "+5",
    "-1",
    "5_0",
    "0x5",
    "5.0",
    "",
    "\u0665",
    "\uff15",
    "\u00b2",
    "5\\c",
]
for _spelling in BAD_LENGTHS:
    CASES[f"content-length {_spelling!r}"] = Case(
        f"SEND\ncontent-length:{_spelling}\n\nxxxxxxx\0".encode(), [ErrorCode.BAD_CONTENT_LENGTH]
    )
for _command in Command:
    CASES[f"bare {_command.value}"] = Case(_command.value.encode() + b"\n\n\0", [Frame(_command)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str) -> None:
    case = CASES[name]
    assert parse_every_way(case.data, case.limits) == case.expected


# Small limits so each can be broken with a few bytes. Line lengths count the \r of \r\n.
SMALL = ParserLimits(
    max_command_line=16,
    max_header_line=20,
    max_headers=3,
    max_header_block=50,
    max_body=40,
    max_frame=80,
)
LINE_20 = b"k:" + b"v" * 17 + b"\n"  # a 19-byte line + \n: 20 bytes of block


@dataclass(frozen=True)
class LimitCase:
    data: bytes
    expected: ErrorCode | None  # None: the frame is accepted
    at: int = 0  # bytes fed byte by byte when the error must appear (no later, no sooner)


LIMIT_CASES: dict[str, LimitCase] = {
    "command line too long": LimitCase(b"X" * 40, ErrorCode.LINE_TOO_LONG, at=17),
    "command line of max length, unknown": LimitCase(
        b"X" * 16 + b"\n\n\0", ErrorCode.UNKNOWN_COMMAND, at=17
    ),
    "header line at the limit": LimitCase(b"SEND\nk:" + b"v" * 18 + b"\n\n\0", None),
    "header line too long without EOL": LimitCase(
        b"SEND\nk:" + b"v" * 40, ErrorCode.LINE_TOO_LONG, at=26
    ),
    "header line too long in one piece": LimitCase(
        b"SEND\nk:" + b"v" * 19 + b"\n\n\0", ErrorCode.LINE_TOO_LONG, at=26
    ),
    "header line at the limit plus its CR": LimitCase(
        b"SEND\nk:" + b"v" * 18 + b"\r\n\r\n\0", ErrorCode.LINE_TOO_LONG, at=26
    ),
    "three headers": LimitCase(b"SEND\na:1\nb:2\nc:3\n\n\0", None),
    "too many headers": LimitCase(
        b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0", ErrorCode.TOO_MANY_HEADERS, at=21
    ),
    "header block at the limit": LimitCase(
        b"SEND\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 13
        + b"\n\n\0",
        None,
    ),
    "header block at the limit, CRLF blank line": LimitCase(
        b"SEND\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 13
        + b"\n\r\n\0",
        None,
    ),
    "header block too large": LimitCase(
        b"SEND\n" + LINE_20 * 3 + b"\n\0", ErrorCode.HEADERS_TOO_LARGE, at=56
    ),
    "header block too large by a CR then data": LimitCase(
        b"SEND\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 14
        + b"\n"
        + b"k:"
        + b"v" * 13
        + b"\n\rx:y\n\n\0",
        ErrorCode.HEADERS_TOO_LARGE,
        at=57,
    ),
    "line too long before the block is too large": LimitCase(
        b"SEND\n" + LINE_20 + b"k:" + b"v" * 30, ErrorCode.LINE_TOO_LONG, at=46
    ),
    "line and block broken by the same byte: the line is reported": LimitCase(
        b"SEND\n" + (b"k:" + b"v" * 7 + b"\n") * 3 + b"k:" + b"v" * 30,
        ErrorCode.LINE_TOO_LONG,
        at=56,
    ),
    "block too large before the line is too long": LimitCase(
        b"SEND\n" + LINE_20 * 2 + b"k:" + b"v" * 30, ErrorCode.HEADERS_TOO_LARGE, at=56
    ),
    "body at max_body": LimitCase(b"SEND\n\n" + b"x" * 40 + b"\0", None),
    "body past max_body without content-length": LimitCase(
        b"SEND\n\n" + b"x" * 100, ErrorCode.FRAME_TOO_LARGE, at=47
    ),
    "content-length past max_body": LimitCase(
        b"SEND\ncontent-length:41\n\n" + b"x" * 41 + b"\0", ErrorCode.FRAME_TOO_LARGE, at=24
    ),
    "frame at max_frame": LimitCase(b"SEND\n" + LINE_20 * 2 + b"\n" + b"x" * 33 + b"\0", None),
    "frame past max_frame without content-length": LimitCase(
        b"SEND\n" + LINE_20 * 2 + b"\n" + b"x" * 40 + b"\0", ErrorCode.FRAME_TOO_LARGE, at=80
    ),
    "frame at max_frame with content-length": LimitCase(
        b"SEND\ncontent-length:35\n" + LINE_20 + b"\n" + b"x" * 35 + b"\0", None
    ),
    "frame past max_frame with content-length": LimitCase(
        b"SEND\ncontent-length:36\n" + LINE_20 + b"\n" + b"x" * 36 + b"\0",
        ErrorCode.FRAME_TOO_LARGE,
        at=44,
    ),
}


@pytest.mark.parametrize("name", sorted(LIMIT_CASES))
def test_limits(name: str) -> None:
    case = LIMIT_CASES[name]
    items = parse_every_way(case.data, SMALL)
    if case.expected is None:
        assert len(items) == 1
        assert isinstance(items[0], Frame)
        return
    assert items == [case.expected]
    # byte by byte, the error appears exactly when the bytes prove the limit broken
    bytewise = parse_chunks([case.data[i : i + 1] for i in range(len(case.data))], SMALL)
    assert bytewise.failed_after == case.at
    assert bytewise.max_buffered <= case.at


@pytest.mark.parametrize(("body_size", "expected"), [(55, None), (56, ErrorCode.FRAME_TOO_LARGE)])
def test_a_short_head_with_content_length_at_and_past_max_frame(
    body_size: int, expected: ErrorCode | None
) -> None:
    # a short head and a body under max_body, together one byte under or over max_frame
    limits = ParserLimits(
        max_command_line=12,
        max_header_line=64,
        max_headers=4,
        max_header_block=64,
        max_body=60,
        max_frame=80,
    )
    data = b"SEND\ncontent-length:%d\n\n%s\0" % (body_size, b"x" * body_size)
    items = parse_every_way(data, limits)
    if expected is None:
        assert items == [frame("SEND", ("content-length", str(body_size)), body=b"x" * body_size)]
    else:
        assert items == [expected]


def test_the_error_comes_before_the_parser_buffers_past_a_limit() -> None:
    # a header line one byte over the pre-login limit is refused on that byte
    parser = FrameParser(PRE_LOGIN_LIMITS)
    parser.feed(b"CONNECT\n" + b"x" * PRE_LOGIN_LIMITS.max_header_line)
    assert parser.next_frame() is NEED_DATA
    parser.feed(b"x")
    with pytest.raises(FrameError) as caught:
        parser.next_frame()
    assert caught.value.code is ErrorCode.LINE_TOO_LONG


def test_a_large_body_round_trips_whole_bytewise_and_split() -> None:
    body = bytes(range(256)) * 40  # 10 KiB, NUL bytes included
    data = b"SEND\ncontent-length:%d\n\n%s\0" % (len(body), body)
    expected = [frame("SEND", ("content-length", str(len(body))), body=body)]
    assert parse_chunks([data]).items == expected
    assert parse_chunks([data[i : i + 1] for i in range(len(data))]).items == expected
    for cut in (1, 20, 5000, len(data) - 1):
        assert parse_chunks([data[:cut], data[cut:]]).items == expected


def test_a_large_body_is_held_once_while_it_arrives() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    head = b"SEND\ncontent-length:%d\n\n" % len(body)
    data = head + body + b"\0SEND\n\nnext\0"
    parser = FrameParser()
    fed = 0
    for start in range(0, len(data) - 12, 65536):
        chunk = data[start : min(start + 65536, len(data) - 12)]
        parser.feed(chunk)
        fed += len(chunk)
        if fed <= len(data) - 18:  # the first frame is not complete yet
            assert parser.next_frame() is NEED_DATA
            assert parser.buffered == fed - len(head)  # the body so far, nothing more
    parser.feed(data[len(data) - 12 :])
    assert parser.next_frame() == frame("SEND", ("content-length", str(len(body))), body=body)
    assert parser.next_frame() == frame("SEND", body=b"next")
    assert parser.buffered == 0


def test_a_large_nul_terminated_body_is_found_without_rescanning() -> None:
    body = b"y" * 100_000
    data = b"SEND\n\n" + body + b"\0"
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert parse_chunks(chunks).items == [frame("SEND", body=body)]


def test_failed_parser_stays_failed() -> None:
    parser = FrameParser()
    parser.feed(b"NOPE\n\n\0")
    with pytest.raises(FrameError) as first:
        parser.next_frame()
    assert first.value.code is ErrorCode.UNKNOWN_COMMAND
    with pytest.raises(FrameError) as again:
        parser.next_frame()
    assert again.value.code is ErrorCode.UNKNOWN_COMMAND
    with pytest.raises(LocalProtocolError):
        parser.feed(b"SEND\n\n\0")


def test_limits_can_be_switched_between_frames() -> None:
    parser = FrameParser(SMALL)
    assert parser.limits is SMALL
    parser.feed(b"SEND\n\nshort\0SEND\n\n" + b"x" * 100 + b"\0")
    assert parser.next_frame() == frame("SEND", body=b"short")
    parser.limits = DEFAULT_LIMITS
    assert parser.next_frame() == frame("SEND", body=b"x" * 100)
    assert parser.next_frame() is NEED_DATA


def test_buffered_counts_unconsumed_bytes_and_stays_small() -> None:
    parser = FrameParser()
    assert parser.buffered == 0
    one = b"SEND\ndestination:/q\n\nbody\0"
    for _ in range(1000):
        parser.feed(one * 3 + one[:10])
        assert parser.buffered >= 10
        while isinstance(parser.next_frame(), Frame):
            pass
        assert parser.buffered == 10
        parser.feed(one[10:])
        assert isinstance(parser.next_frame(), Frame)
        assert parser.buffered == 0


def test_empty_feed_and_empty_buffer_need_data() -> None:
    parser = FrameParser()
    parser.feed(b"")
    assert parser.next_frame() is NEED_DATA
    assert parser.buffered == 0


def test_frame_get_returns_the_first_occurrence() -> None:
    parsed = frame("SEND", ("k", "1"), ("k", "2"))
    assert parsed.get("k") == "1"
    assert parsed.get("missing") is None
    assert parsed.get("missing", "fallback") == "fallback"


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ParserLimits(max_headers=0)
    with pytest.raises(ValueError, match="negative"):
        ParserLimits(max_body=-1)
    with pytest.raises(ValueError, match="max_frame"):
        ParserLimits(max_header_block=1000, max_frame=100)


def test_default_limits_are_as_documented() -> None:
    documented = ParserLimits(32, 8 * 1024, 64, 32 * 1024, 16 << 20, (16 << 20) + (64 << 10))
    assert documented == DEFAULT_LIMITS
    assert PRE_LOGIN_LIMITS.max_frame == 8 * 1024
    assert PRE_LOGIN_LIMITS.max_body <= 1024
