"""The third-party stomp.py client against a real ``buzon serve`` process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import stomp
from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "interop-password-1"


class Collector(stomp.ConnectionListener):  # type: ignore[misc]
    """Keeps every MESSAGE and ERROR; ``then`` runs on each message after it is kept."""

    def __init__(self, then: Callable[[Any], None] | None = None) -> None:
        self.then = then
        self.messages: list[Any] = []
        self.errors: list[Any] = []
        self.changed = threading.Condition()

    def on_message(self, frame: Any) -> None:
        with self.changed:
            self.messages.append(frame)
            self.changed.notify_all()
        if self.then is not None:
            self.then(frame)

    def on_error(self, frame: Any) -> None:
        with self.changed:
            self.errors.append(frame)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as process:
        yield process
        assert process.stop() == 0


def connect(broker: BrokerProcess, password: str = PASSWORD) -> tuple[Any, Collector]:
    conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect("admin", password, wait=True)
    return conn, listener


def test_queue_work_is_shared_between_stomp_py_consumers(broker: BrokerProcess) -> None:
    consumers = [connect(broker) for _ in range(2)]
    for conn, listener in consumers:
        listener.then = lambda frame, conn=conn: conn.ack(frame.headers["ack"])
        conn.subscribe("/queue/interop", id="1", ack="client-individual")
    producer, _ = connect(broker)
    for i in range(40):
        producer.send("/queue/interop", f"task {i}", receipt="r" if i == 39 else None)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(len(listener.messages) for _, listener in consumers) >= 40:
            break
        time.sleep(0.02)
    bodies = sorted(m.body for _, listener in consumers for m in listener.messages)
    assert bodies == sorted(f"task {i}" for i in range(40))
    assert all(listener.messages for _, listener in consumers)
    for conn, _ in [*consumers, (producer, None)]:
        conn.disconnect()


def test_channel_fan_out_to_stomp_py_subscribers(broker: BrokerProcess) -> None:
    subscribers = [connect(broker) for _ in range(3)]
    for conn, _ in subscribers:
        conn.subscribe("/topic/interop", id="t", ack="auto", headers={"receipt": "sub"})
    time.sleep(0.2)
    producer, _ = connect(broker)
    for i in range(20):
        producer.send("/topic/interop", f"news {i}", headers={"x-n": str(i)})
    for _, listener in subscribers:
        got = listener.wait_for(20)
        assert [m.body for m in got] == [f"news {i}" for i in range(20)]
        assert [m.headers["x-n"] for m in got] == [str(i) for i in range(20)]
    for conn, _ in [*subscribers, (producer, None)]:
        conn.disconnect()


def test_nack_and_redelivery_with_stomp_py(broker: BrokerProcess) -> None:
    conn, listener = connect(broker)
    conn.subscribe("/queue/interop-nack", id="n", ack="client-individual")
    conn.send("/queue/interop-nack", "again")
    first = listener.wait_for(1)[0]
    conn.nack(first.headers["ack"])
    second = listener.wait_for(2)[1]
    assert second.body == "again"
    assert second.headers.get("redelivered") == "true"
    conn.ack(second.headers["ack"])
    conn.disconnect()


def test_wrong_password_is_refused(broker: BrokerProcess) -> None:
    conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("collector", listener)
    with pytest.raises(stomp.exception.ConnectFailedException):
        conn.connect("admin", "not-the-password", wait=True)
    assert listener.errors
    assert listener.errors[0].headers["message"] == "authentication failed"


def test_stomp_1_1_client_acks_and_nacks_by_message_id(broker: BrokerProcess) -> None:
    conn = stomp.Connection11([(broker.host, broker.port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect("admin", PASSWORD, wait=True)
    conn.subscribe("/queue/interop-11", id="s", ack="client-individual")
    conn.send("/queue/interop-11", "first")
    conn.send("/queue/interop-11", "second")
    first, second = listener.wait_for(2)
    conn.nack(first.headers["message-id"], "s")
    conn.ack(second.headers["message-id"], "s")
    again = listener.wait_for(3)[2]
    assert again.body == "first"
    assert again.headers.get("redelivered") == "true"
    conn.ack(again.headers["message-id"], "s", receipt="done")
    time.sleep(0.2)
    assert not listener.errors
    conn.disconnect()
    # nothing is left unacknowledged: a new consumer gets nothing
    later, later_listener = connect(broker)
    later.subscribe("/queue/interop-11", id="s", ack="client-individual")
    time.sleep(0.3)
    assert later_listener.messages == []
    later.disconnect()
