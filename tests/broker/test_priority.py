"""Message priority in the engine: higher first, FIFO within a priority, in memory and paged.

Paged queues run over the memory store with every operation held until the test lets it
run (``HeldStore``), so the moment a higher priority's next messages are still being read
can be observed.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.broker.queue import Queue
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, Overflow, QueuePolicy
from tests.broker.helpers import Clock, HeldStore, Peer, open_peer, user
from tests.broker.helpers import send as send_frame

Q = "/queue/jobs"
RECORD = new_record(DestinationKind.QUEUE, "jobs", "id-alice", None, 0.0)
WINDOW = 3

# 50 messages over four priorities (and the default), interleaved
MIXED = [(n, (None, 0, 9, 2, 7)[n % 5]) for n in range(50)]


def send(producer: Peer, number: int, priority: int | None, *extra: tuple[str, str]) -> None:
    headers = extra if priority is None else (("priority", str(priority)), *extra)
    send_frame(producer.session, Q, headers, b"%d" % number)


def expected(messages: list[tuple[int, int | None]]) -> list[int]:
    """Numbers in the order a queue hands them out: higher priority first, then FIFO."""
    level = {n: 4 if p is None else p for n, p in messages}
    return sorted(level, key=lambda n: (-level[n], n))


def numbers(consumer: Peer) -> list[int]:
    return [int(body) for body in consumer.bodies()]


def memory_broker(clock: Clock | None = None) -> Broker:
    broker = Broker(BrokerConfig(), clock=clock or Clock())
    broker.add_destination(RECORD)
    return broker


def paged_broker(held: HeldStore, *, restored: bool = False) -> Broker:
    broker = Broker(BrokerConfig(backlog_window=WINDOW, default_prefetch=1), log=held, pager=held)
    broker.add_destination(RECORD, restored=restored)
    return broker


def drain(consumer: Peer, held: HeldStore | None = None, limit: int | None = None) -> None:
    """Ack each delivery as it comes (letting the store answer between acks), ``limit``
    deliveries at most."""
    seen = 0
    while limit is None or seen < limit:
        if held is not None:
            held.flush()
        if len(consumer.deliveries) == seen:
            return
        ack_id = consumer.deliveries[seen].ack_id
        seen += 1
        assert ack_id is not None
        consumer.session.ack(ack_id)


def test_an_in_memory_queue_hands_out_higher_priorities_first_and_fifo_within_each() -> None:
    broker = memory_broker()
    producer = open_peer(broker, "alice")
    for number, priority in MIXED:
        send(producer, number, priority)
    assert broker.statistics().queues[0].depth == 50
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    drain(consumer)
    assert numbers(consumer) == expected(MIXED)
    assert {d.message.priority for d in consumer.deliveries} == {0, 2, 4, 7, 9}


def test_returned_messages_keep_their_place_within_their_priority() -> None:
    broker = memory_broker()
    producer = open_peer(broker, "alice")
    for number, priority in [(1, 2), (2, 9), (3, 2), (4, 9)]:
        send(producer, number, priority)
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=4)
    assert numbers(consumer) == [2, 4, 1, 3]
    consumer.session.close()  # all four go back, each to its place in its priority
    send(producer, 5, 2)
    send(producer, 6, 9)
    later = open_peer(broker, "dave").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=6)
    assert numbers(later) == [2, 4, 6, 1, 3, 5]
    assert later.flags() == [True, True, False, True, True, False]


def test_peek_shows_the_hand_out_order() -> None:
    broker = memory_broker()
    producer = open_peer(broker, "alice")
    for number, priority in [(1, None), (2, 9), (3, 0), (4, 9)]:
        send(producer, number, priority)
    shown = broker.peek(user("alice"), "jobs", 10)
    assert [int(m.body) for m, _ in shown] == [2, 4, 1, 3]


def test_a_priority_outside_0_to_9_is_refused_and_nothing_is_enqueued() -> None:
    broker = memory_broker()
    producer = open_peer(broker, "alice")
    for value in ("-1", "10", "", "high", "4.0", " 4", "٣"):
        with pytest.raises(BrokerError) as refused:
            send_frame(producer.session, Q, (("priority", value),), b"x")
        assert refused.value.code is ErrorCode.BAD_HEADER_VALUE
        assert "priority" in refused.value.detail
    send(producer, 1, 0)
    stats = broker.statistics().queues[0]
    assert (stats.depth, stats.published) == (1, 1)


def test_expiry_and_purge_reach_every_level() -> None:
    clock = Clock()
    broker = memory_broker(clock)
    producer = open_peer(broker, "alice")
    soon = ("expires", str(int((clock.now + 1) * 1000)))
    send(producer, 1, 9, soon)
    send(producer, 2, 0, soon)
    send(producer, 3, None, soon)
    send(producer, 4, 7)
    clock.now += 5
    assert broker.expire_messages(clock.now) == 3
    assert broker.statistics().queues[0].depth == 1
    send(producer, 5, 1)
    assert broker.purge("jobs") == 2
    assert broker.statistics().queues[0].depth == 0
    send(producer, 6, 3)
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.AUTO)
    assert numbers(consumer) == [6]


def test_a_paged_queue_hands_out_by_priority_across_its_tails_and_a_restart() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    producer = open_peer(broker, "alice")
    for number, priority in MIXED:
        send(producer, number, priority)
    held.flush()
    stats = broker.statistics()
    assert stats.queues[0].depth == 50
    # one window per priority used, the rest in the store
    assert stats.queued_bytes <= 5 * WINDOW * 2
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    drain(consumer, held, limit=17)
    held.flush()
    first = numbers(consumer)
    broker.close()
    held.flush()
    asyncio.run(held.store.open())

    restarted = paged_broker(held, restored=True)
    found = asyncio.run(held.store.backlogs(WINDOW, 1 << 20))
    assert {item.priority for item in found} == {0, 2, 4, 7}  # every 9 was acked
    restarted.restore(found, cleanly=True)
    held.flush()
    assert restarted.statistics().queues[0].depth == 50 - len(first) + 1  # one was unacked
    again = open_peer(restarted, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    drain(again, held)
    order = expected(MIXED)
    assert first == order[: len(first)]
    assert numbers(again) == order[len(first) - 1 :]  # the unacked one comes back first
    assert again.flags()[0]
    assert not any(again.flags()[1:])
    assert asyncio.run(held.store.messages()) == []


def test_a_lower_priority_waits_while_the_higher_ones_are_read_from_the_store() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    producer = open_peer(broker, "alice")
    for number in range(1, 9):
        send(producer, number, 9)  # three resident, five in the store
    send(producer, 100, 1)
    held.flush()
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.AUTO)
    assert numbers(consumer) == [1, 2, 3]  # the read of 4.. is held
    assert held.held
    held.flush()
    assert numbers(consumer) == [*range(1, 9), 100]


def test_a_queue_that_only_ever_sees_the_default_priority_keeps_its_plain_backlog() -> None:
    held = HeldStore()
    broker = paged_broker(held)
    producer = open_peer(broker, "alice")
    for number in range(10):
        send(producer, number, 4 if number % 2 else None)
    held.flush()
    (queue,) = broker.destinations(DestinationKind.QUEUE)
    assert isinstance(queue, Queue)
    assert queue.paged
    assert type(queue._backlog).__name__ == "PagedBacklog"
    send(producer, 10, 5)
    held.flush()
    assert type(queue._backlog).__name__ == "LeveledBacklog"
    assert queue.paged


def test_a_durable_queue_with_a_dead_letter_queue_keeps_priorities_of_expired_messages() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    policy = QueuePolicy(message_ttl_ms=1_000, dead_letter_queue="dead")
    broker.add_destination(dataclasses.replace(RECORD, policy=policy))
    producer = open_peer(broker, "alice")
    send(producer, 1, 1)
    send(producer, 2, 8)
    clock.now += 5
    broker.expire_messages(clock.now)
    consumer = open_peer(broker, "carol").subscribe("/queue/dead", AckMode.AUTO)
    assert sorted((d.message.priority, int(d.message.body)) for d in consumer.deliveries) == [
        (1, 1),
        (8, 2),
    ]


def test_a_full_drop_head_queue_drops_the_oldest_of_the_lowest_priority() -> None:
    broker = Broker(BrokerConfig())
    policy = QueuePolicy(max_length=3, overflow=Overflow.DROP_HEAD, dead_letter_queue="dead")
    broker.add_destination(dataclasses.replace(RECORD, policy=policy))
    producer = open_peer(broker, "alice")
    for number, priority in [(1, 9), (2, 0), (3, None), (4, 0), (5, 9), (6, 7)]:
        send(producer, number, priority)
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.AUTO)
    assert numbers(consumer) == [1, 5, 6]
    dead = open_peer(broker, "carol").subscribe("/queue/dead", AckMode.AUTO)
    # dropped 2, 4 (the 0s), then 3; a dead letter keeps its priority
    assert numbers(dead) == [3, 2, 4]


def test_a_durable_subscription_backlog_is_a_queue_it_hands_out_by_priority() -> None:
    broker = Broker(BrokerConfig(durable_backlog_max=3))
    away = open_peer(broker, "alice")
    away.session.subscribe("sub", "/topic/news", AckMode.AUTO, durable_name="mine")
    plain = open_peer(broker, "bob").subscribe("/topic/news")
    away.session.close()
    producer = open_peer(broker, "carol")
    for number, priority in [(1, 0), (2, None), (3, 9), (4, 0), (5, 8)]:
        headers = () if priority is None else (("priority", str(priority)),)
        send_frame(producer.session, "/topic/news", headers, b"%d" % number)
    assert numbers(plain) == [1, 2, 3, 4, 5]  # a live subscription gets them at once
    back = open_peer(broker, "alice")
    back.session.subscribe("sub", "/topic/news", AckMode.AUTO, durable_name="mine")
    assert numbers(back) == [3, 5, 2]  # bounded to 3: the two 0s were dropped first
