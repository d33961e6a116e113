"""Ack deadlines from the unmodified stomp.py client against a real ``buzon serve``: the
lease is kept with plain SENDs to /buzon/extend, a lapsed delivery goes to another
consumer, and a late ACK gets its RECEIPT and no ERROR."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import stomp
from buzon.client import ManagementClient
from tests.interop.broker_process import BrokerProcess, broker_process

PASSWORD = "interop-password-2"


class Frames(stomp.ConnectionListener):  # type: ignore[misc]
    """Keeps every MESSAGE, RECEIPT and ERROR frame."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.receipts: set[str] = set()
        self.errors: list[Any] = []
        self.changed = threading.Condition()

    def on_message(self, frame: Any) -> None:
        with self.changed:
            self.messages.append(frame)
            self.changed.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.changed:
            self.receipts.add(frame.headers["receipt-id"])
            self.changed.notify_all()

    def on_error(self, frame: Any) -> None:
        with self.changed:
            self.errors.append(frame)
            self.changed.notify_all()

    def wait_messages(self, count: int, timeout: float = 5.0) -> list[Any]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def wait_receipt(self, receipt: str, timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: receipt in self.receipts, timeout)

    def wait_error(self, timeout: float = 5.0) -> Any:
        with self.changed:
            self.changed.wait_for(lambda: bool(self.errors), timeout)
            return self.errors[0] if self.errors else None


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as process:
        yield process
        assert process.stop() == 0


def connect(broker: BrokerProcess) -> tuple[Any, Frames]:
    conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
    frames = Frames()
    conn.set_listener("frames", frames)
    conn.connect("admin", PASSWORD, wait=True)
    return conn, frames


def test_a_lease_kept_by_send_then_lapsed_goes_to_the_other_consumer(
    broker: BrokerProcess,
) -> None:
    slow, slow_frames = connect(broker)
    slow.subscribe(
        "/queue/leased", id="s", ack="client-individual", headers={"ack-timeout-ms": "2000"}
    )
    producer, _ = connect(broker)
    producer.send("/queue/leased", "long job", receipt="sent")
    (delivered,) = slow_frames.wait_messages(1)
    other, other_frames = connect(broker)
    other.subscribe("/queue/leased", id="o", ack="client-individual")

    for n in range(6):  # 3 s of work, longer than the ack timeout, in plain SEND frames
        time.sleep(0.5)
        if n % 2:
            headers = {"ack": delivered.headers["ack"], "extend-ms": "2000"}
        else:  # STOMP 1.1 style: by message id and subscription
            headers = {"message-id": delivered.headers["message-id"], "subscription": "s"}
        slow.send("/buzon/extend", "", headers=headers, receipt=f"extend-{n}")
        assert slow_frames.wait_receipt(f"extend-{n}")
    assert other_frames.messages == []

    (taken_over,) = other_frames.wait_messages(1)  # extensions stopped: it lapses
    assert taken_over.body == "long job"
    assert taken_over.headers["redelivered"] == "true"

    slow.ack(delivered.headers["ack"], receipt="late-ack")  # late: ignored, not an ERROR
    assert slow_frames.wait_receipt("late-ack")
    slow.send("/buzon/extend", "", headers={"ack": delivered.headers["ack"]}, receipt="late-ext")
    assert slow_frames.wait_receipt("late-ext")
    assert slow_frames.errors == []
    assert slow.is_connected()
    other.ack(taken_over.headers["ack"], receipt="done")
    assert other_frames.wait_receipt("done")

    with ManagementClient(broker.url, basic=("admin", PASSWORD)) as http:
        queue = http.get_queue("leased")
        assert (queue.lease_expired, queue.late_settles) == (1, 2)
        assert (queue.depth, queue.in_flight) == (0, 0)
        assert [q.name for q in http.list_queues()] == ["leased"]  # extensions enqueue nothing
    for conn in (slow, other, producer):
        conn.disconnect()


def test_a_bad_ack_timeout_header_is_an_error_naming_it(broker: BrokerProcess) -> None:
    conn, frames = connect(broker)
    conn.subscribe("/queue/leased-bad", id="s", ack="client", headers={"ack-timeout-ms": "soon"})
    error = frames.wait_error()
    assert error is not None
    assert "ack-timeout-ms" in error.headers["message"] + error.body


def test_an_extension_without_naming_a_delivery_is_an_error(broker: BrokerProcess) -> None:
    conn, frames = connect(broker)
    conn.send("/buzon/extend", "", headers={"extend-ms": "1000"})
    error = frames.wait_error()
    assert error is not None
    assert "ack" in error.headers["message"] + error.body


def test_an_extension_in_a_transaction_or_of_an_unknown_subscription_is_an_error(
    broker: BrokerProcess,
) -> None:
    conn, frames = connect(broker)
    conn.begin("t1")
    conn.send("/buzon/extend", "", headers={"ack": "a-1", "transaction": "t1"})
    error = frames.wait_error()
    assert error is not None
    assert "transaction" in error.headers["message"] + error.body

    conn, frames = connect(broker)
    conn.send("/buzon/extend", "", headers={"message-id": "m-1", "subscription": "typo"})
    error = frames.wait_error()
    assert error is not None
    assert "typo" in error.headers["message"] + error.body
