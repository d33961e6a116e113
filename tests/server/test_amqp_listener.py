"""The AMQP listener of a real server: the limits every connection meets before it logs in,
and what the broker says about AMQP connections (admin list, close reasons)."""

from __future__ import annotations

import asyncio

import pika
import pika.exceptions
import pytest
from pamqp import commands, frame

from buzon.auth import SecretHasher
from buzon.server.app import BuzonServer
from tests.server.harness import ADMIN, PASSWORD, running_server

HEADER = b"AMQP\x00\x00\x09\x01"


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes, failing after ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_silence_before_the_protocol_header_ends_at_the_handshake_deadline(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, handshake_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        writer.write(HEADER[:4])  # a slow client: half the header, then nothing
        assert await _closed_within(reader, 5.0) == b""
        writer.close()


async def test_a_login_that_never_comes_ends_at_the_handshake_deadline(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, handshake_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        writer.write(HEADER)
        sent = await _closed_within(reader, 5.0)
        assert sent.startswith(b"\x01\x00\x00")  # connection.start, then the close
        writer.close()


async def test_a_wrong_protocol_header_gets_ours_and_a_close(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await _closed_within(reader, 5.0) == HEADER
        writer.close()


async def test_connections_past_the_limit_are_closed_before_they_speak(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, max_connections=1) as server:
        _, first = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        reader, second = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        assert await _closed_within(reader, 5.0) == b""
        first.close()
        second.close()


def _pika(server: BuzonServer) -> pika.BlockingConnection:
    credentials = pika.PlainCredentials(ADMIN, PASSWORD)
    parameters = pika.ConnectionParameters(
        "127.0.0.1", server.amqp_port, "/", credentials, connection_attempts=1, socket_timeout=5
    )
    return pika.BlockingConnection(parameters)


async def test_admins_see_amqp_connections_with_their_protocol(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        connection = await asyncio.to_thread(_pika, server)
        try:
            listed = [(c.protocol, c.principal) for c in server.connections]
            assert len(listed) == 1
            protocol, principal = listed[0]
            assert protocol == "amqp/0-9-1"
            assert principal is not None
            assert principal.name == ADMIN
        finally:
            await asyncio.to_thread(connection.close)


@pytest.mark.parametrize("vhost", ["", "%2F"])
async def test_the_root_virtual_host_is_served(hasher: SecretHasher, vhost: str) -> None:
    async with running_server(hasher) as server:
        url = f"amqp://{ADMIN}:{PASSWORD}@127.0.0.1:{server.amqp_port}/{vhost}"
        connection = await asyncio.to_thread(pika.BlockingConnection, pika.URLParameters(url))
        await asyncio.to_thread(connection.close)


async def _gone(server: BuzonServer, seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if not server.connections:
            return True
        await asyncio.sleep(0.05)
    return not server.connections


async def test_a_refused_login_ends_the_connection_when_the_client_answers(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        credentials = pika.PlainCredentials(ADMIN, "not the password")
        parameters = pika.ConnectionParameters(
            "127.0.0.1", server.amqp_port, "/", credentials, connection_attempts=1
        )
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            await asyncio.to_thread(pika.BlockingConnection, parameters)
        assert await _gone(server, 1.0)  # not held open until shutdown


async def test_a_refused_login_ends_the_connection_when_the_client_does_not(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.amqp_port)
        writer.write(HEADER)
        start_ok = commands.Connection.StartOk(
            client_properties={}, mechanism="PLAIN", response=f"\0{ADMIN}\0wrong"
        )
        writer.write(frame.marshal(start_ok, 0))  # then never a close-ok
        sent = await _closed_within(reader, 5.0)
        assert b"ACCESS_REFUSED" in sent
        assert await _gone(server, 1.0)
        writer.close()
