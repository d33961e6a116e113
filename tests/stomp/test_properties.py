"""Hypothesis: round trips, arbitrary input, chunking independence and bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from buzon.errors import ErrorCode
from buzon.stomp import (
    DEFAULT_LIMITS,
    PRE_LOGIN_LIMITS,
    Command,
    Frame,
    FrameParser,
    Headers,
    Message,
    ParserLimits,
    serialize,
)
from buzon.stomp.escaping import escape, unescape
from buzon.stomp.serializer import message_frame

from .helpers import HeadByHeadParser, message_bytes, parse_chunks

PROFILE = settings(max_examples=200, deadline=None)

# Characters worth trying: the ones escaping is about, a few non-ASCII ones, and anything
# else Unicode has apart from lone surrogates (which no UTF-8 text can hold).
SPECIAL = st.sampled_from([":", "\n", "\r", "\\", "c", "n", "r", "ñ", "€", "😀"])
ANY_CHAR = st.characters(exclude_categories=["Cs"])
TEXT = st.text(st.one_of(SPECIAL, ANY_CHAR), max_size=20)
# CONNECT and CONNECTED are not escaped: no line breaks anywhere, no colon in names.
RAW_NAME = st.text(st.one_of(SPECIAL, ANY_CHAR).filter(lambda c: c not in ":\r\n"), max_size=20)
RAW_VALUE = st.text(st.one_of(SPECIAL, ANY_CHAR).filter(lambda c: c not in "\r\n"), max_size=20)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    command = draw(st.sampled_from(Command))
    raw = command in (Command.CONNECT, Command.CONNECTED)
    pair = st.tuples(RAW_NAME, RAW_VALUE) if raw else st.tuples(TEXT, TEXT)
    headers = draw(st.lists(pair.filter(lambda h: h[0] != "content-length"), max_size=8))
    body = draw(st.binary(max_size=300))
    return Frame(command, tuple(headers), body)


def expected_after_round_trip(frame: Frame) -> Frame:
    headers: Headers = frame.headers
    if frame.body:
        headers += (("content-length", str(len(frame.body))),)
    return Frame(frame.command, headers, frame.body)


@PROFILE
@given(frames(), st.data())
def test_parse_of_serialize_is_the_frame(frame: Frame, data: st.DataObject) -> None:
    wire = serialize(frame)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert parse_chunks(chunks).items == [expected_after_round_trip(frame)]


@PROFILE
@given(
    TEXT,
    TEXT,
    TEXT,
    st.none() | TEXT,
    st.lists(st.tuples(TEXT, TEXT), max_size=4),
    st.binary(max_size=50),
    st.booleans(),
)
def test_message_fast_path_equals_the_general_serialiser(
    destination: str,
    message_id: str,
    subscription: str,
    ack: str | None,
    headers: list[tuple[str, str]],
    body: bytes,
    redelivered: bool,
) -> None:
    message = Message(destination, message_id, subscription, ack, tuple(headers), body, redelivered)
    wire = message_bytes(message)
    assert wire == serialize(message_frame(message))
    assert parse_chunks([wire]).items == [expected_after_round_trip(message_frame(message))]


@PROFILE
@given(TEXT)
def test_unescape_undoes_escape(text: str) -> None:
    assert unescape(escape(text)) == text


SMALL = ParserLimits(
    max_command_line=16,
    max_header_line=24,
    max_headers=4,
    max_header_block=64,
    max_body=48,
    max_frame=128,
)
FRAGMENTS = st.sampled_from(
    [
        b"SEND\n",
        b"CONNECT\r\n",
        b"MESSAGE\n",
        b"k:v\n",
        b"a\\cb:\\n\n",
        b"\\t",
        b"content-length:3\n",
        b"content-length:x\n",
        b"\n",
        b"\r\n",
        b"\0",
        b"\xff",
        b":",
        b"body",
    ]
)
STREAMS = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=30)), max_size=30).map(b"".join)
LIMITS = st.sampled_from([SMALL, PRE_LOGIN_LIMITS, DEFAULT_LIMITS])


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@PROFILE
@given(STREAMS, st.lists(st.integers(0, 1000), max_size=10), LIMITS)
def test_any_bytes_in_any_chunks(stream: bytes, cuts: list[int], limits: ParserLimits) -> None:
    chunks = split(stream, cuts)
    # only FrameError may come out (parse_chunks turns it into its code; anything else
    # propagates and fails the test)
    result = parse_chunks(chunks, limits)
    # memory stays bounded: the parser never holds more than a frame plus one read
    biggest_chunk = max((len(c) for c in chunks), default=0)
    assert result.max_buffered <= limits.max_frame + biggest_chunk
    # and where the stream is cut does not matter
    assert result.items == parse_chunks([stream], limits).items
    # an error, if any, is the last thing reported
    assert not any(isinstance(item, ErrorCode) for item in result.items[:-1])


@PROFILE
@given(st.binary(min_size=1, max_size=64), st.integers(1, 4000))
def test_floods_are_refused_within_the_limits(unit: bytes, repeat: int) -> None:
    stream = unit * repeat
    result = parse_chunks([stream[i : i + 97] for i in range(0, len(stream), 97)], SMALL)
    assert result.max_buffered <= SMALL.max_frame + 97


GOOD_LINES = st.sampled_from(
    [
        b"a:b",
        b"k:",
        b":v",
        b"a:b:c",
        b"destination:/queue/q",
        b"content-length:0",
        b"content-length:2",
        b"content-length:9",
        b"n\\c:v\\n",
        b"long:" + b"x" * 30,
        b"utf8:\xc3\xb1",
    ]
)
BAD_LINES = st.sampled_from(
    [
        b"no-colon",
        b"content-length:-1",
        b"content-length:99999999999999999999",
        b"bad:\\t",
        b"cr:v\r",
        b"broken:\xc3",
        b"x" * 70,
        b"wide:" + b"y" * 70,
    ]
)
# Limits the generated heads cross often: 6-byte commands (COMMIT fits, CONNECT does
# not), two headers, 64-byte lines, 16-byte bodies.
TINY = ParserLimits(
    max_command_line=6,
    max_header_line=64,
    max_headers=2,
    max_header_block=96,
    max_body=16,
    max_frame=160,
)


@st.composite
def plain_frames(draw: st.DrawFn) -> bytes:
    """Frames made of lines chosen to sit on the one-pass path's every boundary."""
    command = draw(st.sampled_from([*(c.value.encode() for c in Command), b"BOGUS", b""]))
    lines = draw(st.lists(GOOD_LINES, max_size=6))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(BAD_LINES))
    body = draw(st.sampled_from([b"", b"xy", b"x\0y", b"z" * 40]))
    end = draw(st.sampled_from([b"\0", b"", b"\0\n", b"\1"]))
    return b"\n".join([command, *lines]) + b"\n\n" + body + end


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(plain_frames(), FRAGMENTS), min_size=1, max_size=6),
    st.lists(st.integers(0, 600), max_size=4),
    st.sampled_from([TINY, SMALL, PRE_LOGIN_LIMITS, DEFAULT_LIMITS]),
)
def test_the_one_pass_path_finds_what_the_general_one_finds(
    parts: list[bytes], cuts: list[int], limits: ParserLimits
) -> None:
    """Whatever the bytes, taking plain heads in one pass changes no frame and no error."""
    stream = b"".join(parts)
    chunks = split(stream, cuts)
    fast = parse_chunks(chunks, limits)
    reference = parse_chunks(chunks, limits, HeadByHeadParser)
    assert fast.items == reference.items
    assert fast.failed_after == reference.failed_after


def gathering_every_body(limits: ParserLimits) -> FrameParser:
    """A parser that treats every body with a content-length as a large one."""
    return FrameParser(limits, large_body=0)


@PROFILE
@given(
    st.lists(st.one_of(plain_frames(), frames().map(serialize), FRAGMENTS), max_size=8),
    st.lists(st.integers(0, 600), max_size=6),
    LIMITS,
)
def test_gathering_large_bodies_read_by_read_changes_nothing(
    parts: list[bytes], cuts: list[int], limits: ParserLimits
) -> None:
    """Bodies kept in the pieces they arrive in make the same frames and errors, at the
    same bytes, within the same memory bound."""
    stream = b"".join(parts)
    bytewise = [stream[i : i + 1] for i in range(len(stream))]
    for chunks in (split(stream, cuts), bytewise):
        gathered = parse_chunks(chunks, limits, gathering_every_body)
        reference = parse_chunks(chunks, limits)
        assert gathered.items == reference.items
        assert gathered.failed_after == reference.failed_after
        biggest_chunk = max((len(c) for c in chunks), default=0)
        assert gathered.max_buffered <= limits.max_frame + biggest_chunk
