"""Hostile and broken clients get ERROR then close; the broker keeps serving everyone else."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from buzon.auth import SecretHasher
from buzon.stomp import Message, Receipt, Send, Subscribe
from tests.server.harness import PASSWORD, Client, error_of, raw_exchange, running_server

LOGIN = f"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:{PASSWORD}\n\n\x00".encode()

HOSTILE: dict[str, tuple[bytes, str]] = {
    "frame before CONNECT": (b"SEND\ndestination:/queue/a\n\nx\x00", "CONNECT required first"),
    "unknown command": (LOGIN + b"FLY\n\n\x00", "unknown command"),
    "SEND without destination": (LOGIN + b"SEND\n\nbody\x00", "missing required header"),
    "SUBSCRIBE without id": (
        LOGIN + b"SUBSCRIBE\ndestination:/queue/a\n\n\x00",
        "missing required header",
    ),
    "invalid escape": (
        LOGIN + b"SEND\ndestination:/queue/a\nx:bad\\tescape\n\n\x00",
        "invalid header escape sequence",
    ),
    "content-length that lies": (
        LOGIN + b"SEND\ndestination:/queue/a\ncontent-length:2\n\nlonger body\x00",
        "malformed frame",
    ),
    "negative content-length": (
        LOGIN + b"SEND\ndestination:/queue/a\ncontent-length:-1\n\n\x00",
        "invalid content-length",
    ),
    "enormous content-length": (
        LOGIN + b"SEND\ndestination:/queue/a\ncontent-length:99999999999\n\n\x00",
        "frame too large",
    ),
    "too many headers": (
        LOGIN + b"SEND\ndestination:/queue/a\n" + b"h:v\n" * 100_000 + b"\n\x00",
        "too many headers",
    ),
    "invalid UTF-8 header": (
        LOGIN + b"SEND\ndestination:/queue/\xff\xfe\n\n\x00",
        "headers are not valid UTF-8",
    ),
    "bad ack mode": (
        LOGIN + b"SUBSCRIBE\ndestination:/queue/a\nid:1\nack:sometimes\n\n\x00",
        "invalid header value",
    ),
    "bad prefetch-count": (
        LOGIN + b"SUBSCRIBE\ndestination:/queue/a\nid:1\nprefetch-count:lots\n\n\x00",
        "invalid header value",
    ),
    "unknown subscription": (LOGIN + b"UNSUBSCRIBE\nid:nope\n\n\x00", "unknown subscription"),
    "unknown ack id": (LOGIN + b"ACK\nid:12345\n\n\x00", "unknown ack id"),
    "duplicate subscription id": (
        LOGIN
        + b"SUBSCRIBE\ndestination:/queue/a\nid:1\n\n\x00"
        + b"SUBSCRIBE\ndestination:/queue/b\nid:1\n\n\x00",
        "subscription id already in use",
    ),
    "bad destination": (LOGIN + b"SEND\ndestination:/elsewhere/x\n\n\x00", "invalid destination"),
    "unknown transaction": (LOGIN + b"COMMIT\ntransaction:t9\n\n\x00", "unknown transaction"),
    "wrong password": (
        b"CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:wrong\n\n\x00",
        "authentication failed",
    ),
    "unknown user": (
        b"CONNECT\naccept-version:1.2\nhost:/\nlogin:mallory\npasscode:x\n\n\x00",
        "authentication failed",
    ),
    "only STOMP 1.0 offered": (
        b"CONNECT\naccept-version:1.0\nhost:/\nlogin:admin\npasscode:x\n\n\x00",
        "unsupported protocol version",
    ),
    "huge frame before login": (b"CONNECT\n" + b"x" * 100_000, "too long"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_frame_gets_error_and_close(hasher: SecretHasher, case: str) -> None:
    data, expected = HOSTILE[case]
    async with running_server(hasher) as server:
        bystander = await Client.connected(server.stomp_port)
        await bystander.send(
            Subscribe(
                destination="/queue/ok",
                id="b",
                ack="auto",
                headers=(("destination", "/queue/ok"), ("id", "b")),
                receipt="r",
            )
        )
        await bystander.expect(Receipt)

        frames, closed = await raw_exchange(server.stomp_port, data)
        error = error_of(frames)
        assert expected in (error.get("message") or "")
        assert closed, "the broker must close after ERROR"
        if case in {"wrong password", "unknown user"}:
            # the answer never says which of the two was wrong
            assert error.get("message") == "authentication failed"
            assert b"password" not in error.body
            assert b"user" not in error.body

        await bystander.send(
            Send(
                destination="/queue/ok",
                headers=(("destination", "/queue/ok"),),
                body=b"still here",
                receipt=None,
                transaction=None,
            )
        )
        message = await bystander.expect(Message)
        assert message.body == b"still here"


async def test_error_carries_receipt_id_of_the_bad_frame(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        frames, closed = await raw_exchange(
            server.stomp_port, LOGIN + b"UNSUBSCRIBE\nid:nope\nreceipt:77\n\n\x00"
        )
        assert error_of(frames).get("receipt-id") == "77"
        assert closed


async def test_ack_for_another_connections_message_is_refused(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        owner = await Client.connected(server.stomp_port)
        await owner.send(
            Subscribe(
                destination="/queue/mine",
                id="s",
                ack="client-individual",
                headers=(("destination", "/queue/mine"), ("id", "s")),
                receipt="r",
            ),
            Send(
                destination="/queue/mine",
                headers=(("destination", "/queue/mine"),),
                body=b"secret",
                receipt=None,
                transaction=None,
            ),
        )
        await owner.expect(Receipt)
        message = await owner.expect(Message)
        assert message.ack is not None
        thief = LOGIN + f"ACK\nid:{message.ack}\n\n\x00".encode()
        frames, closed = await raw_exchange(server.stomp_port, thief)
        assert error_of(frames).get("message") == "unknown ack id"
        assert closed


async def test_silent_client_is_dropped_after_the_login_timeout(hasher: SecretHasher) -> None:
    async with running_server(hasher, handshake_timeout=0.3) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        frames, closed = await raw_exchange(server.stomp_port, b"CONN", within=3)
        assert closed
        assert error_of(frames).get("message") == "handshake timeout"
        assert loop.time() - started < 2


async def test_connections_over_the_limit_are_refused(hasher: SecretHasher) -> None:
    async with running_server(hasher, max_connections=2) as server:
        first = await Client.connected(server.stomp_port)
        second = await Client.connected(server.stomp_port)
        frames, closed = await raw_exchange(server.stomp_port, LOGIN)
        assert error_of(frames).get("message") == "too many connections"
        assert closed
        await first.close()
        await second.close()


def _push_until_refused(port: int, first: bytes, seconds: float) -> tuple[int, float]:
    """Send ``first``, then keep sending for up to ``seconds`` until the broker stops taking
    bytes (a write that blocks) or cuts the connection; the bytes it took, and when it cut."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(first)
        sock.settimeout(0.5)
        pushed = 0
        chunk = b"x" * 65536
        while time.monotonic() - started < seconds:
            try:
                pushed += sock.send(chunk)
            except TimeoutError:
                continue  # the broker is not reading: keep the pressure on until it cuts
            except OSError:
                return pushed, time.monotonic() - started
        return pushed, float("inf")


async def test_after_error_the_broker_reads_nothing_more_and_cuts_the_peer(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        oversized = b"CONNECT\naccept-version:1.2\nx:" + b"a" * 100_000
        pushed, cut_after = await asyncio.to_thread(
            _push_until_refused, server.stomp_port, oversized, 10.0
        )
        # Only what the kernel buffers: the broker stopped reading when it sent ERROR.
        assert pushed < 32 * 1024 * 1024
        assert cut_after < 5.0
        for _ in range(100):  # the slot is free again once the broker saw the close
            if not server.connections:
                break
            await asyncio.sleep(0.02)
        assert not server.connections
