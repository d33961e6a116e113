"""Message priority through a real ``buzon serve``: a durable queue on SQLite whose backlog
pages (a window of 4), mixed priorities published with the SDK, a restart in between, and
bad ``priority`` headers sent as raw STOMP frames."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from buzon.client import Client
from tests.interop.broker_process import BrokerProcess, broker_process

pytestmark = pytest.mark.timeout(180)  # two broker starts on a busy machine

PASSWORD = "priority-password-1"
ENV = {"BUZON_ADMIN_PASSWORD": PASSWORD}
# 60 messages over four priorities and the default (None), interleaved
SENT = [(n, (None, 1, 9, 4, 6)[n % 5]) for n in range(60)]


def client(broker: BrokerProcess) -> Client:
    return Client(f"stomp://{broker.host}:{broker.port}", login="admin", passcode=PASSWORD)


def raw_frame(sock: socket.socket, frame: bytes) -> bytes:
    """Send one frame; return the first frame the broker answers with."""
    sock.sendall(frame)
    data = b""
    while b"\0" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\0", 1)[0]


def test_a_paged_durable_queue_hands_out_by_priority_across_a_restart(tmp_path: Path) -> None:
    serve = ("--data-dir", str(tmp_path), "--backlog-window", "4")
    with broker_process(*serve, env=ENV) as broker:
        with client(broker) as publisher:
            for number, priority in SENT:
                publisher.publish("/queue/jobs", str(number), priority=priority)
        assert broker.stop() == 0
    with broker_process(*serve, env=ENV) as broker, client(broker) as consumer:
        subscription = consumer.subscribe("/queue/jobs", ack="client-individual", prefetch=1)
        got = []
        for _ in SENT:
            message = subscription.get(timeout=10)
            got.append((int(message.body), message.headers.get("priority")))
            message.ack()
        assert broker.stop() == 0
    level = {n: 4 if p is None else p for n, p in SENT}
    assert [n for n, _ in got] == sorted(level, key=lambda n: (-level[n], n))
    assert {n: p for n, p in got} == {n: None if p is None else str(p) for n, p in SENT}


@pytest.mark.parametrize("value", ["10", "-1", "", "high", "4.5"])
def test_a_bad_priority_header_gets_an_error_naming_it_and_others_are_served(
    tmp_path: Path, value: str
) -> None:
    with broker_process("--data-dir", str(tmp_path), env=ENV) as broker:
        with socket.create_connection((broker.host, broker.port), timeout=10) as sock:
            connect = f"CONNECT\naccept-version:1.2\nlogin:admin\npasscode:{PASSWORD}\n\n\0"
            assert raw_frame(sock, connect.encode()).startswith(b"CONNECTED\n")
            send = f"SEND\ndestination:/queue/jobs\npriority:{value}\nreceipt:r1\n\nlost\0"
            error = raw_frame(sock, send.encode())
        assert error.startswith(b"ERROR\n")
        assert b"priority" in error
        with client(broker) as other:
            other.publish("/queue/jobs", "kept", priority=0)
            subscription = other.subscribe("/queue/jobs", ack="auto")
            assert subscription.get(timeout=10).body == b"kept"  # the refused one never was
        assert broker.stop() == 0
