"""Ack deadlines: a delivery not settled in time comes back to the queue, the session
stays open, and late ACKs, NACKs and extensions are no-ops."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from buzon.broker.deadlines import LAPSED_MEMORY
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, QueuePolicy
from tests.broker.helpers import Clock, Peer, open_peer

Q = "/queue/work"


def leased_broker(**policy: object) -> tuple[Broker, Clock]:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    record = new_record(DestinationKind.QUEUE, "work", "id-alice", None, 0.0)
    broker.add_destination(dataclasses.replace(record, policy=QueuePolicy(**policy)))  # type: ignore[arg-type]
    return broker, clock


def advance(broker: Broker, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    broker.timers.fire()


def consumer(
    broker: Broker,
    name: str,
    ack_mode: AckMode = AckMode.CLIENT_INDIVIDUAL,
    prefetch: int = 10,
    ack_timeout_ms: int | None = None,
) -> Peer:
    peer = open_peer(broker, name)
    peer.session.subscribe("sub", Q, ack_mode, prefetch, ack_timeout_ms=ack_timeout_ms)
    return peer


def test_an_unacked_delivery_goes_to_another_consumer_and_the_session_stays_open() -> None:
    broker, clock = leased_broker(ack_timeout_ms=30_000)
    slow = consumer(broker, "slow")
    fast = consumer(broker, "fast")
    open_peer(broker).publish(Q, b"job")
    assert slow.bodies() == [b"job"]
    assert fast.bodies() == []

    advance(broker, clock, 29.9)
    assert fast.bodies() == []  # not yet
    advance(broker, clock, 0.2)

    assert fast.bodies() == [b"job"]
    assert fast.flags() == [True]
    assert not slow.session.closed
    assert slow.sink.close_requests == []
    stats = broker.statistics().queues[0]
    assert (stats.lease_expired, stats.delivered, stats.redelivered) == (1, 2, 1)
    assert stats.in_flight == 1


def test_the_consumer_that_timed_out_goes_behind_the_others() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    slow = consumer(broker, "slow")
    fast = consumer(broker, "fast")
    open_peer(broker).publish(Q, b"1", b"2")  # 1 to slow, 2 to fast: slow is next in turn
    fast.session.ack(fast.ack_ids()[0])
    advance(broker, clock, 1.0)  # 1 lapses while slow still has credit
    assert fast.bodies() == [b"2", b"1"]
    assert slow.bodies() == [b"1"]


def test_the_only_consumer_gets_it_back_marked_redelivered() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    alone = consumer(broker, "alone")
    open_peer(broker).publish(Q, b"job")
    advance(broker, clock, 1.0)
    assert alone.bodies() == [b"job", b"job"]
    assert alone.flags() == [False, True]


def test_a_late_ack_or_nack_is_ignored_and_counted() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    slow = consumer(broker, "slow")
    fast = consumer(broker, "fast", prefetch=1)
    open_peer(broker).publish(Q, b"job")
    late_id = slow.ack_ids()[0]
    advance(broker, clock, 1.0)
    assert fast.bodies() == [b"job"]

    slow.session.ack(late_id)  # no error: the lease ran out while it worked
    slow.session.settle(late_id, RELEASE)
    assert broker.statistics().queues[0].in_flight == 1  # fast still holds it
    fast.session.ack(fast.ack_ids()[0])
    stats = broker.statistics().queues[0]
    assert (stats.late_settles, stats.acked, stats.depth, stats.in_flight) == (2, 1, 0, 0)


def test_an_ack_id_never_delivered_is_still_unknown() -> None:
    broker, _ = leased_broker(ack_timeout_ms=1_000)
    peer = consumer(broker, "peer")
    with pytest.raises(BrokerError) as unknown:
        peer.session.ack("999")
    assert unknown.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_lapsed_ack_ids_are_remembered_up_to_a_bound() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    peer = consumer(broker, "peer", prefetch=1)
    open_peer(broker).publish(Q, b"job")
    first = peer.ack_ids()[0]
    for _ in range(LAPSED_MEMORY + 1):  # each lapse redelivers it to the same consumer
        advance(broker, clock, 1.0)
    peer.session.ack(peer.ack_ids()[LAPSED_MEMORY])  # a lapsed one, still remembered
    with pytest.raises(BrokerError) as forgotten:
        peer.session.ack(first)
    assert forgotten.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_max_deliveries_ended_by_a_timeout_dead_letters_as_ack_timeout() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000, max_deliveries=2, dead_letter_queue="dead")
    audit = open_peer(broker, "auditor").subscribe("/queue/dead")
    worker = consumer(broker, "worker")
    open_peer(broker).publish(Q, b"poison")
    advance(broker, clock, 1.0)  # second delivery
    assert worker.bodies() == [b"poison", b"poison"]
    advance(broker, clock, 1.0)  # that one lapses too: no third

    assert worker.bodies() == [b"poison", b"poison"]
    headers = dict(audit.deliveries[0].message.headers)
    assert headers["x-dead-letter-reason"] == "ack-timeout"
    assert headers["x-delivery-count"] == "2"


def test_a_last_delivery_that_lapses_is_dead_lettered_and_the_session_stays_open() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000, max_deliveries=1, dead_letter_queue="dead")
    audit = open_peer(broker, "auditor").subscribe("/queue/dead")
    worker = consumer(broker, "worker", prefetch=1)
    open_peer(broker).publish(Q, b"stuck")
    advance(broker, clock, 1.0)  # it lapses: no delivery is left for it

    assert [d.message.body for d in audit.deliveries] == [b"stuck"]
    assert dict(audit.deliveries[0].message.headers)["x-dead-letter-reason"] == "ack-timeout"
    (queue,) = [q for q in broker.statistics().queues if q.name == "work"]
    assert (queue.depth, queue.in_flight) == (0, 0)
    assert not worker.session.closed


def test_max_deliveries_ended_by_a_nack_still_says_max_deliveries() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000, max_deliveries=2, dead_letter_queue="dead")
    audit = open_peer(broker, "auditor").subscribe("/queue/dead")
    worker = consumer(broker, "worker")
    open_peer(broker).publish(Q, b"poison")
    advance(broker, clock, 1.0)  # the first delivery lapses
    worker.session.settle(worker.ack_ids()[1], RELEASE)  # the second is refused
    assert dict(audit.deliveries[0].message.headers)["x-dead-letter-reason"] == "max-deliveries"


def test_extension_postpones_the_deadline() -> None:
    broker, clock = leased_broker(ack_timeout_ms=10_000)
    worker = consumer(broker, "worker")
    open_peer(broker).publish(Q, b"job")
    ack_id = worker.ack_ids()[0]
    advance(broker, clock, 9.0)
    assert worker.session.extend(ack_id, 20_000)
    advance(broker, clock, 19.0)  # 28 s after delivery: past the timeout, not the extension
    assert worker.bodies() == [b"job"]
    assert worker.session.extend(ack_id)  # the subscription's timeout again: until 38 s
    advance(broker, clock, 9.5)
    assert worker.bodies() == [b"job"]
    advance(broker, clock, 1.0)
    assert worker.bodies() == [b"job", b"job"]
    assert not worker.session.extend(ack_id)  # lapsed: a no-op, counted
    assert broker.statistics().queues[0].late_settles == 1


def test_extension_bounds_and_deliveries_without_deadline() -> None:
    broker, _ = leased_broker()
    worker = consumer(broker, "worker")
    open_peer(broker).publish(Q, b"job")
    ack_id = worker.ack_ids()[0]
    assert not worker.session.extend(ack_id)  # no ack timeout: nothing to move
    assert not worker.session.extend("12345")  # unknown: left alone
    with pytest.raises(BrokerError) as bad:
        worker.session.extend(ack_id, 0)
    assert "extend-ms" in bad.value.detail


def test_subscriber_timeout_is_bounded_by_the_policy() -> None:
    broker, clock = leased_broker(ack_timeout_ms=5_000)
    with pytest.raises(BrokerError) as longer:
        consumer(broker, "greedy", ack_timeout_ms=6_000)
    assert longer.value.code is ErrorCode.BAD_HEADER_VALUE
    assert "ack-timeout-ms" in longer.value.detail
    assert "5000" in longer.value.detail
    quick = consumer(broker, "quick", ack_timeout_ms=1_000)
    open_peer(broker).publish(Q, b"job")
    advance(broker, clock, 1.0)
    assert quick.flags() == [False, True]


def test_without_a_policy_a_subscriber_sets_its_own_timeout() -> None:
    broker, clock = leased_broker()
    own = consumer(broker, "own", ack_timeout_ms=2_000)
    plain = consumer(broker, "plain")
    open_peer(broker).publish(Q, b"a", b"b")
    assert own.bodies() == [b"a"]
    assert plain.bodies() == [b"b"]
    advance(broker, clock, 3600.0)  # plain holds b for ever; own's a came back
    assert plain.bodies() == [b"b", b"a"]
    assert own.bodies() == [b"a"]


def test_auto_ack_and_channels_have_no_deadline() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    auto = open_peer(broker, "auto")
    auto.session.subscribe("sub", Q, AckMode.AUTO, ack_timeout_ms=500)
    listener = open_peer(broker, "listener")
    listener.session.subscribe("t", "/topic/news", AckMode.CLIENT_INDIVIDUAL, ack_timeout_ms=500)
    open_peer(broker).publish(Q, b"job")
    open_peer(broker).publish("/topic/news", b"hello")
    advance(broker, clock, 10.0)
    assert auto.bodies() == [b"job"]
    assert listener.bodies() == [b"hello"]
    assert len(broker.timers) == 0


def test_cumulative_ack_never_settles_a_lapsed_delivery() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    batcher = consumer(broker, "batcher", AckMode.CLIENT, prefetch=3)
    open_peer(broker).publish(Q, b"1", b"2", b"3")
    one, _two, three = batcher.ack_ids()
    advance(broker, clock, 0.5)
    batcher.session.extend(one)
    batcher.session.extend(three)
    advance(broker, clock, 0.6)  # two lapsed (one and three are held) and came straight back
    assert batcher.bodies() == [b"1", b"2", b"3", b"2"]
    assert batcher.flags() == [False, False, False, True]
    batcher.session.ack(three)  # cumulative: one and three, not two's redelivery after it
    stats = broker.statistics().queues[0]
    assert (stats.acked, stats.in_flight, stats.late_settles) == (2, 1, 0)
    batcher.session.ack(batcher.ack_ids()[3])
    assert broker.statistics().queues[0].acked == 3


def test_a_late_cumulative_ack_settles_what_came_before_it() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    batcher = consumer(broker, "batcher", AckMode.CLIENT, prefetch=2)
    open_peer(broker).publish(Q, b"1", b"2")
    one, two = batcher.ack_ids()
    advance(broker, clock, 0.5)
    batcher.session.extend(one)
    advance(broker, clock, 0.6)  # two lapsed and came back to the same consumer
    assert batcher.bodies() == [b"1", b"2", b"2"]
    batcher.session.ack(two)  # late: settles one (delivered before), not two's redelivery
    stats = broker.statistics().queues[0]
    assert (stats.acked, stats.in_flight, stats.late_settles) == (1, 1, 1)


def test_unsubscribing_cancels_the_deadlines() -> None:
    broker, clock = leased_broker(ack_timeout_ms=1_000)
    worker = consumer(broker, "worker")
    open_peer(broker).publish(Q, b"job")
    worker.session.unsubscribe("sub")
    assert len(broker.timers) == 0
    other = consumer(broker, "other")
    other.session.ack(other.ack_ids()[0])
    advance(broker, clock, 5.0)
    assert broker.statistics().queues[0].lease_expired == 0
