"""buzon.testing's virtual clock: a test moves time and every deadline that came due fires
at once (delays, retries, ack deadlines, expiry), and assert_dead_lettered says why."""

from __future__ import annotations

import pytest

from buzon.client import QueuePolicy
from buzon.testing import broker, broker_sync

HOUR = 3600


def test_a_message_delayed_an_hour_arrives_when_the_clock_gets_there() -> None:
    with broker_sync(virtual_clock=True) as b, b.client() as client:
        jobs = client.subscribe("/queue/later", ack="client-individual")
        client.publish("/queue/later", "wake up", headers={"delay": str(HOUR * 1000)})
        with pytest.raises(TimeoutError):
            jobs.get(timeout=0.2)
        b.advance(HOUR - 1)
        with pytest.raises(TimeoutError):
            jobs.get(timeout=0.2)
        b.advance(1)
        assert jobs.get(timeout=5).text == "wake up"


def test_retries_with_back_off_then_dead_letters_for_max_deliveries() -> None:
    policy = QueuePolicy(retry_delay_ms=60_000, max_deliveries=2, dead_letter_queue="jobs.dlq")
    with broker_sync(virtual_clock=True) as b, b.client() as client:
        b.management.create_queue("jobs.dlq")
        b.management.create_queue("jobs", policy=policy)
        jobs = client.subscribe("/queue/jobs", ack="client-individual")
        client.publish("/queue/jobs", "flaky")
        first = jobs.get(timeout=5)
        first.nack(confirm=True)
        b.advance(59)
        with pytest.raises(TimeoutError):
            jobs.get(timeout=0.2)
        b.advance(1)
        second = jobs.get(timeout=5)
        assert second.redelivered
        second.nack(confirm=True)
        b.advance(60)
        dead = b.assert_dead_lettered(first.message_id, reason="max-deliveries", queue="jobs.dlq")
        assert dead.body == b"flaky"
        assert dead.headers["x-delivery-count"] == "2"


def test_an_unacked_delivery_times_out_to_the_dead_letter_queue() -> None:
    policy = QueuePolicy(ack_timeout_ms=30_000, max_deliveries=1, dead_letter_queue="dlq")
    with broker_sync(virtual_clock=True) as b, b.client() as client:
        b.management.create_queue("dlq")
        b.management.create_queue("slow", policy=policy)
        jobs = client.subscribe("/queue/slow", ack="client-individual")
        client.publish("/queue/slow", "too slow")
        message = jobs.get(timeout=5)
        b.advance(29)
        with pytest.raises(AssertionError, match="was not dead-lettered"):
            b.assert_dead_lettered(message.message_id, wait=0.1)
        b.advance(1)
        b.assert_dead_lettered(message.message_id, reason="ack-timeout")
        message.ack(confirm=True)  # late: ignored, and the connection lives on
        client.publish("/queue/slow", "next")
        assert jobs.get(timeout=5).text == "next"
        assert b.management.get_queue("slow").late_settles == 1


def test_expired_messages_are_swept_when_the_clock_passes_their_ttl() -> None:
    policy = QueuePolicy(message_ttl_ms=10_000, dead_letter_queue="expired")
    with broker_sync(virtual_clock=True) as b:
        b.management.create_queue("expired")
        b.management.create_queue("fresh", policy=policy)
        message_id = b.management.publish("/queue/fresh", "stale soon")
        b.advance(10)
        dead = b.assert_dead_lettered(message_id)
        assert dead.reason == "expired"
        assert dead.queue == "expired"
        assert b.management.get_queue("fresh").depth == 0


def test_a_wrong_reason_fails_the_assertion_naming_both() -> None:
    policy = QueuePolicy(message_ttl_ms=1_000, dead_letter_queue="dlq")
    with broker_sync(virtual_clock=True) as b:
        b.management.create_queue("dlq")
        b.management.create_queue("q", policy=policy)
        message_id = b.management.publish("/queue/q", "x")
        b.advance(1)
        with pytest.raises(AssertionError, match="'expired', not 'rejected'"):
            b.assert_dead_lettered(message_id, reason="rejected")


def test_advance_needs_the_virtual_clock() -> None:
    with broker_sync() as b:
        with pytest.raises(RuntimeError, match="virtual_clock=True"):
            b.advance(1)
        assert b.clock is None


async def test_the_async_broker_travels_in_time_too() -> None:
    async with broker(virtual_clock=True) as b, b.client() as client:
        jobs = await client.subscribe("/queue/a", ack="client-individual", ack_timeout=5)
        await client.publish("/queue/a", "job")
        first = await jobs.get(timeout=5)
        b.advance(5)
        again = await jobs.get(timeout=5)
        assert again.redelivered
        assert again.message_id == first.message_id
        await again.ack(confirm=True)
        await first.ack(confirm=True)  # late, ignored
        stats = b.server.broker.statistics().queues[0]
        assert (stats.lease_expired, stats.late_settles, stats.acked) == (1, 1, 1)
