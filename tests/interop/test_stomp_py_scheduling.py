"""Delays, NACK outcomes and retry back-off from the unmodified stomp.py client, against a
real ``buzon serve`` process (its default SQLite store), checked through the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import stomp
from buzon.client import ManagementClient, QueuePolicy
from tests.interop.broker_process import BrokerProcess, broker_process
from tests.interop.test_stomp_py import Collector

PASSWORD = "interop-password-2"
LATE = 2.0
"""Seconds a due message may take to arrive on a test machine (the broker aims at 0.1)."""


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as process:
        yield process
        assert process.stop() == 0


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> Iterator[ManagementClient]:
    with ManagementClient(broker.url) as client:
        client.login("admin", PASSWORD)
        yield client


def connect(broker: BrokerProcess) -> tuple[Any, Collector]:
    conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect("admin", PASSWORD, wait=True)
    return conn, listener


def arrival(listener: Collector, count: int, timeout: float = 5.0) -> float:
    """When (monotonic) the listener holds ``count`` messages."""
    got = listener.wait_for(count, timeout)
    assert len(got) >= count, got
    return time.monotonic()


def test_a_delayed_send_lets_the_next_one_pass_and_arrives_after_its_delay(
    broker: BrokerProcess, admin: ManagementClient
) -> None:
    admin.create_queue("py-later")
    conn, listener = connect(broker)
    conn.subscribe("/queue/py-later", id="1", ack="client-individual")
    sent = time.monotonic()
    conn.send("/queue/py-later", "after 2 s", headers={"delay": "2000", "receipt": "d"})
    conn.send("/queue/py-later", "at once")
    arrival(listener, 1)
    assert listener.messages[0].body == "at once"
    assert admin.get_queue("py-later").scheduled == 1
    delivered = arrival(listener, 2)
    late = listener.messages[1]
    assert late.body == "after 2 s"
    assert "delay" not in late.headers
    assert 2.0 <= delivered - sent <= 2.0 + LATE
    assert admin.get_queue("py-later").scheduled == 0
    conn.disconnect()


def test_a_bad_delay_is_an_error_naming_the_header_and_nothing_is_queued(
    broker: BrokerProcess, admin: ManagementClient
) -> None:
    admin.create_queue("py-strict")
    conn, listener = connect(broker)
    conn.send("/queue/py-strict", "never", headers={"delay": "soon", "receipt": "bad"})
    with listener.changed:
        listener.changed.wait_for(lambda: listener.errors, 5.0)
    (error,) = listener.errors
    assert "delay" in error.headers["message"] + error.body
    info = admin.get_queue("py-strict")
    assert (info.depth, info.scheduled) == (0, 0)


def test_nack_requeue_false_dead_letters_with_the_reason_the_count_and_the_error(
    broker: BrokerProcess, admin: ManagementClient
) -> None:
    admin.create_queue("py-work", policy=QueuePolicy(dead_letter_queue="py-failed"))
    conn, listener = connect(broker)
    conn.subscribe("/queue/py-work", id="1", ack="client-individual")
    conn.send("/queue/py-work", "poison")
    (frame,) = listener.wait_for(1)
    conn.nack(frame.headers["ack"], receipt="n", requeue="false", error="bad payload: no id")
    deadline = time.monotonic() + 5
    while not (dead := admin.peek("py-failed")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (message,) = dead
    assert message.text == "poison"
    assert message.headers["x-dead-letter-reason"] == "rejected"
    assert message.headers["x-original-destination"] == "/queue/py-work"
    assert message.headers["x-delivery-count"] == "1"
    assert message.headers["x-last-error"] == "bad payload: no id"
    assert admin.get_queue("py-work").dead_lettered_by_reason == {"rejected": 1}
    conn.disconnect()


def test_retries_back_off_from_the_queue_policy(
    broker: BrokerProcess, admin: ManagementClient
) -> None:
    policy = QueuePolicy(retry_delay_ms=200, retry_multiplier=2.0)
    admin.create_queue("py-backoff", policy=policy)
    conn, listener = connect(broker)
    conn.subscribe("/queue/py-backoff", id="1", ack="client-individual")
    conn.send("/queue/py-backoff", "flaky")
    arrival(listener, 1)
    waits = []
    for n in (1, 2):
        refused = time.monotonic()
        conn.nack(listener.messages[n - 1].headers["ack"])
        waits.append(arrival(listener, n + 1) - refused)
    assert 0.2 <= waits[0] <= 0.2 + LATE
    assert 0.4 <= waits[1] <= 0.4 + LATE
    assert listener.messages[2].headers["redelivered"] == "true"
    conn.ack(listener.messages[2].headers["ack"])
    assert admin.get_queue("py-backoff").retried == 2
    conn.disconnect()


def test_a_nack_with_requeue_delay_waits_that_long(
    broker: BrokerProcess, admin: ManagementClient
) -> None:
    admin.create_queue("py-delay")
    conn, listener = connect(broker)
    conn.subscribe("/queue/py-delay", id="1", ack="client-individual")
    conn.send("/queue/py-delay", "later please")
    arrival(listener, 1)
    refused = time.monotonic()
    conn.nack(listener.messages[0].headers["ack"], **{"requeue-delay": "500"})
    assert arrival(listener, 2) - refused >= 0.5
    conn.disconnect()
