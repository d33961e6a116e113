"""Receipts a real ``buzon serve`` owes: whatever another connection of the same disk batch
does, and after DISCONNECT even when an ACK's write is still pending or the peer half-closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "receipts-password-1"
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as process:
        yield process
        assert process.stop() == 0


@pytest.fixture(scope="module")
def token(broker: BrokerProcess) -> str:
    """A bearer token: as a STOMP passcode it logs in with one lookup, not an argon2id run."""
    response = httpx.post(
        f"{broker.url}/api/v1/sessions", json={"username": "admin", "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["token"])


class RawClient:
    """A STOMP client that writes exactly the bytes it is given and reads whole frames."""

    def __init__(self, broker: BrokerProcess, token: str) -> None:
        self.sock = socket.create_connection((broker.host, broker.port), timeout=TIMEOUT)
        self.buffer = b""
        self.send(f"CONNECT\naccept-version:1.2\nlogin:admin\npasscode:{token}\n\n\0".encode())
        assert self.frame().startswith(b"CONNECTED\n")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self) -> bytes:
        """The next frame (heart-beat newlines skipped); b"" once the broker closed."""
        while True:
            self.buffer = self.buffer.lstrip(b"\r\n")
            end = self.buffer.find(b"\0")
            if end >= 0:
                frame, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                return frame
            data = self.sock.recv(65536)
            if not data:
                return b""
            self.buffer += data

    def frames_until_closed(self) -> list[bytes]:
        frames = []
        while frame := self.frame():
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def stopped(broker: BrokerProcess) -> Iterator[None]:
    """The broker process frozen (SIGSTOP): what arrives meanwhile is read in one go."""
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)


def header(frame: bytes, name: str) -> str | None:
    for line in frame.split(b"\n\n", 1)[0].split(b"\n")[1:]:
        key, _, value = line.partition(b":")
        if key.decode() == name:
            return value.decode()
    return None


def test_a_dead_connection_in_the_batch_does_not_cost_the_others_their_receipts(
    broker: BrokerProcess, token: str
) -> None:
    consumer = RawClient(broker, token)
    consumer.send(b"SUBSCRIBE\nid:1\ndestination:/queue/batch\nreceipt:sub\n\n\0")
    assert header(consumer.frame(), "receipt-id") == "sub"
    failing, healthy = RawClient(broker, token), RawClient(broker, token)
    answers: list[int] = []

    def publish_over_http() -> None:
        response = httpx.post(
            f"{broker.url}/api/v1/queues/batch/messages",
            content=b"over http",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
            timeout=TIMEOUT,
        )
        answers.append(response.status_code)

    http = threading.Thread(target=publish_over_http)
    with stopped(broker):
        # One read each, in one turn of the broker's loop: one disk batch. The first
        # connection's receipt is owed when its next frame fails it.
        failing.send(b"SEND\ndestination:/queue/batch\nreceipt:x\n\nhi\0BOGUS\n\n\0")
        healthy.send(b"SEND\ndestination:/queue/batch\nreceipt:y\n\nfrom stomp\0")
        http.start()
        time.sleep(0.3)  # the request is in the broker's socket before it runs again

    assert failing.frame().startswith(b"ERROR\n")
    assert header(healthy.frame(), "receipt-id") == "y"
    http.join(TIMEOUT)
    assert answers == [201]
    bodies = {consumer.frame().split(b"\n\n", 1)[1] for _ in range(3)}
    assert bodies == {b"hi", b"from stomp", b"over http"}
    for client in (consumer, failing, healthy):
        client.close()
    assert not [line for line in broker.banner if "Traceback" in line]


def disconnect_after_ack(broker: BrokerProcess, token: str, queue: str, half_close: bool) -> bool:
    """The raw sequence on ``queue``: SUBSCRIBE client-individual, SEND, MESSAGE, ACK,
    DISCONNECT receipt:d9 (then SHUT_WR if ``half_close``). Whether RECEIPT d9 arrived."""
    client = RawClient(broker, token)
    try:
        client.send(
            f"SUBSCRIBE\nid:1\ndestination:/queue/{queue}\nack:client-individual\n\n\0"
            f"SEND\ndestination:/queue/{queue}\npersistent:true\n\nm\0".encode()
        )
        message = client.frame()
        ack = header(message, "ack")
        assert ack is not None, message
        client.send(f"ACK\nid:{ack}\n\n\0DISCONNECT\nreceipt:d9\n\n\0".encode())
        if half_close:
            client.sock.shutdown(socket.SHUT_WR)
        frames = client.frames_until_closed()
        return [header(frame, "receipt-id") for frame in frames] == ["d9"]
    finally:
        client.close()


@pytest.mark.parametrize("half_close", [False, True], ids=["disconnect", "half-close"])
def test_disconnect_receipt_waits_for_the_ack_write(
    broker: BrokerProcess, token: str, half_close: bool
) -> None:
    async def run_all() -> list[bool]:
        # Eight at a time: 200 sequences in a few seconds, each on its own connection.
        limit = asyncio.Semaphore(8)

        async def one(n: int) -> bool:
            queue = f"bye-{half_close}-{n}"
            async with limit:
                return await asyncio.to_thread(
                    disconnect_after_ack, broker, token, queue, half_close
                )

        return await asyncio.gather(*(one(n) for n in range(200)))

    results = asyncio.run(run_all())
    assert results.count(True) == 200
    assert not [line for line in broker.banner if "Traceback" in line]
