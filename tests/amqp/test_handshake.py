"""The handshake: protocol header, login (PLAIN, AMQPLAIN, refused), tuning, virtual host."""

from __future__ import annotations

import pytest
from pamqp import commands

from buzon import __version__
from buzon.amqp import (
    AmqpConnection,
    AmqpLimits,
    AmqpState,
    ChannelOpened,
    ConnectionClosed,
    ConnectionCloseOk,
    ConnectionOpened,
    LoginRequested,
    ReplyCode,
)
from buzon.amqp.codec import PROTOCOL_HEADER, method_frame
from buzon.amqp.tables import encode_table
from buzon.errors import LocalProtocolError

from .helpers import PLAIN_OK, closed_with, events, open_connection, read_frames, wire


def test_start_announces_buzon_and_its_capabilities() -> None:
    conn = AmqpConnection()
    assert events(conn, PROTOCOL_HEADER) == []
    ((channel, start),) = read_frames(conn.data_to_send())
    assert channel == 0
    assert isinstance(start, commands.Connection.Start)
    assert (start.version_major, start.version_minor) == (0, 9)
    props = start.server_properties
    assert props["product"] == "buzon"
    assert props["version"] == __version__
    assert "rabbit" not in str(props).lower()
    caps = props["capabilities"]
    assert isinstance(caps, dict)
    for name in (
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ):
        assert caps[name] is True
    assert caps["exchange_exchange_bindings"] is False
    assert start.mechanisms == "PLAIN AMQPLAIN"
    assert start.locales == "en_US"


@pytest.mark.parametrize(
    "header", [b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09", b"GET / HTTP/1.1\r\n", b"\x16\x03"]
)
def test_bad_protocol_header_gets_ours_and_a_close(header: bytes) -> None:
    conn = AmqpConnection()
    assert events(conn, header) == []
    assert conn.data_to_send() == PROTOCOL_HEADER
    assert conn.close_expected()
    assert conn.state is AmqpState.FAILED


def test_header_in_single_bytes_is_accepted() -> None:
    conn = AmqpConnection()
    for byte in PROTOCOL_HEADER:
        events(conn, bytes((byte,)))
    assert conn.state is AmqpState.AWAITING_START_OK


def login(start_ok: commands.Connection.StartOk) -> tuple[AmqpConnection, list[object]]:
    conn = AmqpConnection()
    found = events(conn, PROTOCOL_HEADER + wire((0, start_ok)))
    return conn, list(found)


def test_plain_login() -> None:
    conn, found = login(PLAIN_OK)
    (event,) = found
    assert isinstance(event, LoginRequested)
    assert (event.mechanism, event.username, event.password) == ("PLAIN", "alice", "secret")
    assert event.client_properties == PLAIN_OK.client_properties
    assert event.locale == "en_US"
    assert conn.client_capabilities["consumer_cancel_notify"] is True


def test_amqplain_login() -> None:
    # py-amqp's form: the table without its size, as a binary long string
    table = encode_table({"LOGIN": "bob", "PASSWORD": "tök€n"})[4:]
    start_ok = method_frame(0, commands.Connection.StartOk, {}, "AMQPLAIN", table, "en_US")
    conn = AmqpConnection()
    found = events(conn, PROTOCOL_HEADER + start_ok)
    (event,) = found
    assert isinstance(event, LoginRequested)
    assert (event.mechanism, event.username, event.password) == ("AMQPLAIN", "bob", "tök€n")


@pytest.mark.parametrize(
    ("mechanism", "response"),
    [("PLAIN", "alice"), ("PLAIN", "\x00a\x00b\x00c"), ("EXTERNAL", ""), ("AMQPLAIN", "\x05LOGIN")],
)
def test_malformed_credentials_close_403(mechanism: str, response: str) -> None:
    conn, found = login(commands.Connection.StartOk(mechanism=mechanism, response=response))
    assert found == []
    assert closed_with(conn) == ReplyCode.ACCESS_REFUSED


def test_refused_login_is_close_403_after_the_handshake() -> None:
    conn, _ = login(PLAIN_OK)
    conn.data_to_send()
    conn.refuse_login("wrong username or password")
    ((_, close),) = read_frames(conn.data_to_send())
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 403
    assert "wrong username" in close.reply_text
    assert conn.state is AmqpState.CLOSING
    assert not conn.close_expected()
    assert events(conn, wire((0, commands.Connection.CloseOk()))) == [ConnectionCloseOk()]
    assert conn.close_expected()


def test_login_decision_only_once() -> None:
    conn, _ = login(PLAIN_OK)
    conn.accept_login()
    with pytest.raises(LocalProtocolError):
        conn.accept_login()
    with pytest.raises(LocalProtocolError):
        AmqpConnection().refuse_login("x")


def test_tune_then_open() -> None:
    conn, _ = login(PLAIN_OK)
    conn.data_to_send()
    conn.accept_login()
    ((_, tune),) = read_frames(conn.data_to_send())
    assert isinstance(tune, commands.Connection.Tune)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    tune_ok = commands.Connection.TuneOk(channel_max=100, frame_max=8192, heartbeat=10)
    found = events(conn, wire((0, tune_ok), (0, commands.Connection.Open(virtual_host="/"))))
    assert found == [ConnectionOpened("/", 100, 8192, 10)]
    ((_, open_ok),) = read_frames(conn.data_to_send())
    assert isinstance(open_ok, commands.Connection.OpenOk)
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (100, 8192, 10)


def test_zero_in_tune_ok_means_the_server_limits() -> None:
    conn = open_connection(AmqpLimits(channel_max=10, frame_max=65536))
    assert (conn.channel_max, conn.frame_max) == (10, 65536)


@pytest.mark.parametrize(
    ("tune_ok", "code"),
    [
        ((3000, 0, 0), ReplyCode.NOT_ALLOWED),
        ((0, 262144, 0), ReplyCode.FRAME_ERROR),
        ((0, 1024, 0), ReplyCode.FRAME_ERROR),
    ],
)
def test_tune_ok_beyond_limits_closes(tune_ok: tuple[int, int, int], code: ReplyCode) -> None:
    conn, _ = login(PLAIN_OK)
    conn.accept_login()
    conn.data_to_send()
    events(conn, wire((0, commands.Connection.TuneOk(*tune_ok))))
    assert closed_with(conn) == code


def test_other_virtual_host_is_refused_clearly() -> None:
    conn, _ = login(PLAIN_OK)
    conn.accept_login()
    conn.data_to_send()
    tune_ok = commands.Connection.TuneOk(0, 0, 0)
    events(conn, wire((0, tune_ok), (0, commands.Connection.Open(virtual_host="prod"))))
    frames = read_frames(conn.data_to_send())
    close = frames[-1][1]
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 530
    assert "prod" in close.reply_text
    assert "serves only /" in close.reply_text
    assert "'" not in close.reply_text  # clients quote the text themselves


def test_methods_out_of_handshake_order_close_503() -> None:
    conn = AmqpConnection()
    events(conn, PROTOCOL_HEADER + wire((0, commands.Connection.Open(virtual_host="/"))))
    assert closed_with(conn) == ReplyCode.COMMAND_INVALID


def test_frames_before_tune_are_bounded() -> None:
    conn, _ = login(PLAIN_OK)
    conn.receive_data(b"\x01" * (conn.frame_max + 1), 0.0)
    assert closed_with(conn) == ReplyCode.UNEXPECTED_FRAME


def test_oversized_frame_before_tune_closes_501() -> None:
    conn = AmqpConnection()
    events(conn, PROTOCOL_HEADER + b"\x01\x00\x00\x00\x10\x00\x00")
    assert closed_with(conn) == ReplyCode.FRAME_ERROR


def test_client_close_is_answered() -> None:
    conn = open_connection()
    found = events(conn, wire((0, commands.Connection.Close(200, "bye", 0, 0))))
    assert found == [ConnectionClosed(200, "bye", 0, 0)]
    ((_, close_ok),) = read_frames(conn.data_to_send())
    assert isinstance(close_ok, commands.Connection.CloseOk)
    assert conn.close_expected()


def test_crossing_closes() -> None:
    conn = open_connection()
    conn.close_connection(ReplyCode.CONNECTION_FORCED, "shutting down")
    conn.data_to_send()
    events(conn, wire((0, commands.Connection.Close(200, "bye", 0, 0))))
    ((_, close_ok),) = read_frames(conn.data_to_send())
    assert isinstance(close_ok, commands.Connection.CloseOk)
    assert conn.close_expected()


def test_eof_closes_after_what_was_received() -> None:
    conn = open_connection()
    conn.receive_data(wire((1, commands.Channel.Open())), 1.0)
    conn.receive_eof()
    assert conn.close_expected()
    assert isinstance(conn.next_event(), ChannelOpened)
    assert conn.next_event() is None
    assert conn.close_expected()
    assert conn.state is AmqpState.CLOSED
