"""StompConnection: a client and a server wired together in memory, bytes only."""

from __future__ import annotations

import pytest

from buzon.errors import ErrorCode, LocalProtocolError
from buzon.stomp import (
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Connected,
    ConnState,
    Disconnect,
    Error,
    Event,
    Message,
    Nack,
    Receipt,
    Role,
    Send,
    StompConnection,
    Subscribe,
    Unsubscribe,
)

from .helpers import ConnectionPair, error_frame, raw_server, state_of

LOGIN = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"


def test_login_negotiates_version_and_fills_both_events() -> None:
    pair = ConnectionPair(client_heart_beat=(1000, 2000), server_heart_beat=(3000, 500))
    connect, connected = pair.login()
    assert connect == Connect(
        version="1.2",
        login="user",
        passcode="secret",
        host="/",
        accept_version=("1.2",),
        heart_beat=(1000, 2000),
        headers=(
            ("accept-version", "1.2"),
            ("host", "/"),
            ("login", "user"),
            ("passcode", "secret"),
            ("heart-beat", "1000,2000"),
        ),
    )
    assert connected.version == "1.2"
    assert connected.server == "buzon/test"
    assert connected.session == "s-1"
    # the server announces what it negotiated: it beats every 3 s, expects one every 1 s
    assert connected.heart_beat == (3000, 1000)
    assert pair.server.negotiated_heart_beat == (3.0, 1.0)
    assert pair.client.negotiated_heart_beat == (1.0, 3.0)
    assert pair.server.state is ConnState.CONNECTED
    assert pair.client.state is ConnState.CONNECTED
    assert not pair.server.close_expected()
    assert not pair.client.close_expected()


def test_connect_bytes() -> None:
    client = StompConnection(Role.CLIENT, heart_beat=(0, 0))
    client.connect(login=None, passcode=None, headers=(("host", "dup"), ("x-extra", "1")))
    assert client.state is ConnState.CONNECTING
    assert client.data_to_send() == (
        b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\nx-extra:1\n\n\0"
    )
    assert client.data_to_send() == b""


def test_stomp_command_logs_in_too() -> None:
    server = raw_server(b"STOMP\naccept-version:1.1,1.2\nhost:h\n\n\0", login=False)
    event = server.next_event()
    assert isinstance(event, Connect)
    assert event.accept_version == ("1.1", "1.2")
    assert event.heart_beat == (0, 0)
    assert server.state is ConnState.CONNECTING


def test_frames_pipelined_behind_connect_wait_for_accept_and_get_full_limits() -> None:
    big = b"x" * 10_000  # over the pre-login body limit
    server = raw_server(LOGIN + b"SEND\ndestination:/q\n\n" + big + b"\0", login=False)
    assert isinstance(server.next_event(), Connect)
    assert server.next_event() is None  # held while the login is decided
    assert server.state is ConnState.CONNECTING
    server.accept(session="s", server="b")
    event = server.next_event()
    assert isinstance(event, Send)
    assert event.body == big


def test_pre_login_limits_apply_before_login() -> None:
    server = raw_server(b"CONNECT\nlogin:" + b"x" * 5000 + b"\n\n\0", login=False)
    assert server.next_event() is None
    assert server.state is ConnState.FAILED
    assert error_frame(server.data_to_send()).get("message") == "command or header line too long"


def refused(server: StompConnection, code: ErrorCode, receipt: str | None = None) -> None:
    """Assert the server answered ERROR with ``code`` and wants to close."""
    assert server.next_event() is None
    assert server.state is ConnState.FAILED
    assert server.close_expected()
    error = error_frame(server.data_to_send())
    assert error.get("message") == code.message
    assert error.get("code") == code.name
    assert error.get("receipt-id") == receipt
    assert server.next_event() is None
    assert server.data_to_send() == b""


VIOLATIONS_AFTER_LOGIN = {
    "unknown command": (b"FLY\nreceipt:1\n\n\0", ErrorCode.UNKNOWN_COMMAND, None),
    "bad escape": (b"SEND\ndestination:/q\nk:\\t\n\n\0", ErrorCode.BAD_ESCAPE, None),
    "SEND without destination": (b"SEND\nreceipt:7\n\nx\0", ErrorCode.MISSING_HEADER, "7"),
    "SUBSCRIBE without destination": (b"SUBSCRIBE\nid:1\n\n\0", ErrorCode.MISSING_HEADER, None),
    "SUBSCRIBE without id": (
        b"SUBSCRIBE\ndestination:/q\nreceipt:r\n\n\0",
        ErrorCode.MISSING_HEADER,
        "r",
    ),
    "bad ack mode": (
        b"SUBSCRIBE\ndestination:/q\nid:1\nack:sometimes\nreceipt:r\n\n\0",
        ErrorCode.BAD_HEADER_VALUE,
        "r",
    ),
    "empty ack mode": (
        b"SUBSCRIBE\ndestination:/q\nid:1\nack:\n\n\0",
        ErrorCode.BAD_HEADER_VALUE,
        None,
    ),
    "UNSUBSCRIBE without id": (b"UNSUBSCRIBE\n\n\0", ErrorCode.MISSING_HEADER, None),
    "ACK without id": (b"ACK\nreceipt:a\n\n\0", ErrorCode.MISSING_HEADER, "a"),
    "NACK without id": (b"NACK\n\n\0", ErrorCode.MISSING_HEADER, None),
    "BEGIN without transaction": (b"BEGIN\n\n\0", ErrorCode.MISSING_HEADER, None),
    "COMMIT without transaction": (b"COMMIT\n\n\0", ErrorCode.MISSING_HEADER, None),
    "ABORT without transaction": (b"ABORT\n\n\0", ErrorCode.MISSING_HEADER, None),
    "CONNECT again": (
        b"CONNECT\naccept-version:1.2\nreceipt:c\n\n\0",
        ErrorCode.UNEXPECTED_FRAME,
        "c",
    ),
    "a server frame": (b"MESSAGE\nreceipt:m\n\n\0", ErrorCode.UNEXPECTED_FRAME, "m"),
    "frame too large": (
        b"SEND\ndestination:/q\ncontent-length:99999999\n\n",
        ErrorCode.FRAME_TOO_LARGE,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS_AFTER_LOGIN))
def test_violation_after_login_gets_error_then_close(name: str) -> None:
    data, code, receipt = VIOLATIONS_AFTER_LOGIN[name]
    refused(raw_server(data), code, receipt)


VIOLATIONS_BEFORE_LOGIN = {
    "frame before CONNECT": (
        b"SEND\ndestination:/q\nreceipt:9\n\nx\0",
        ErrorCode.NOT_CONNECTED,
        "9",
    ),
    "DISCONNECT before CONNECT": (b"DISCONNECT\n\n\0", ErrorCode.NOT_CONNECTED, None),
    "only 1.0 offered": (
        b"CONNECT\naccept-version:1.0\nreceipt:v\n\n\0",
        ErrorCode.UNSUPPORTED_VERSION,
        "v",
    ),
    "no accept-version means 1.0": (b"CONNECT\nhost:/\n\n\0", ErrorCode.UNSUPPORTED_VERSION, None),
    "bad heart-beat": (
        b"CONNECT\naccept-version:1.2\nheart-beat:10, 10\n\n\0",
        ErrorCode.BAD_HEADER_VALUE,
        None,
    ),
    "unknown command": (b"HELO\n\n\0", ErrorCode.UNKNOWN_COMMAND, None),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS_BEFORE_LOGIN))
def test_violation_before_login_gets_error_then_close(name: str) -> None:
    data, code, receipt = VIOLATIONS_BEFORE_LOGIN[name]
    refused(raw_server(data, login=False), code, receipt)


def test_unsupported_version_error_names_the_versions_we_speak() -> None:
    server = raw_server(b"CONNECT\naccept-version:1.0\n\n\0", login=False)
    assert server.next_event() is None
    error = error_frame(server.data_to_send())
    assert error.get("version") == "1.1,1.2"
    assert error.get("content-type") == "text/plain;charset=utf-8"
    assert b"1.2" in error.body


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [("1.2", "1.2"), ("1.1", "1.1"), ("1.0,1.1", "1.1"), ("1.1,1.2", "1.2"), ("1.2,1.1", "1.2")],
)
def test_server_chooses_the_best_version_both_speak(offered: str, chosen: str) -> None:
    server = raw_server(f"CONNECT\naccept-version:{offered}\n\n\0".encode(), login=False)
    event = server.next_event()
    assert isinstance(event, Connect)
    assert event.version == chosen
    server.accept(session="s", server="t")
    assert server.version == chosen
    assert f"\nversion:{chosen}\n".encode() in server.data_to_send()


def test_stomp_1_1_acks_name_the_message_and_subscription() -> None:
    server = raw_server(b"CONNECT\naccept-version:1.1\n\n\0", login=False)
    assert isinstance(server.next_event(), Connect)
    server.accept(session="s", server="t")
    server.data_to_send()
    server.receive_data(
        b"ACK\nmessage-id:m-7\nsubscription:s1\nreceipt:r\n\n\0"
        b"NACK\nmessage-id:m-8\nsubscription:s1\ntransaction:t\n\n\0",
        0.0,
    )
    assert server.next_event() == Ack("m-7", None, "r", "s1")
    assert server.next_event() == Nack("m-8", "t", None, "s1")
    # a 1.2-style ACK (ack id only) is missing 1.1's required headers
    server.receive_data(b"ACK\nid:5\n\n\0", 0.0)
    refused(server, ErrorCode.MISSING_HEADER)


def test_stomp_1_2_acks_need_the_ack_id() -> None:
    server = raw_server(b"ACK\nmessage-id:m-7\nsubscription:s1\n\n\0")
    refused(server, ErrorCode.MISSING_HEADER)


def test_client_events_reach_the_server_as_sent() -> None:
    pair = ConnectionPair()
    pair.login()
    sent: list[Event] = [
        Send("/q", (("x-a", "1"), ("destination", "/spoof")), b"body\0", "r1", "t1"),
        Send("/q"),
        Subscribe("/q", "s1", "client-individual", (("prefetch-count", "5"),), "r2"),
        Subscribe("/q", "s2"),
        Unsubscribe("s1", "r3", (("id", "s1"), ("receipt", "r3"))),
        Ack("a1", "t1", "r4"),
        Nack("a2"),
        Begin("t2", "r5"),
        Commit("t2"),
        Abort("t3", "r6"),
    ]
    for event in sent:
        pair.client.send(event)
    received = pair.events(pair.server)
    assert received == [
        Send(
            "/q",
            (
                ("destination", "/q"),
                ("transaction", "t1"),
                ("receipt", "r1"),
                ("x-a", "1"),
                ("content-length", "5"),
            ),
            b"body\0",
            "r1",
            "t1",
        ),
        Send("/q", (("destination", "/q"),), b"", None, None),
        Subscribe(
            "/q",
            "s1",
            "client-individual",
            (
                ("destination", "/q"),
                ("id", "s1"),
                ("ack", "client-individual"),
                ("receipt", "r2"),
                ("prefetch-count", "5"),
            ),
            "r2",
        ),
        Subscribe("/q", "s2", "auto", (("destination", "/q"), ("id", "s2"), ("ack", "auto")), None),
        *sent[4:],
    ]


def test_subscribe_without_ack_header_is_auto() -> None:
    server = raw_server(b"SUBSCRIBE\ndestination:/q\nid:1\n\n\0")
    event = server.next_event()
    assert isinstance(event, Subscribe)
    assert event.ack == "auto"


def test_server_events_reach_the_client_as_sent() -> None:
    pair = ConnectionPair()
    pair.login()
    message = Message("/q", "m-1", "s1", "ack-1", (("x-user", "a:b\nc"),), b"\0body", True)
    pair.server.send(message)
    pair.server.send(Message("/q", "m-2", "s1", None, (), b""))
    pair.server.send(Receipt("r:1"))
    assert pair.events(pair.client) == [
        message,
        Message("/q", "m-2", "s1", None, (), b"", False),
        Receipt("r:1"),
    ]


def test_server_error_event_reaches_the_client_which_fails() -> None:
    pair = ConnectionPair()
    pair.login()
    error = Error("broker says no", b"details", "r9", (("x-code", "42"),))
    pair.server.send(error)
    assert pair.server.state is ConnState.FAILED
    assert pair.events(pair.client) == [error]
    assert pair.client.state is ConnState.FAILED
    assert pair.client.close_expected()
    assert pair.client.next_event() is None


def test_fail_queues_one_error_and_later_failures_are_ignored() -> None:
    server = raw_server(LOGIN, login=False)
    assert isinstance(server.next_event(), Connect)
    server.fail(ErrorCode.AUTH_FAILED)
    server.fail(ErrorCode.INTERNAL_ERROR, "second")
    error = error_frame(server.data_to_send())
    assert error.get("message") == "authentication failed"
    assert error.body == b""
    assert error.get("content-type") is None
    assert server.state is ConnState.FAILED
    assert server.ended
    assert not server.delivering  # no MESSAGE or RECEIPT may follow the ERROR


def test_fail_detail_is_cut_short() -> None:
    server = raw_server(b"")
    server.fail(ErrorCode.BAD_DESTINATION, "x" * 1000, receipt_id="r")
    error = error_frame(server.data_to_send())
    assert error.body == b"x" * 200
    assert error.get("receipt-id") == "r"


def test_disconnect_then_input_is_ignored_and_the_receipt_still_goes_out() -> None:
    pair = ConnectionPair()
    pair.login()
    pair.client.send(Disconnect(receipt="bye"))
    assert pair.client.state is ConnState.DISCONNECTING
    assert pair.client.close_expected()
    assert pair.events(pair.server) == [Disconnect("bye")]
    assert pair.server.state is ConnState.DISCONNECTING
    assert pair.server.close_expected()
    pair.server.receive_data(b"SEND\ndestination:/q\n\nlate\0", 1.0)
    assert pair.server.next_event() is None
    pair.server.send(Message("/q", "m", "s", None, (), b"in flight"))
    pair.server.send(Receipt("bye"))
    received = pair.events(pair.client)
    assert [type(e) for e in received] == [Message, Receipt]
    pair.client.receive_eof()
    assert pair.client.next_event() is None
    assert state_of(pair.client) is ConnState.CLOSED
    pair.server.receive_eof()
    assert pair.server.next_event() is None
    assert pair.server.close_expected()


def test_a_receipt_owed_for_disconnect_survives_the_peers_half_close() -> None:
    pair = ConnectionPair()
    pair.login()
    pair.client.send(Disconnect(receipt="bye"))
    assert pair.events(pair.server) == [Disconnect("bye")]
    pair.server.receive_eof()
    assert pair.server.next_event() is None
    assert pair.server.close_expected()
    assert state_of(pair.server) is ConnState.DISCONNECTING
    pair.server.send(Receipt("bye"))
    assert [type(e) for e in pair.events(pair.client)] == [Receipt]


def test_eof_still_delivers_complete_frames_then_closes() -> None:
    server = raw_server(b"SEND\ndestination:/q\n\na\0SEND\ndestination:/q\n\npart")
    server.receive_eof()
    assert server.close_expected()
    assert isinstance(server.next_event(), Send)
    assert server.next_event() is None
    assert server.state is ConnState.CLOSED
    assert server.data_to_send() == b""


def test_eof_after_failure_stays_failed() -> None:
    server = raw_server(b"NOPE\n\n\0")
    server.receive_eof()
    assert server.next_event() is None
    assert server.state is ConnState.FAILED


def test_empty_data_and_data_after_failure_are_ignored() -> None:
    server = raw_server(b"NOPE\n\n\0")
    assert server.next_event() is None
    server.receive_data(b"", 5.0)
    server.receive_data(b"SEND\n\n\0", 5.0)
    assert server.next_event() is None


def test_heart_beat_eols_are_skipped() -> None:
    server = raw_server(b"\n\r\n\nSEND\ndestination:/q\n\n\0\n")
    assert isinstance(server.next_event(), Send)
    assert server.next_event() is None
    assert server.state is ConnState.CONNECTED


# -- the client side of violations --------------------------------------------------------


def connecting_client() -> StompConnection:
    client = StompConnection(Role.CLIENT, heart_beat=(0, 0))
    client.connect(login="u", passcode="p")
    client.data_to_send()
    return client


def assert_failed_silently(client: StompConnection) -> None:
    assert client.next_event() is None
    assert client.state is ConnState.FAILED
    assert client.close_expected()
    assert client.data_to_send() == b""  # clients never send ERROR


@pytest.mark.parametrize(
    "data",
    [
        b"CONNECTED\nversion:1.1\n\n\0",
        b"CONNECTED\n\n\0",
        b"CONNECTED\nversion:1.2\nheart-beat:x\n\n\0",
        b"MESSAGE\ndestination:/q\nmessage-id:1\nsubscription:s\n\n\0",
        b"garbage\n\n\0",
    ],
)
def test_client_fails_silently_on_a_bad_login_answer(data: bytes) -> None:
    client = connecting_client()
    client.receive_data(data, 0.0)
    assert_failed_silently(client)


@pytest.mark.parametrize(
    "data",
    [
        b"MESSAGE\ndestination:/q\nmessage-id:1\n\n\0",
        b"RECEIPT\n\n\0",
        b"CONNECTED\nversion:1.2\n\n\0",
        b"SEND\ndestination:/q\n\n\0",
    ],
)
def test_client_fails_silently_on_a_bad_frame_after_login(data: bytes) -> None:
    client = connecting_client()
    client.receive_data(b"CONNECTED\nversion:1.2\n\n\0", 0.0)
    assert isinstance(client.next_event(), Connected)
    client.receive_data(data, 0.0)
    assert_failed_silently(client)


def test_client_gets_error_before_connected() -> None:
    client = connecting_client()
    client.receive_data(b"ERROR\nmessage:authentication failed\n\n\0", 0.0)
    assert client.next_event() == Error("authentication failed")
    assert client.state is ConnState.FAILED


def test_client_reads_an_error_without_message_header() -> None:
    client = connecting_client()
    client.receive_data(b"ERROR\n\n\0", 0.0)
    assert client.next_event() == Error("")


# -- our own mistakes raise ---------------------------------------------------------------


def test_illegal_sends_raise_local_protocol_error() -> None:
    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Send("/q"))  # before CONNECT
    with pytest.raises(LocalProtocolError):
        pair.server.send(Message("/q", "m", "s", None, (), b""))  # before login
    with pytest.raises(LocalProtocolError):
        pair.server.accept(session="s", server="b")  # no CONNECT received
    with pytest.raises(LocalProtocolError):
        pair.server.connect(login=None, passcode=None)  # servers do not connect
    pair.login()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Message("/q", "m", "s", None, (), b""))  # a server frame
    with pytest.raises(LocalProtocolError):
        pair.server.send(Send("/q"))  # a client frame
    with pytest.raises(LocalProtocolError):
        pair.client.send(Connect("1.2", None, None, None, ("1.2",), (0, 0), ()))
    with pytest.raises(LocalProtocolError):
        pair.server.send(Connected("1.2", (0, 0), None, None, ()))
    with pytest.raises(LocalProtocolError):
        pair.client.connect(login=None, passcode=None)  # twice
    with pytest.raises(LocalProtocolError):
        pair.client.accept(session="s", server="b")  # clients do not accept
    with pytest.raises(LocalProtocolError):
        pair.server.accept(session="s", server="b")  # twice
    pair.server.fail(ErrorCode.SERVER_SHUTDOWN)
    with pytest.raises(LocalProtocolError):
        pair.server.send(Receipt("r"))  # after failing


def test_header_injection_in_connect_is_refused_before_anything_is_queued() -> None:
    client = StompConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.connect(login="admin\npasscode:x", passcode="y")
    assert client.state is ConnState.AWAITING_CONNECT
    assert client.data_to_send() == b""
    server = raw_server(LOGIN, login=False)
    assert isinstance(server.next_event(), Connect)
    with pytest.raises(LocalProtocolError):
        server.accept(session="s\r", server="b")
    assert server.state is ConnState.CONNECTING


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        StompConnection(Role.SERVER, heart_beat=(-1, 0))
    with pytest.raises(ValueError, match="grace"):
        StompConnection(Role.SERVER, heartbeat_grace=0.5)


def test_send_uses_the_first_of_repeated_headers() -> None:
    server = raw_server(
        b"SEND\ndestination:/a\ndestination:/b\nreceipt:1\nreceipt:2\n"
        b"transaction:t1\ntransaction:t2\n\n\0"
    )
    event = server.next_event()
    assert isinstance(event, Send)
    assert (event.destination, event.receipt, event.transaction) == ("/a", "1", "t1")
    assert len(event.headers) == 6
