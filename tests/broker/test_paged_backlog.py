"""A durable queue's paged backlog: memory bounded by the window, the tail in the store.

The store is the memory store whose operations wait until the test lets them run
(``HeldStore``), so each step of paging can be observed: what is in memory, what is
counted, what a consumer gets and in which order.
"""

from __future__ import annotations

import asyncio
import dataclasses

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.store import DestinationKind, QueuePolicy
from tests.broker.helpers import Clock, HeldStore, Peer, numbered, open_peer, send

Q = "/queue/big"
WINDOW = 4


RECORD = new_record(DestinationKind.QUEUE, "big", "id-alice", None, 0.0)


def paged_broker(held: HeldStore) -> Broker:
    config = BrokerConfig(backlog_window=WINDOW, default_prefetch=1)
    broker = Broker(config, log=held, pager=held)
    broker.add_destination(RECORD)
    return broker


def fill(broker: Broker, held: HeldStore, count: int) -> None:
    open_peer(broker, "alice").publish(Q, *numbered(count))
    held.flush()


def drain_one_at_a_time(consumer: Peer, held: HeldStore) -> list[bytes]:
    """Ack each delivery as it comes, letting the store answer between acks."""
    seen = 0
    while True:
        held.flush()
        if len(consumer.deliveries) == seen:
            return consumer.bodies()
        delivery = consumer.deliveries[seen]
        seen += 1
        assert delivery.ack_id is not None
        consumer.session.ack(delivery.ack_id)


def test_memory_holds_the_window_and_the_store_holds_the_rest() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    fill(broker, held, 1_000)
    stats = broker.statistics()
    assert stats.queues[0].depth == 1_000
    assert stats.queued_bytes == sum(len(body) for body in numbered(WINDOW))  # resident only
    assert len(asyncio.run(held.store.messages())) == 1_000


def test_a_consumer_acking_one_by_one_drains_a_backlog_far_larger_than_the_window() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    fill(broker, held, 50)
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    assert drain_one_at_a_time(consumer, held) == numbered(50)
    assert broker.statistics().queues[0].depth == 0
    assert asyncio.run(held.store.messages()) == []


def test_transient_messages_past_the_window_are_spilled_and_come_back_in_order() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    producer = open_peer(broker, "alice")
    for body in numbered(20):
        send(producer.session, Q, (("persistent", "false"),), body)
    held.flush()
    assert broker.statistics().queued_bytes == sum(len(body) for body in numbered(WINDOW))
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    assert drain_one_at_a_time(consumer, held) == numbered(20)


def test_after_a_restart_the_head_is_in_memory_and_the_rest_is_counted_then_read() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    fill(broker, held, 30)
    broker.close()
    held.flush()
    restarted = paged_broker(held)
    found = asyncio.run(held.store.backlogs(WINDOW, 1 << 20))
    assert restarted.restore(found, cleanly=True) == WINDOW
    assert restarted.statistics().queues[0].depth == WINDOW  # the rest is being counted
    held.flush()
    assert restarted.statistics().queues[0].depth == 30
    consumer = open_peer(restarted, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, 1)
    assert drain_one_at_a_time(consumer, held) == numbered(30)
    assert not any(consumer.flags())


def test_a_purge_drops_the_tail_in_the_store_too() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    fill(broker, held, 100)
    assert broker.purge("big") == 100
    held.flush()
    assert asyncio.run(held.store.messages()) == []
    fill(broker, held, 3)
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=10)
    assert consumer.bodies() == numbered(3)


def test_expired_tail_messages_leave_through_the_store_and_reach_the_dead_letter_queue() -> None:
    held = HeldStore()
    clock = Clock()
    config = BrokerConfig(backlog_window=WINDOW)
    broker = Broker(config, clock=clock, log=held, pager=held)
    policy = QueuePolicy(message_ttl_ms=5_000, dead_letter_queue="dead")
    broker.add_destination(dataclasses.replace(RECORD, policy=policy))
    fill(broker, held, 20)
    clock.now += 10
    expired_in_memory = broker.expire_messages(clock.now)
    assert expired_in_memory == WINDOW
    held.flush()  # the store deletes the tail's expired messages, two at a time here
    while broker.statistics().queues[0].depth:
        broker.expire_messages(clock.now)
        held.flush()
    (big,) = [queue for queue in broker.statistics().queues if queue.name == "big"]
    assert (big.depth, big.retired, big.dead_lettered) == (0, 20, 20)
    consumer = open_peer(broker, "carol").subscribe("/queue/dead", AckMode.AUTO)
    held.flush()
    assert sorted(consumer.bodies()) == sorted(numbered(20))
    assert {dict(d.message.headers)["x-dead-letter-reason"] for d in consumer.deliveries} == {
        "expired"
    }


def test_when_the_whole_window_expires_the_tail_is_read_in() -> None:
    held = HeldStore()
    clock = Clock()
    broker = Broker(BrokerConfig(backlog_window=WINDOW), clock=clock, log=held, pager=held)
    broker.add_destination(RECORD)
    producer = open_peer(broker, "alice")
    soon = (("expires", str(int((clock.now + 1) * 1000))),)
    for body in numbered(WINDOW):
        send(producer.session, Q, soon, body)  # the window: all short-lived
    producer.publish(Q, b"lasting-1", b"lasting-2")  # the tail
    held.flush()
    clock.now += 5
    assert broker.expire_messages(clock.now) == WINDOW
    held.flush()
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=10)
    assert consumer.bodies() == [b"lasting-1", b"lasting-2"]
