"""Scheduled messages in the engine: delayed publishes, NACK outcomes and retry back-off.

The broker's clock is a test clock; ``later`` moves it and fires the engine's timers, as the
server's loop timer does when the time comes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random

import pytest

from buzon.broker import REJECT, RELEASE, AckMode, Broker, BrokerConfig, Disposition, Outcome, Queue
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, MemoryStore, Overflow, QueuePolicy
from tests.broker.helpers import Clock, HeldStore, Peer, open_peer, send

Q = "/queue/work"
RECORD = new_record(DestinationKind.QUEUE, "work", "id-alice", None, 0.0)


def make_broker(clock: Clock, store: MemoryStore | None = None, **policy: object) -> Broker:
    broker = Broker(BrokerConfig(backlog_window=3), clock=clock, log=store, pager=store)
    broker.add_destination(dataclasses.replace(RECORD, policy=QueuePolicy(**policy)))  # type: ignore[arg-type]
    return broker


def later(broker: Broker, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    broker.timers.fire()


def stats(broker: Broker, name: str = "work") -> object:
    return next(q for q in broker.statistics().queues if q.name == name)


def headers_of(peer: Peer, index: int = -1) -> dict[str, str]:
    return dict(reversed(peer.deliveries[index].message.headers))


def test_a_delayed_message_waits_for_its_time_and_never_blocks_the_messages_behind_it() -> None:
    clock = Clock()
    broker = make_broker(clock)
    producer = open_peer(broker, "alice")
    consumer = open_peer(broker, "bob").subscribe(Q)
    send(producer.session, Q, (("delay", "1500"), ("trace", "t")), b"later")
    producer.publish(Q, b"now")
    assert consumer.bodies() == [b"now"]
    queue = stats(broker)
    assert (queue.depth, queue.scheduled) == (0, 1)  # type: ignore[attr-defined]
    later(broker, clock, 1.4)
    assert consumer.bodies() == [b"now"]
    later(broker, clock, 0.1)
    assert consumer.bodies() == [b"now", b"later"]
    assert consumer.flags() == [False, False]  # a first delivery, not a redelivery
    assert headers_of(consumer) == {"trace": "t"}  # the broker's time headers are not passed on
    assert stats(broker).scheduled == 0  # type: ignore[attr-defined]


def test_deliver_at_in_the_past_and_delay_zero_are_ordinary_messages() -> None:
    clock = Clock()
    broker = make_broker(clock)
    consumer = open_peer(broker, "bob").subscribe(Q)
    session = open_peer(broker, "alice").session
    send(session, Q, (("delay", "0"),), b"zero")
    send(session, Q, (("deliver-at", str(int((clock.now - 5) * 1000))),), b"past")
    assert consumer.bodies() == [b"zero", b"past"]
    send(session, Q, (("deliver-at", str(int((clock.now + 2) * 1000))),), b"future")
    later(broker, clock, 2)
    assert consumer.bodies() == [b"zero", b"past", b"future"]


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ((("delay", "-1"),), "delay"),
        ((("delay", "soon"),), "delay"),
        ((("delay", "1.5"),), "delay"),
        ((("delay", str(31 * 24 * 3600 * 1000)),), "delay"),
        ((("deliver-at", "tomorrow"),), "deliver-at"),
        ((("deliver-at", "99999999999999"),), "deliver-at"),
        ((("delay", "10"), ("deliver-at", "10")), "delay or deliver-at"),
    ],
)
def test_bad_times_are_refused_naming_the_header_and_nothing_is_enqueued(
    headers: tuple[tuple[str, str], ...], named: str
) -> None:
    broker = make_broker(Clock())
    session = open_peer(broker, "alice").session
    with pytest.raises(BrokerError) as refused:
        send(session, Q, headers, b"x")
    assert refused.value.code is ErrorCode.BAD_HEADER_VALUE
    assert named in refused.value.detail
    queue = stats(broker)
    assert (queue.published, queue.depth, queue.scheduled) == (0, 0, 0)  # type: ignore[attr-defined]


def test_a_channel_refuses_a_delay() -> None:
    broker = make_broker(Clock())
    with pytest.raises(BrokerError) as refused:
        send(open_peer(broker, "alice").session, "/topic/news", (("delay", "10"),), b"x")
    assert "queues" in refused.value.detail


def test_retry_back_off_grows_by_the_multiplier_up_to_the_maximum() -> None:
    clock = Clock()
    broker = make_broker(
        clock, retry_delay_ms=1_000, retry_multiplier=2.5, retry_max_delay_ms=3_000
    )
    open_peer(broker, "alice").publish(Q, b"flaky")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    waits = []
    for _ in range(3):
        seen = len(consumer.deliveries)
        consumer.session.settle(consumer.deliveries[-1].ack_id or "", RELEASE)
        assert stats(broker).scheduled == 1  # type: ignore[attr-defined]
        waited = 0.0
        while len(consumer.deliveries) == seen:
            later(broker, clock, 0.25)
            waited += 0.25
        waits.append(waited)
    assert waits == [1.0, 2.5, 3.0]  # 1000, 1000 * 2.5, min(6250, 3000)
    assert consumer.flags() == [False, True, True, True]
    assert stats(broker).retried == 3  # type: ignore[attr-defined]


def test_a_nack_requeue_delay_wins_over_the_policy_and_zero_means_at_once() -> None:
    clock = Clock()
    broker = make_broker(clock, retry_delay_ms=60_000)
    open_peer(broker, "alice").publish(Q, b"m")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[-1], Outcome(delay_ms=0))
    assert consumer.bodies() == [b"m", b"m"]
    consumer.session.settle(consumer.ack_ids()[-1], Outcome(delay_ms=500))
    later(broker, clock, 0.4)
    assert len(consumer.deliveries) == 2
    later(broker, clock, 0.1)
    assert len(consumer.deliveries) == 3


def test_a_delayed_retry_is_not_held_by_its_consumer_and_may_go_to_another() -> None:
    clock = Clock()
    broker = make_broker(clock, retry_delay_ms=1_000)
    open_peer(broker, "alice").publish(Q, b"a", b"b")
    first = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    first.session.settle(first.ack_ids()[0], RELEASE)  # "a" waits; "b" comes at once
    assert first.bodies() == [b"a", b"b"]
    other = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    later(broker, clock, 1)
    assert other.bodies() == [b"a"]
    assert other.flags() == [True]


def test_nack_without_requeue_dead_letters_at_once_with_the_whole_story() -> None:
    clock = Clock()
    broker = make_broker(clock, dead_letter_queue="dead")
    audit = open_peer(broker, "alice").subscribe("/queue/dead")
    send(open_peer(broker, "alice").session, Q, (("trace", "t7"),), b"poison")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[0], Outcome(error="first try"))
    consumer.session.settle(
        consumer.ack_ids()[1], Outcome(Disposition.REJECT, error="bad payload: x" * 200)
    )
    (moved,) = audit.deliveries
    headers = dict(reversed(moved.message.headers))
    assert headers["x-dead-letter-reason"] == "rejected"
    assert headers["x-original-destination"] == Q
    assert headers["x-delivery-count"] == "2"
    assert headers["x-last-error"] == ("bad payload: x" * 200)[:1024]
    assert headers["x-dead-lettered-at"] == str(int(clock.now * 1000))
    assert headers["trace"] == "t7"
    assert dict(stats(broker).dead_lettered_by_reason) == {"rejected": 1}  # type: ignore[attr-defined]


def test_dead_letter_reasons_count_deliveries_and_carry_the_last_error() -> None:
    clock = Clock()
    broker = make_broker(clock, dead_letter_queue="dead", max_deliveries=2, message_ttl_ms=10_000)
    audit = open_peer(broker, "alice").subscribe("/queue/dead")
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"tired")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[0], Outcome(error="e1"))
    consumer.session.settle(consumer.ack_ids()[1], Outcome(error="e2"))
    consumer.session.unsubscribe("sub")
    producer.publish(Q, b"forgotten")
    later(broker, clock, 11)
    broker.expire_messages(clock.now)
    by_body = {d.message.body: dict(reversed(d.message.headers)) for d in audit.deliveries}
    assert by_body[b"tired"]["x-dead-letter-reason"] == "max-deliveries"
    assert by_body[b"tired"]["x-delivery-count"] == "2"
    assert by_body[b"tired"]["x-last-error"] == "e2"
    assert by_body[b"forgotten"]["x-dead-letter-reason"] == "expired"
    assert by_body[b"forgotten"]["x-delivery-count"] == "0"
    assert "x-last-error" not in by_body[b"forgotten"]


def test_the_nack_that_ends_the_last_delivery_dead_letters_at_once_without_back_off() -> None:
    clock = Clock()
    broker = make_broker(clock, dead_letter_queue="dead", max_deliveries=2, retry_delay_ms=60_000)
    audit = open_peer(broker, "alice").subscribe("/queue/dead")
    open_peer(broker, "alice").publish(Q, b"doomed")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[0], Outcome(error="e1"))
    later(broker, clock, 60)  # the first back-off
    consumer.session.settle(consumer.ack_ids()[1], Outcome(error="e2"))
    (moved,) = audit.deliveries  # no second back-off to wait for
    headers = dict(reversed(moved.message.headers))
    assert (headers["x-dead-letter-reason"], headers["x-delivery-count"]) == ("max-deliveries", "2")
    assert headers["x-last-error"] == "e2"
    queue = stats(broker)
    assert (queue.depth, queue.in_flight, queue.scheduled) == (0, 0, 0)  # type: ignore[attr-defined]


def test_max_length_counts_scheduled_messages_and_drop_head_applies_when_they_come_due() -> None:
    clock = Clock()
    refusing = make_broker(clock, max_length=2)
    producer = open_peer(refusing, "alice")
    send(producer.session, Q, (("delay", "1000"),), b"later")
    producer.publish(Q, b"now")
    with pytest.raises(BrokerError) as full:  # the delayed one holds a place
        producer.publish(Q, b"one too many")
    assert full.value.code is ErrorCode.QUEUE_FULL

    dropping = make_broker(clock, max_length=1, overflow=Overflow.DROP_HEAD)
    producer = open_peer(dropping, "alice")
    producer.publish(Q, b"old")
    send(producer.session, Q, (("delay", "1000"),), b"due")
    later(dropping, clock, 1)
    consumer = open_peer(dropping, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    assert consumer.bodies() == [b"due"]  # "old" made room when "due" came due


def test_a_message_dead_lettered_twice_carries_one_set_of_broker_headers() -> None:
    clock = Clock()
    broker = make_broker(clock, dead_letter_queue="dead")
    record = new_record(DestinationKind.QUEUE, "dead", "id-alice", None, 0.0)
    broker.add_destination(
        dataclasses.replace(record, policy=QueuePolicy(dead_letter_queue="graveyard"))
    )
    grave = open_peer(broker, "alice").subscribe("/queue/graveyard")
    open_peer(broker, "alice").publish(Q, b"m")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[0], Outcome(Disposition.REJECT, error="one"))
    again = open_peer(broker, "bob").subscribe("/queue/dead", AckMode.CLIENT_INDIVIDUAL)
    again.session.settle(again.ack_ids()[0], REJECT)
    names = [name for name, _ in grave.deliveries[0].message.headers]
    assert names.count("x-dead-letter-reason") == 1
    headers = dict(grave.deliveries[0].message.headers)
    assert headers["x-original-destination"] == "/queue/dead"
    assert "x-last-error" not in headers  # no error given in the dead-letter queue


def test_purge_drops_scheduled_messages_too_and_deliver_now_and_cancel_act_on_one() -> None:
    clock = Clock()
    broker = make_broker(clock)
    session = open_peer(broker, "alice").session
    ids = [send(session, Q, (("delay", "60000"),), body) for body in (b"a", b"b", b"c")]
    queue = broker.destination(DestinationKind.QUEUE, "work")
    assert isinstance(queue, Queue)
    assert [m.body for _, m in queue.scheduled(10)] == [b"a", b"b", b"c"]
    consumer = open_peer(broker, "bob").subscribe(Q)
    assert queue.deliver_now(ids[1])
    assert consumer.bodies() == [b"b"]
    assert queue.cancel_scheduled(ids[2])
    assert not queue.cancel_scheduled(ids[2])
    assert stats(broker).scheduled == 1  # type: ignore[attr-defined]
    assert queue.purge() == 1
    later(broker, clock, 120)
    assert consumer.bodies() == [b"b"]
    assert stats(broker).bytes == 0  # type: ignore[attr-defined]


def test_scheduled_messages_and_delayed_retries_survive_a_restart() -> None:
    clock = Clock()
    store = MemoryStore()
    broker = make_broker(clock, store, retry_delay_ms=5_000)
    session = open_peer(broker, "alice").session
    send(session, Q, (("delay", "10000"),), b"delayed")
    session.publish(Q, (), b"retried")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    consumer.session.settle(consumer.ack_ids()[0], RELEASE)
    broker.close()

    clock.now += 1
    again = make_broker(clock, store, retry_delay_ms=5_000)
    again.restore(asyncio.run(store.backlogs(100, 1 << 20)), cleanly=True)
    assert stats(again).scheduled == 2  # type: ignore[attr-defined]
    assert stats(again).depth == 0  # type: ignore[attr-defined]
    consumer = open_peer(again, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    later(again, clock, 3.9)
    assert consumer.bodies() == []
    later(again, clock, 0.1)
    assert consumer.bodies() == [b"retried"]
    assert consumer.flags() == [True]
    later(again, clock, 5)
    assert consumer.bodies() == [b"retried", b"delayed"]
    assert consumer.flags() == [True, False]
    for ack_id in consumer.ack_ids():
        consumer.session.ack(ack_id)
    assert asyncio.run(store.messages()) == []


def test_a_paged_queue_never_reads_a_scheduled_message_with_its_tail() -> None:
    clock = Clock()
    store = MemoryStore()
    broker = make_broker(clock, store)
    session = open_peer(broker, "alice").session
    session.publish(Q, (), b"1")
    send(session, Q, (("delay", "1000"),), b"late")
    for body in (b"2", b"3", b"4", b"5", b"6"):
        session.publish(Q, (), body)  # window of 3: the rest is the tail, in the store
    consumer = open_peer(broker, "bob").subscribe(Q)
    assert consumer.bodies() == [b"1", b"2", b"3", b"4", b"5", b"6"]
    later(broker, clock, 1)
    assert consumer.bodies() == [b"1", b"2", b"3", b"4", b"5", b"6", b"late"]


def test_a_paged_queue_keeps_only_a_window_of_scheduled_messages_in_memory() -> None:
    clock = Clock()
    store = MemoryStore()
    broker = make_broker(clock, store)
    session = open_peer(broker, "alice").session
    for n in range(50):
        send(session, Q, (("delay", str(1_000 + 100 * ((n * 37) % 50))),), str(n).encode())
    queue = broker.destination(DestinationKind.QUEUE, "work")
    assert isinstance(queue, Queue)
    assert len(queue.scheduled(100)) == 3  # the window; the other 47 only in the store
    assert stats(broker).scheduled == 50  # type: ignore[attr-defined]
    consumer = open_peer(broker, "bob").subscribe(Q)
    for _ in range(60):
        later(broker, clock, 0.1)
    expected = sorted(range(50), key=lambda n: (n * 37) % 50)
    assert consumer.bodies() == [str(n).encode() for n in expected]
    assert stats(broker).scheduled == 0  # type: ignore[attr-defined]


def test_a_restart_reads_only_the_soonest_scheduled_messages_and_counts_the_rest() -> None:
    clock = Clock()
    store = MemoryStore()
    broker = make_broker(clock, store)
    session = open_peer(broker, "alice").session
    for n in range(20):
        send(session, Q, (("delay", str(1_000 * (20 - n))),), str(n).encode())
    broker.close()
    again = make_broker(clock, store)
    again.restore(asyncio.run(store.backlogs(3, 1 << 20)), cleanly=True)
    queue = again.destination(DestinationKind.QUEUE, "work")
    assert isinstance(queue, Queue)
    assert [m.body for _, m in queue.scheduled(100)] == [b"19", b"18", b"17"]
    assert stats(again).scheduled == 20  # type: ignore[attr-defined]
    consumer = open_peer(again, "bob").subscribe(Q)
    for _ in range(20):
        later(again, clock, 1)
    assert consumer.bodies() == [str(n).encode() for n in reversed(range(20))]


def test_a_deleted_queues_scheduled_messages_all_leave_the_store_at_the_next_start() -> None:
    clock = Clock()
    store = MemoryStore()
    broker = make_broker(clock, store)
    session = open_peer(broker, "alice").session
    for n in range(20):
        send(session, Q, (("delay", "60000"),), str(n).encode())
    broker.close()
    again = Broker(BrokerConfig(backlog_window=3), clock=clock, log=store, pager=store)
    again.restore(asyncio.run(store.backlogs(3, 1 << 20)), cleanly=True)  # "work" is gone
    assert asyncio.run(store.messages()) == []  # not only the 3 the start-up read saw


@pytest.mark.parametrize("seed", range(40))
def test_scheduled_paging_loses_nothing_whatever_order_the_store_answers_in(seed: int) -> None:
    """Random delays, delayed retries and clock steps over a store whose every operation
    waits; every message is delivered exactly once per NACK plus once, never early."""
    rng = random.Random(seed)
    clock = Clock()
    held = HeldStore()
    broker = Broker(BrokerConfig(backlog_window=3), clock=clock, log=held, pager=held)
    broker.add_destination(RECORD)
    session = open_peer(broker, "alice").session
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1000)
    not_before: dict[bytes, float] = {}
    nacks_left: dict[bytes, int] = {}
    planned: dict[bytes, int] = {}
    seen = 0
    for n in range(60):
        body = str(n).encode()
        delay = rng.choice([0, 0, 200, 500, 1_500, 3_000])
        not_before[body] = clock.now + delay / 1000
        nacks_left[body] = rng.choice([0, 0, 1, 2])
        planned[body] = 1 + nacks_left[body]
        send(session, Q, (("delay", str(delay)),), body)
        for _ in range(rng.randrange(3)):
            if held.held:
                held.step()
        if rng.random() < 0.3:
            later(broker, clock, rng.choice([0.1, 0.3, 1.0]))
        seen = _settle_new(consumer, seen, clock, not_before, nacks_left, rng)
    for _ in range(400):
        held.flush()
        later(broker, clock, 0.25)
        seen = _settle_new(consumer, seen, clock, not_before, nacks_left, rng)
    counts = collections.Counter(consumer.bodies())
    assert counts == planned
    assert all(left == 0 for left in nacks_left.values())
    assert stats(broker).scheduled == 0  # type: ignore[attr-defined]
    held.flush()
    assert asyncio.run(held.store.messages()) == []


def _settle_new(
    consumer: Peer,
    seen: int,
    clock: Clock,
    not_before: dict[bytes, float],
    nacks_left: dict[bytes, int],
    rng: random.Random,
) -> int:
    """ACK or NACK (with a short delay) every delivery since ``seen``; check none came early."""
    while seen < len(consumer.deliveries):
        delivery = consumer.deliveries[seen]
        seen += 1
        body = delivery.message.body
        assert clock.now >= not_before[body] - 1e-9, body
        assert delivery.ack_id is not None
        if nacks_left[body]:
            nacks_left[body] -= 1
            wait = rng.choice([100, 700, 2_000])
            not_before[body] = clock.now + wait / 1000
            consumer.session.settle(delivery.ack_id, Outcome(delay_ms=wait))
        else:
            consumer.session.ack(delivery.ack_id)
    return seen
