"""serialize() and the MESSAGE fast path."""

from __future__ import annotations

import pytest

from buzon.errors import ErrorCode, FrameError, LocalProtocolError
from buzon.stomp import Command, Frame, Message, serialize
from buzon.stomp.escaping import escape, unescape
from buzon.stomp.serializer import message_frame
from tests.stomp.helpers import chunks_of, message_bytes


def test_minimal_frame() -> None:
    assert serialize(Frame(Command.DISCONNECT)) == b"DISCONNECT\n\n\0"


def test_headers_are_escaped_and_content_length_is_written() -> None:
    frame = Frame(Command.SEND, (("a:b", "line\nbreak\r\\"),), b"x\0y")
    assert serialize(frame) == b"SEND\na\\cb:line\\nbreak\\r\\\\\ncontent-length:3\n\nx\0y\0"


def test_content_length_of_the_frame_is_replaced_by_the_true_one() -> None:
    frame = Frame(Command.SEND, (("content-length", "999"), ("k", "v")), b"abc")
    assert serialize(frame) == b"SEND\nk:v\ncontent-length:3\n\nabc\0"


def test_empty_body_gets_no_content_length() -> None:
    frame = Frame(Command.SEND, (("content-length", "5"),))
    assert serialize(frame) == b"SEND\n\n\0"


def test_connect_headers_are_written_raw() -> None:
    frame = Frame(Command.CONNECT, (("login", "a\\b:c"),))
    assert serialize(frame) == b"CONNECT\nlogin:a\\b:c\n\n\0"


@pytest.mark.parametrize(
    ("name", "value"), [("log:in", "x"), ("login", "a\nb"), ("login", "a\rb"), ("lo\ngin", "x")]
)
def test_connect_headers_that_need_escaping_are_refused(name: str, value: str) -> None:
    for command in (Command.CONNECT, Command.CONNECTED):
        with pytest.raises(LocalProtocolError):
            serialize(Frame(command, ((name, value),)))


def test_non_ascii_headers_are_utf8() -> None:
    assert serialize(Frame(Command.SEND, (("k", "ñ"),))) == "SEND\nk:ñ\n\n\0".encode()


SPOOFED = (
    ("destination", "/queue/evil"),
    ("message-id", "x"),
    ("subscription", "x"),
    ("ack", "x"),
    ("content-length", "1"),
    ("receipt", "x"),
    ("transaction", "x"),
    ("redelivered", "false"),
)


def test_message_orders_standard_headers_and_drops_spoofed_ones() -> None:
    message = Message("/q", "m-1", "s1", "7", (*SPOOFED, ("x-user", "v")), b"hello", True)
    chunks = chunks_of(message)
    assert len(chunks) == 3  # the fast path: nothing needed escaping
    assert b"".join(chunks) == (
        b"MESSAGE\nsubscription:s1\nmessage-id:m-1\ndestination:/q\nack:7\n"
        b"redelivered:true\nx-user:v\ncontent-length:5\n\nhello\0"
    )


def test_message_values_that_need_escaping_take_the_general_path() -> None:
    message = Message("/queue/a:b", "m-1", "s\n1", None, (*SPOOFED, ("x-user", "v:1")), b"")
    chunks = chunks_of(message)
    assert chunks == (
        b"MESSAGE\nsubscription:s\\n1\nmessage-id:m-1\ndestination:/queue/a\\cb\n"
        b"x-user:v\\c1\n\n\0",
    )


@pytest.mark.parametrize("tricky", ["a:b", "a\nb", "a\rb", "a\\b", "::", "\n\n"])
def test_message_fast_path_never_skips_needed_escaping(tricky: str) -> None:
    for message in (
        Message(tricky, "m", "s", "a", (("k", "v"),), b"x"),
        Message("d", tricky, "s", None, (), b""),
        Message("d", "m", tricky, "a", (("k", "v"),), b"x", True),
        Message("d", "m", "s", tricky, (), b"x"),
        Message("d", "m", "s", "a", ((tricky, "v"),), b"x"),
        Message("d", "m", "s", "a", (("k", tricky), ("k2", "v2")), b"x"),
    ):
        assert message_bytes(message) == serialize(message_frame(message))


def test_message_without_ack_redelivery_or_body() -> None:
    message = Message("/q", "m", "s", None, (), b"")
    assert message_bytes(message) == (
        b"MESSAGE\nsubscription:s\nmessage-id:m\ndestination:/q\n\n\0"
    )


def test_escape_returns_the_same_object_when_nothing_needs_escaping() -> None:
    text = "plain-text/with.dots"
    assert escape(text) is text
    assert unescape(text) is text


@pytest.mark.parametrize("bad", ["\\t", "a\\", "\\\\\\", "\\C", "\\x41"])
def test_unescape_refuses_unknown_escapes(bad: str) -> None:
    with pytest.raises(FrameError) as caught:
        unescape(bad)
    assert caught.value.code is ErrorCode.BAD_ESCAPE


def test_unescape_handles_runs_of_backslashes() -> None:
    assert unescape("\\\\\\\\n") == "\\\\n"
    assert unescape("\\\\\\n") == "\\\n"
    assert unescape("\\r\\n\\c\\\\") == "\r\n:\\"
