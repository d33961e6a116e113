"""The SDK keeps ack-deadline leases: message.extend(seconds) and message.keep_alive()."""

from __future__ import annotations

import asyncio
import time

import pytest

from buzon.testing import broker, broker_sync


def test_extend_postpones_the_redelivery_to_another_consumer() -> None:
    with broker_sync(virtual_clock=True) as b, b.client() as mine, b.client() as theirs:
        slow = mine.subscribe("/queue/jobs", ack="client-individual", ack_timeout=30)
        client_b = theirs.subscribe("/queue/jobs", ack="client-individual")
        mine.publish("/queue/jobs", "long job")
        message = slow.get(timeout=5)
        b.advance(20)
        message.extend(30, confirm=True)  # 30 s from now: until 50 s after delivery
        b.advance(20)
        with pytest.raises(TimeoutError):
            client_b.get(timeout=0.3)
        b.advance(10)
        taken_over = client_b.get(timeout=5)
        assert taken_over.redelivered
        assert taken_over.message_id == message.message_id
        message.ack(confirm=True)  # late: a no-op with its receipt, the connection lives
        mine.publish("/queue/jobs", "next")
        assert slow.get(timeout=5).text == "next"


def test_keep_alive_holds_the_message_while_the_handler_runs() -> None:
    with broker_sync() as b, b.client() as mine, b.client() as theirs:
        slow = mine.subscribe("/queue/work", ack="client-individual", ack_timeout=1)
        other = theirs.subscribe("/queue/work", ack="client-individual")
        mine.publish("/queue/work", "slow job")
        message = slow.get(timeout=5)
        with message.keep_alive(1):
            time.sleep(2.5)  # two and a half times the ack timeout
        message.ack(confirm=True)
        with pytest.raises(TimeoutError):
            other.get(timeout=0.3)
        queue = b.management.get_queue("work")
        assert (queue.lease_expired, queue.late_settles, queue.in_flight) == (0, 0, 0)


async def test_async_keep_alive_stops_with_the_block() -> None:
    async with broker() as b, b.client() as mine, b.client() as theirs:
        slow = await mine.subscribe("/queue/w", ack="client-individual", ack_timeout=0.4)
        other = await theirs.subscribe("/queue/w", ack="client-individual")
        await mine.publish("/queue/w", "job")
        message = await slow.get(timeout=5)
        async with message.keep_alive(0.4):
            await asyncio.sleep(1.0)
        # the handler gave up without settling: the lease runs out and another takes it
        taken_over = await other.get(timeout=5)
        assert taken_over.redelivered
        assert b.server.broker.statistics().queues[0].lease_expired == 1


def test_keep_alive_rejects_nonsense() -> None:
    with broker_sync() as b, b.client() as client:
        jobs = client.subscribe("/queue/x", ack="client-individual")
        client.publish("/queue/x", "job")
        message = jobs.get(timeout=5)
        with pytest.raises(ValueError, match="positive"):
            message.keep_alive(0)
        for seconds in (-5, 0, float("nan"), float("inf")):  # refused before anything is sent
            with pytest.raises(ValueError, match="positive"):
                message.extend(seconds)
            with pytest.raises(ValueError, match="positive"):
                client.subscribe("/queue/y", ack="client-individual", ack_timeout=seconds)
        with pytest.raises(ValueError, match="every < seconds"):
            message.keep_alive(1, every=5)
        message.extend(confirm=True)  # no ack timeout here: nothing to extend, no error
        message.ack(confirm=True)  # the connection lived through all of it
