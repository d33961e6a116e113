"""The connection chassis with a protocol that is not STOMP (``line_protocol``), on a real
broker and real sockets: what it gives every protocol, and what admins see of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from buzon.server.close_reasons import CloseReason
from buzon.server.connection import FRAMES_PER_TURN, Connection
from tests.http.helpers import admin_auth, api, publish
from tests.http.scrape import scrape, value
from tests.server.harness import ADMIN, PASSWORD, TIMEOUT, running_server
from tests.server.line_protocol import LineAdapter

Line = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def line_listener(
    server: BuzonServer,
) -> AsyncIterator[tuple[int, list[Connection[LineAdapter]]]]:
    """The line protocol on a free port of ``server``; its port and every connection made."""
    made: list[Connection[LineAdapter]] = []

    def factory() -> Connection[LineAdapter]:
        connection = Connection(server.context, LineAdapter)
        made.append(connection)
        return connection

    listener = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1], made
    finally:
        listener.close()


@contextlib.asynccontextmanager
async def dial(port: int, *lines: str) -> AsyncIterator[Line]:
    """A client of the line protocol that said ``lines``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    say(writer, *lines)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def say(writer: asyncio.StreamWriter, *lines: str) -> None:
    writer.write(b"".join(line.encode() + b"\n" for line in lines))


async def hear(reader: asyncio.StreamReader) -> str:
    async with asyncio.timeout(TIMEOUT):
        return (await reader.readline()).decode().rstrip("\n")


async def until_closed(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""


async def test_a_second_protocol_is_listed_counted_and_multiplexes_sessions(
    hasher: SecretHasher,
) -> None:
    subscribe = ("SUB 0 /topic/left", "SUB 1 /topic/right")
    async with (
        running_server(hasher) as server,
        line_listener(server) as (port, made),
        dial(port, f"LOGIN {ADMIN} {PASSWORD}", *subscribe) as (reader, writer),
    ):
        assert await hear(reader) == "OK"
        async with api(server.http_port) as http:
            admin = await admin_auth(http)
            await publish(http, admin, "channels", "right", "to channel one")
            assert await hear(reader) == "MSG 1 to channel one"
            listed = (await http.get("/connections", headers=admin)).json()
            samples = await scrape(server.http_port, admin)
        [line] = [c for c in listed if c["protocol"] == "line/1"]
        assert (line["id"], line["user"], line["transport"]) == (made[0].id, ADMIN, "tcp")
        assert (line["subscriptions"], line["delivered"]) == (2, 1)
        assert value(samples, "buzon_connections", transport="tcp", protocol="line/1") == 1
        assert len(server.broker.statistics().sessions) == 2

        say(writer, "BYE")
        assert await hear(reader) == "BYE"
        await until_closed(reader)
        writer.close()
        await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
        assert made[0].close_reason is CloseReason.CLIENT_DISCONNECT
        assert server.broker.statistics().sessions == ()


async def test_a_refused_login_is_the_protocols_error_then_a_close(
    hasher: SecretHasher,
) -> None:
    async with (
        running_server(hasher) as server,
        line_listener(server) as (port, made),
        dial(port, f"LOGIN {ADMIN} wrong", "ECHO never handled") as (reader, _),
    ):
        assert await hear(reader) == "ERR AUTH_FAILED"
        await until_closed(reader)
        await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
        assert made[0].close_reason is CloseReason.AUTH_FAILED


async def test_the_handshake_deadline_applies_to_every_protocol(hasher: SecretHasher) -> None:
    async with (
        running_server(hasher, handshake_timeout=0.2) as server,
        line_listener(server) as (port, made),
        dial(port) as (reader, _),
    ):
        assert await hear(reader) == "ERR HANDSHAKE_TIMEOUT"
        await until_closed(reader)
        await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
        assert made[0].close_reason is CloseReason.HANDSHAKE_TIMEOUT


async def test_one_read_is_handled_a_turns_share_at_a_time_in_order(
    hasher: SecretHasher,
) -> None:
    count = 2 * FRAMES_PER_TURN + 44
    async with (
        running_server(hasher) as server,
        line_listener(server) as (port, made),
        dial(port, f"LOGIN {ADMIN} {PASSWORD}") as (reader, writer),
    ):
        assert await hear(reader) == "OK"
        say(writer, *(f"ECHO {n}" for n in range(count)))
        assert [await hear(reader) for _ in range(count)] == [str(n) for n in range(count)]
        turns = [n for n in made[0].adapter.units_per_turn if n]
        assert sum(turns) == count + 1  # and the login
        assert max(turns) == FRAMES_PER_TURN


async def test_an_admin_closes_a_connection_of_any_protocol(hasher: SecretHasher) -> None:
    async with (
        running_server(hasher) as server,
        line_listener(server) as (port, made),
        dial(port, f"LOGIN {ADMIN} {PASSWORD}") as (reader, _),
    ):
        assert await hear(reader) == "OK"
        async with api(server.http_port) as http:
            admin = await admin_auth(http)
            response = await http.delete(f"/connections/{made[0].id}", headers=admin)
        assert response.status_code == 204
        assert await hear(reader) == "ERR CONNECTION_CLOSED_BY_ADMIN"
        await until_closed(reader)
        await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
        assert made[0].close_reason is CloseReason.CLOSED_BY_ADMIN
        assert server.broker.statistics().sessions == ()
