"""Why connections ended, as ``/metrics`` counts them: each reason in the case it names."""

from __future__ import annotations

import asyncio
import socket

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from buzon.server.close_reasons import CloseReason
from buzon.server.config import Settings
from buzon.stomp import Connected, Disconnect, Error, Receipt
from buzon.store import MemoryStore
from tests.http.helpers import Auth, admin_auth, api
from tests.http.scrape import Samples, scrape_until, value
from tests.server.harness import PASSWORD, Client, raw_exchange, running_server
from tests.server.test_flow_control import sends
from tests.server.test_messaging import send, subscribe

LOGIN = f"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:{PASSWORD}\n\n\x00".encode()


def closed(samples: Samples, reason: CloseReason) -> float:
    return value(samples, "buzon_connections_closed_total", reason=reason.value) or 0


async def closes_of(server: BuzonServer, auth: Auth, reason: CloseReason) -> Samples:
    """A scrape once a close for ``reason`` was recorded."""
    return await scrape_until(server.http_port, auth, lambda s: closed(s, reason) >= 1)


async def test_every_reason_is_exported_from_the_start(server: BuzonServer, admin: Auth) -> None:
    samples = await scrape_until(server.http_port, admin, lambda s: True)
    assert {reason: closed(samples, reason) for reason in CloseReason} == dict.fromkeys(
        CloseReason, 0
    )


async def test_a_client_disconnect(server: BuzonServer, admin: Auth) -> None:
    client = await Client.connected(server.stomp_port)
    await client.send(Disconnect(receipt="bye"))
    await client.expect(Receipt)
    samples = await closes_of(server, admin, CloseReason.CLIENT_DISCONNECT)
    assert value(samples, "buzon_connections_opened_total") == 1
    assert closed(samples, CloseReason.CONNECTION_LOST) == 0


async def test_a_peer_that_vanishes(server: BuzonServer, admin: Auth) -> None:
    client = await Client.connected(server.stomp_port)
    client.writer.transport.abort()
    samples = await closes_of(server, admin, CloseReason.CONNECTION_LOST)
    assert closed(samples, CloseReason.CLIENT_DISCONNECT) == 0


async def test_a_failed_login(server: BuzonServer, admin: Auth) -> None:
    client = await Client.open(server.stomp_port, passcode="wrong password")
    await client.expect(Error)
    samples = await closes_of(server, admin, CloseReason.AUTH_FAILED)
    assert closed(samples, CloseReason.PROTOCOL_ERROR) == 0


async def test_a_protocol_error(server: BuzonServer, admin: Auth) -> None:
    frames, was_closed = await raw_exchange(server.stomp_port, LOGIN + b"FLY\n\n\x00")
    assert was_closed
    assert frames[-1].get("message") == "unknown command"
    samples = await closes_of(server, admin, CloseReason.PROTOCOL_ERROR)
    assert closed(samples, CloseReason.REFUSED) == 0


async def test_a_refused_frame_is_not_a_protocol_error(hasher: SecretHasher) -> None:
    async with running_server(hasher, auto_create=False) as server:
        client = await Client.connected(server.stomp_port)
        await client.send(send("/queue/missing", b"x", receipt="r"))
        error = await client.expect(Error)
        assert error.message == "destination not found"
        admin = await _admin(server)
        samples = await closes_of(server, admin, CloseReason.REFUSED)
        assert closed(samples, CloseReason.PROTOCOL_ERROR) == 0


async def test_a_silent_client_times_out(hasher: SecretHasher) -> None:
    async with running_server(hasher, heartbeat_ms=100) as server:
        client = await Client.open(server.stomp_port, heart_beat=(100, 0))
        await client.expect(Connected)  # then we never send the heart-beats we promised
        await client.expect(Error, within=3)
        await closes_of(server, await _admin(server), CloseReason.IDLE_TIMEOUT)


async def test_a_client_that_never_logs_in(hasher: SecretHasher) -> None:
    async with running_server(hasher, handshake_timeout=0.2) as server:
        _, was_closed = await raw_exchange(server.stomp_port, b"CONN", within=3)
        assert was_closed
        await closes_of(server, await _admin(server), CloseReason.HANDSHAKE_TIMEOUT)


async def test_a_connection_over_the_limit(hasher: SecretHasher) -> None:
    async with running_server(hasher, max_connections=1) as server:
        await Client.connected(server.stomp_port)
        frames, _ = await raw_exchange(server.stomp_port, LOGIN)
        assert frames[-1].get("message") == "too many connections"
        admin = await _admin(server)
        await closes_of(server, admin, CloseReason.TOO_MANY_CONNECTIONS)


async def test_a_slow_channel_subscriber(hasher: SecretHasher) -> None:
    async with running_server(
        hasher, channel_max_pending=10, max_outbound_bytes=16 * 1024
    ) as server:
        # a subscriber with a tiny receive buffer that never reads
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.stomp_port))
        slow = Client(*await asyncio.open_connection(sock=raw))
        slow.conn.connect(login="admin", passcode=PASSWORD, host="/")
        await slow.flush()
        await slow.expect(Connected)
        await slow.send(subscribe("/topic/firehose", receipt="sub"))
        await slow.receipt("sub")
        producer = await Client.connected(server.stomp_port)
        for _ in range(200):
            if not server.broker.statistics().channels[0].subscribers:
                break
            producer.writer.write(sends("/topic/firehose", 50, 2048, receipt_every=50))
            await producer.expect(Receipt)
        await closes_of(server, await _admin(server), CloseReason.SLOW_CONSUMER)


async def test_a_shutdown(hasher: SecretHasher) -> None:
    settings = Settings(
        stomp_port=0, http_port=0, amqp_port=0, amqps_port=0, admin_password=PASSWORD
    )
    server = BuzonServer(settings, store=MemoryStore(), hasher=hasher)
    await server.start()
    client = await Client.connected(server.stomp_port)
    await server.stop(grace=1.0)
    assert (await client.expect(Error)).message == "server shutting down"
    await client.close()
    # /metrics went with the server: read the count it would have shown
    assert server.context.connection_events.closed[CloseReason.SHUTDOWN] == 1


async def _admin(server: BuzonServer) -> Auth:
    async with api(server.http_port) as http:
        return await admin_auth(http)
