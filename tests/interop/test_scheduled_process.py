"""Delays, retries and dead-letter reasons against a real ``buzon serve`` with stomp.py.

What a user of another broker would try first: a delayed message that outlives a kill -9,
a NACK that asks for a later retry, a NACK that gives up, and a bad header that must not
take the broker (or anyone else's connection) down.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import stomp
from buzon.client import ManagementClient
from buzon.store import QueuePolicy
from tests.interop.broker_process import BrokerProcess, broker_process
from tests.interop.test_stomp_py import PASSWORD, connect

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="buzon-scheduled-") as path:
        yield path


def serve(data_dir: str) -> Any:
    return broker_process("--data-dir", data_dir, env={"BUZON_ADMIN_PASSWORD": PASSWORD})


def queue_info(broker: BrokerProcess, name: str) -> dict[str, Any]:
    with ManagementClient(broker.url, basic=("admin", PASSWORD)) as client:
        token = client.login("admin", PASSWORD).token
    reply = httpx.get(
        f"{broker.url}/api/v1/queues/{name}", headers={"Authorization": f"Bearer {token}"}
    )
    reply.raise_for_status()
    info: dict[str, Any] = reply.json()
    return info


class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_receipt(self, frame: Any) -> None:
        self.ids.append(frame.headers["receipt-id"])

    def wait(self, receipt: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while receipt not in self.ids:
            assert time.monotonic() < deadline, f"no RECEIPT {receipt}"
            time.sleep(0.01)


def test_a_delayed_message_survives_kill_9_and_arrives_no_earlier_than_its_time(
    data_dir: str,
) -> None:
    with serve(data_dir) as broker:
        conn, _ = connect(broker)
        receipts = Receipts()
        conn.set_listener("receipts", receipts)
        sent_at = time.time()
        conn.send("/queue/later", "wake up", headers={"delay": "4000", "receipt": "r1"})
        conn.send("/queue/later", "now", headers={"receipt": "r2"})
        receipts.wait("r2")
        info = queue_info(broker, "later")
        assert (info["depth"], info["scheduled"]) == (1, 1)
        broker.stop(signal.SIGKILL)
    with serve(data_dir) as broker:
        info = queue_info(broker, "later")
        checked_at = time.time()
        assert info["depth"] + info["scheduled"] == 2  # nothing lost
        if checked_at < sent_at + 3.5:  # still waiting (a slow machine may restart later)
            assert (info["depth"], info["scheduled"]) == (1, 1)
        conn, got = connect(broker)
        conn.subscribe("/queue/later", id="s", ack="auto")
        first = got.wait_for(1)[0]
        if first.body == "wake up":  # its time came during the restart: at once, in order
            assert time.time() >= sent_at + 4.0
            got.wait_for(2)
        else:
            assert first.body == "now"
            [_, delayed] = got.wait_for(2, timeout=15)
            arrived = time.time()
            assert delayed.body == "wake up"
            assert arrived >= sent_at + 4.0
            assert arrived < sent_at + 12.0  # a restart in between; prompt, not exact
        assert queue_info(broker, "later")["scheduled"] == 0
        conn.disconnect()


def test_a_nack_with_requeue_delay_comes_back_after_it_and_an_error_frame_names_bad_values(
    data_dir: str,
) -> None:
    with serve(data_dir) as broker:
        producer, _ = connect(broker)
        producer.send("/queue/retry", "job")
        conn, got = connect(broker)
        conn.subscribe("/queue/retry", id="s", ack="client-individual")
        [first] = got.wait_for(1)
        nacked_at = time.monotonic()
        conn.nack(first.headers["ack"], **{"requeue-delay": "700", "error": "db down"})
        [_, again] = got.wait_for(2, timeout=10)
        assert time.monotonic() - nacked_at >= 0.7
        assert again.headers["redelivered"] == "true"
        conn.ack(again.headers["ack"])

        bad, bad_got = connect(broker)
        bad.send("/queue/retry", "never", headers={"delay": "-5"})
        deadline = time.monotonic() + 5
        while not bad_got.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        [error] = bad_got.errors
        assert "delay" in error.headers["message"] + error.body
        # everyone else is still served, and the refused message never arrives
        producer.send("/queue/retry", "after")
        [_, _, after] = got.wait_for(3)
        assert after.body == "after"
        assert queue_info(broker, "retry")["depth"] == 0
        conn.disconnect()
        producer.disconnect()


def test_a_nack_without_requeue_dead_letters_with_reason_count_and_error(data_dir: str) -> None:
    with serve(data_dir) as broker:
        with ManagementClient(broker.url, basic=("admin", PASSWORD)) as admin:
            admin.login("admin", PASSWORD)
            admin.create_queue("orders", policy=QueuePolicy(dead_letter_queue="orders-dead"))
        conn, got = connect(broker)
        conn.send("/queue/orders", "poison", headers={"trace": "t-1"})
        conn.subscribe("/queue/orders", id="s", ack="client-individual")
        [delivery] = got.wait_for(1)
        conn.nack(delivery.headers["ack"], requeue="false", error="cannot parse")
        deadline = time.monotonic() + 5
        with ManagementClient(broker.url, basic=("admin", PASSWORD)) as admin:
            admin.login("admin", PASSWORD)
            while not (peeked := admin.peek("orders-dead")) and time.monotonic() < deadline:
                time.sleep(0.05)
        [moved] = peeked
        headers = moved.headers
        assert headers["x-dead-letter-reason"] == "rejected"
        assert headers["x-original-destination"] == "/queue/orders"
        assert headers["x-delivery-count"] == "1"
        assert headers["x-last-error"] == "cannot parse"
        assert int(headers["x-dead-lettered-at"]) > 0
        assert headers["trace"] == "t-1"
        conn.disconnect()


def test_a_schedule_larger_than_memory_survives_kill_9_in_time_order_and_purges_whole(
    data_dir: str,
) -> None:
    """With a window of 3, all but the soonest scheduled messages are only on disk: a
    restart counts them without reading them, they come in time order, and a purge
    forgets the ones on disk too."""
    window = ("--backlog-window", "3")
    due: dict[str, float] = {}
    with broker_process(
        "--data-dir", data_dir, *window, env={"BUZON_ADMIN_PASSWORD": PASSWORD}
    ) as broker:
        conn, _ = connect(broker)
        receipts = Receipts()
        conn.set_listener("receipts", receipts)
        for n in range(8):  # published latest first: time order is the reverse of seq's
            delay = 5_000 + 500 * (7 - n)
            due[str(n)] = time.time() + delay / 1000
            conn.send("/queue/paged", str(n), headers={"delay": str(delay)})
            conn.send("/queue/dropped", str(n), headers={"delay": "60000"})
        conn.send("/queue/paged", "ready", headers={"receipt": "r"})
        receipts.wait("r")
        broker.stop(signal.SIGKILL)
    with broker_process(
        "--data-dir", data_dir, *window, env={"BUZON_ADMIN_PASSWORD": PASSWORD}
    ) as broker:
        assert queue_info(broker, "paged")["scheduled"] == 8
        assert queue_info(broker, "dropped")["scheduled"] == 8
        with ManagementClient(broker.url, basic=("admin", PASSWORD)) as admin:
            admin.login("admin", PASSWORD)
            assert admin.purge_queue("dropped") == 8
        conn, got = connect(broker)
        subscribed = time.time()
        conn.subscribe("/queue/paged", id="s", ack="auto")
        delivered = [frame.body for frame in got.wait_for(9, timeout=20)]
        assert sorted(delivered) == sorted([*due, "ready"])
        # those whose time came after the restart come in time order (ones due at once,
        # were the restart slow, would come by seq: a time is no promise of order)
        later = [body for body in delivered if body in due and due[body] > subscribed + 0.5]
        assert later == sorted(later, key=due.__getitem__)
        assert len(later) >= 6
        conn.disconnect()
        assert queue_info(broker, "paged")["scheduled"] == 0
        broker.stop()
    with serve(data_dir) as broker:
        assert queue_info(broker, "dropped")["scheduled"] == 0
