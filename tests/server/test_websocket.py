"""STOMP over WebSocket at /ws, with a real WebSocket client (``websockets``) on a real broker.

The WebSocket side runs the same STOMP session as TCP, so these tests check what is
particular to it: the upgrade (origin, subprotocol), message framing in both directions,
the size cap, and that flow control and errors reach a WebSocket peer as they reach a TCP one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from buzon.server.close_reasons import CloseReason
from buzon.server.config import ConfigError, Settings, load_settings
from buzon.server.http.ws_protocol import MAX_MESSAGE, PRE_LOGIN_MESSAGE
from buzon.server.stomp_session import StompSession
from buzon.stomp import (
    Ack,
    Command,
    Connected,
    Frame,
    Message,
    Receipt,
    Role,
    StompConnection,
)
from buzon.store import MemoryStore
from tests.http.helpers import admin_auth, api
from tests.server.harness import (
    ADMIN,
    PASSWORD,
    TIMEOUT,
    Client,
    frames_in,
    raw_exchange,
    running_server,
)
from tests.server.test_flow_control import sends
from tests.server.test_messaging import send, subscribe, subscribed

E = TypeVar("E")
KIB = 1024
STOMP_SUBPROTOCOLS = ("v10.stomp", "v11.stomp", "v12.stomp")  # as stomp.js offers them


class WsClient:
    """A STOMP client on the sans-IO core, over a WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.conn = StompConnection(Role.CLIENT, heart_beat=(0, 0))
        self.messages_were_binary = True

    async def flush(self) -> None:
        await self.ws.send(self.conn.data_to_send())

    async def send(self, *events: Any) -> None:
        for event in events:
            self.conn.send(event)
        await self.flush()

    async def next_event(self, within: float = TIMEOUT) -> Any:
        async with asyncio.timeout(within):
            while (event := self.conn.next_event()) is None:
                try:
                    data = await self.ws.recv()
                except ConnectionClosed:
                    self.conn.receive_eof()
                    if (event := self.conn.next_event()) is None:
                        raise
                    return event
                if isinstance(data, str):
                    self.messages_were_binary = False
                    data = data.encode()
                self.conn.receive_data(data, asyncio.get_running_loop().time())
            return event

    async def expect(self, kind: type[E], within: float = TIMEOUT) -> E:
        event = await self.next_event(within)
        if not isinstance(event, kind):
            raise AssertionError(f"expected {kind.__name__}, got {event!r}")
        return event

    async def frames_until_closed(self, within: float = TIMEOUT) -> list[Frame]:
        """Every frame the broker sends from now until it closes the WebSocket."""
        data = b""
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    message = await self.ws.recv()
                    assert isinstance(message, bytes)
                    data += message
        return frames_in(data)


@contextlib.asynccontextmanager
async def ws_client(
    port: int,
    *,
    login: bool = True,
    subprotocols: Sequence[str] | None = STOMP_SUBPROTOCOLS,
    origin: str | None = None,
    **options: Any,
) -> AsyncIterator[WsClient]:
    """A WebSocket to ``/ws`` on ``port``, logged in as the admin unless ``login`` is False."""
    async with connect(
        f"ws://127.0.0.1:{port}/ws",
        subprotocols=None if subprotocols is None else [Subprotocol(s) for s in subprotocols],
        origin=None if origin is None else Origin(origin),
        proxy=None,
        max_size=None,
        **options,
    ) as ws:
        client = WsClient(ws)
        if login:
            client.conn.connect(login=ADMIN, passcode=PASSWORD, host="/")
            await client.flush()
            await client.expect(Connected)
        yield client


async def refusal(port: int, **options: Any) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a refused upgrade."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(port, login=False, **options):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


def only_session(server: BuzonServer) -> StompSession:
    (session,) = server.connections
    return session


async def test_publish_and_receive_over_websocket_with_binary_bodies(
    hasher: SecretHasher,
) -> None:
    body = bytes(range(256)) * 4  # NUL bytes and invalid UTF-8: only binary messages carry it
    async with running_server(hasher) as server, ws_client(server.http_port) as client:
        assert client.ws.subprotocol == "v12.stomp"
        assert client.ws.protocol.extensions == []  # no compression to inflate past the cap
        await client.send(subscribe("/queue/ws"), send("/queue/ws", body, receipt="sent"))
        events = [await client.next_event() for _ in range(3)]
        receipts = {e.receipt_id for e in events if isinstance(e, Receipt)}
        assert receipts == {"sub", "sent"}
        (message,) = (e for e in events if isinstance(e, Message))
        assert message.body == body
        assert message.destination == "/queue/ws"
        assert client.messages_were_binary


async def test_tcp_and_websocket_clients_reach_each_other(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server, ws_client(server.http_port) as browser:
        tcp = await subscribed(server.stomp_port, "/topic/news")
        await browser.send(subscribe("/topic/news"))
        await browser.expect(Receipt)

        await browser.send(send("/topic/news", b"from the browser"))
        assert (await browser.expect(Message)).body == b"from the browser"
        assert (await tcp.expect(Message)).body == b"from the browser"

        tcp.conn.send(send("/topic/news", b"from tcp"))
        await tcp.flush()
        assert (await browser.expect(Message)).body == b"from tcp"
        assert (await tcp.expect(Message)).body == b"from tcp"


async def test_websocket_connections_are_listed_as_such(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server, ws_client(server.http_port):
        await Client.connected(server.stomp_port)
        async with api(server.http_port) as http:
            response = await http.get("/connections", headers=await admin_auth(http))
        shown = {c["transport"]: c["protocol"] for c in response.json()}
        assert shown == {"tcp": "stomp/1.2", "websocket": "stomp/1.2"}


async def test_frames_split_across_messages_and_several_in_one_message(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server, ws_client(server.http_port, login=False) as c:
        c.conn.connect(login=ADMIN, passcode=PASSWORD, host="/")
        connect_frame = c.conn.data_to_send()
        for part in (connect_frame[:7], connect_frame[7:]):
            await c.ws.send(part)
        await c.expect(Connected)
        # SUBSCRIBE and SEND in one message, the SEND's body in a second one
        c.conn.send(subscribe("/queue/split"))
        c.conn.send(send("/queue/split", b"whole", receipt="sent"))
        frames = c.conn.data_to_send()
        await c.ws.send(frames[:-3])
        await c.ws.send(frames[-3:])
        events = [await c.next_event() for _ in range(3)]
        assert {e.receipt_id for e in events if isinstance(e, Receipt)} == {"sub", "sent"}
        assert [e.body for e in events if isinstance(e, Message)] == [b"whole"]


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (STOMP_SUBPROTOCOLS, "v12.stomp"),
        (("v10.stomp", "v11.stomp"), "v11.stomp"),
        (("chat", "v10.stomp"), "v10.stomp"),
        (None, None),  # no offer: plain STOMP anyway
    ],
)
async def test_best_stomp_subprotocol_is_chosen(
    hasher: SecretHasher, offered: Sequence[str] | None, chosen: str | None
) -> None:
    async with (
        running_server(hasher) as server,
        ws_client(server.http_port, subprotocols=offered) as client,
    ):
        assert client.ws.subprotocol == chosen
        assert only_session(server).protocol == "stomp/1.2"


async def test_offer_without_a_stomp_subprotocol_is_refused(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        status, body = await refusal(server.http_port, subprotocols=["mqtt"])
        assert status == 400
        assert "v12.stomp" in body["error"]["detail"]


async def test_origins_other_than_our_own_and_the_allowed_ones_are_refused(
    hasher: SecretHasher,
) -> None:
    app = "https://app.example.com"
    async with running_server(hasher, ws_origins=(app,)) as server:
        port = server.http_port
        for origin in (app, "https://APP.example.com", f"http://127.0.0.1:{port}", None):
            async with ws_client(port, origin=origin):
                pass
        for origin in ("https://evil.example", "http://127.0.0.1:1", "null", app + ":8443"):
            status, body = await refusal(port, origin=origin)
            assert status == 403, origin
            assert body["error"]["code"] == "ACCESS_DENIED"
        assert not server.connections


async def _send_and_wait(client: WsClient, data: bytes) -> None:
    await client.ws.send(data)
    await client.ws.recv()


async def test_oversized_message_closes_that_connection_only(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        async with ws_client(server.http_port) as client:
            session = only_session(server)
            with pytest.raises(ConnectionClosed):
                await _send_and_wait(client, b"x" * (MAX_MESSAGE + 1))
        await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
        assert session.close_reason is CloseReason.PROTOCOL_ERROR
        async with ws_client(server.http_port) as client:
            await client.send(send("/queue/after", b"still here", receipt="r"))
            await client.expect(Receipt)


async def test_before_login_a_message_may_be_no_larger_than_a_connect_frame(
    hasher: SecretHasher,
) -> None:
    """An anonymous peer cannot make the broker assemble a 16 MiB message; after login a
    1 MiB frame goes through."""
    async with running_server(hasher) as server:
        async with ws_client(server.http_port, login=False) as anonymous:
            with pytest.raises(ConnectionClosed):
                await _send_and_wait(anonymous, b"x" * (PRE_LOGIN_MESSAGE + 1))
            assert anonymous.ws.close_code == 1009  # message too big
        async with ws_client(server.http_port) as client:
            body = bytes(range(256)) * 4096  # 1 MiB
            await client.send(send("/queue/big", body, receipt="r"))
            await client.expect(Receipt)
        [queue] = server.broker.statistics().queues
        assert (queue.name, queue.depth, queue.bytes) == ("big", 1, len(body))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HELLO\n\n\x00", "unknown command"),
        (b"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:wrong\n\n\x00", None),
    ],
    ids=["malformed frame", "wrong password"],
)
async def test_error_frame_then_close_as_on_tcp(
    hasher: SecretHasher, data: bytes, message: str | None
) -> None:
    async with running_server(hasher) as server:
        tcp_frames, tcp_closed = await raw_exchange(server.stomp_port, data)
        async with ws_client(server.http_port, login=False) as client:
            await client.ws.send(data)
            frames = await client.frames_until_closed()
            assert client.ws.close_code == 1000
        assert tcp_closed
        assert [f.command for f in frames] == [f.command for f in tcp_frames] == [Command.ERROR]
        assert frames[0].get("message") == tcp_frames[0].get("message")
        if message is not None:
            assert frames[0].get("message") == message


async def test_subscriber_that_stops_reading_is_cut_as_a_slow_consumer(
    hasher: SecretHasher,
) -> None:
    size, batch = 2 * KIB, 100
    async with running_server(
        hasher, channel_max_pending=50, max_outbound_bytes=16 * KIB
    ) as server:
        # A tiny receive buffer and a one-message queue: the client soon stops reading.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.http_port))
        async with ws_client(server.http_port, sock=raw, max_queue=1) as slow:
            await slow.send(subscribe("/topic/firehose"))
            await slow.expect(Receipt)
            producer = await Client.connected(server.stomp_port)
            published = 0
            while server.broker.statistics().channels[0].subscribers == 1:
                assert published < 20_000, "the stalled subscriber was never cut"
                producer.writer.write(sends("/topic/firehose", batch, size, receipt_every=batch))
                await producer.expect(Receipt)
                published += batch
            frames = await slow.frames_until_closed()
        assert frames[-1].command is Command.ERROR
        assert frames[-1].get("message") == "slow consumer"
        assert len(frames) - 1 < published


async def test_shutdown_tells_websocket_clients_and_does_not_wait_for_them(
    hasher: SecretHasher,
) -> None:
    settings = Settings(
        stomp_port=0,
        http_port=0,
        amqp_port=0,
        amqps_port=0,
        admin_user=ADMIN,
        admin_password=PASSWORD,
    )
    server = BuzonServer(settings, store=MemoryStore(), hasher=hasher)
    await server.start()
    async with ws_client(server.http_port) as client:
        started = time.monotonic()
        stopping = asyncio.create_task(server.stop(grace=5.0))
        frames = await client.frames_until_closed()
        await stopping
    assert time.monotonic() - started < 2.5  # the grace is for clients that do not leave
    assert [f.get("message") for f in frames] == ["server shutting down"]


def test_ws_origins_setting_is_checked_and_normalised(tmp_path: Path) -> None:
    toml = tmp_path / "buzon.toml"
    toml.write_text('ws-origins = ["https://a.example", "https://b.example"]\n')
    from_file = load_settings({}, environ={}, config_file=toml)
    assert from_file.ws_origins == ("https://a.example", "https://b.example")
    flags = {"ws_origins": " https://App.example.com/ , http://127.0.0.1:8080"}
    settings = load_settings(flags, environ={}, config_file=toml)
    assert settings.ws_origins == ("https://app.example.com", "http://127.0.0.1:8080")
    for bad in ("*", "https://*.example.com", "app.example.com", "https://a.example/path"):
        with pytest.raises(ConfigError, match="--ws-origins"):
            load_settings({"ws_origins": bad}, environ={}, config_file=toml)


async def test_a_browser_keeps_its_lease_with_sends_to_buzon_extend(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server, ws_client(server.http_port) as browser:
        lease = {"ack-timeout-ms": "2000"}
        await browser.send(subscribe("/queue/leases", ack="client-individual", **lease))
        await browser.expect(Receipt)
        await browser.send(send("/queue/leases", b"job"))
        delivered = await browser.expect(Message)
        assert delivered.ack is not None
        for n in range(6):  # 3 s, longer than the ack timeout
            await asyncio.sleep(0.5)
            await browser.send(send("/buzon/extend", b"", receipt=f"x{n}", ack=delivered.ack))
            assert (await browser.expect(Receipt)).receipt_id == f"x{n}"
        stats = server.broker.statistics().queues[0]
        assert (stats.lease_expired, stats.in_flight) == (0, 1)
        again = await browser.expect(Message)  # no more extensions: it comes back
        assert again.redelivered
        await browser.send(Ack(delivered.ack, receipt="late"))
        assert (await browser.expect(Receipt)).receipt_id == "late"
