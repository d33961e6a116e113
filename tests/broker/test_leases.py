"""Pulling from a queue with leases (the HTTP consumers' path) in the engine."""

from __future__ import annotations

import pytest

from buzon.broker import ACCEPT, RELEASE, AckMode, Broker, Queue
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind
from tests.broker.helpers import Peer, open_peer, user

Q = "/queue/pulled"


def test_pull_takes_oldest_first_and_ack_removes(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, b"1", b"2", b"3")
    alice = user("alice")
    leases = broker.pull(alice, "pulled", 2, 30.0, now=0.0)
    assert [lease.message.body for lease in leases] == [b"1", b"2"]
    assert all(not lease.redelivered and lease.deadline == 30.0 for lease in leases)
    stats = broker.statistics().queues[0]
    assert (stats.depth, stats.in_flight) == (1, 2)
    broker.settle(alice, "pulled", [lease.receipt for lease in leases], ACCEPT)
    stats = broker.statistics().queues[0]
    assert (stats.depth, stats.in_flight, stats.acked) == (1, 0, 2)
    assert len(broker.leases) == 0


def test_nack_and_expiry_return_messages_in_order_marked_redelivered(
    broker: Broker, producer: Peer
) -> None:
    producer.publish(Q, b"1", b"2", b"3")
    alice = user("alice")
    _, second, third = broker.pull(alice, "pulled", 3, 10.0, now=0.0)
    broker.settle(alice, "pulled", [second.receipt], RELEASE)
    assert broker.expire_leases(now=9.9) == 0
    assert broker.expire_leases(now=10.0) == 2
    again = broker.pull(alice, "pulled", 10, 10.0, now=11.0)
    assert [(lease.message.body, lease.redelivered) for lease in again] == [
        (b"1", True),
        (b"2", True),
        (b"3", True),
    ]
    assert third.receipt not in {lease.receipt for lease in again}


def test_expired_or_settled_receipts_are_unknown(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, b"1")
    alice = user("alice")
    (lease,) = broker.pull(alice, "pulled", 1, 5.0, now=0.0)
    broker.expire_leases(now=6.0)
    with pytest.raises(BrokerError) as late:
        broker.settle(alice, "pulled", [lease.receipt], ACCEPT)
    assert late.value.code is ErrorCode.UNKNOWN_RECEIPT


def test_only_the_puller_settles_and_all_or_none(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, b"1", b"2")
    alice, bob = user("alice"), user("bob")
    (mine,) = broker.pull(alice, "pulled", 1, 30.0, now=0.0)
    (theirs,) = broker.pull(bob, "pulled", 1, 30.0, now=0.0)
    with pytest.raises(BrokerError) as foreign:
        broker.settle(alice, "pulled", [mine.receipt, theirs.receipt], ACCEPT)
    assert foreign.value.code is ErrorCode.UNKNOWN_RECEIPT
    # nothing was settled: both leases are still open
    broker.settle(alice, "pulled", [mine.receipt], ACCEPT)
    broker.settle(bob, "pulled", [theirs.receipt], ACCEPT)
    with pytest.raises(BrokerError) as twice:
        broker.settle(alice, "pulled", [mine.receipt], ACCEPT)
    assert twice.value.code is ErrorCode.UNKNOWN_RECEIPT


def test_pullers_and_subscribers_share_a_queue_without_duplicates(
    broker: Broker, producer: Peer
) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    producer.publish(Q, *[str(n).encode() for n in range(6)])
    pulled = broker.pull(user("alice"), "pulled", 10, 30.0, now=0.0)
    bodies = consumer.bodies() + [lease.message.body for lease in pulled]
    assert sorted(bodies) == [str(n).encode() for n in range(6)]


def test_waiters_wake_once_when_a_message_waits(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, b"first")
    broker.pull(user("alice"), "pulled", 1, 30.0, now=0.0)
    queue = broker.destination(DestinationKind.QUEUE, "pulled")
    assert isinstance(queue, Queue)
    woken: list[str] = []
    queue.call_when_ready(lambda: woken.append("a"))
    cancelled = lambda: woken.append("cancelled")  # noqa: E731
    queue.call_when_ready(cancelled)
    queue.cancel_call(cancelled)
    assert woken == []
    producer.publish(Q, b"second")
    producer.publish(Q, b"third")
    assert woken == ["a"]  # one-shot
    queue.call_when_ready(lambda: woken.append("now"))
    assert woken == ["a", "now"]  # something waits already: runs at once


def test_deleting_the_queue_wakes_waiters_and_drops_leased_messages(
    broker: Broker, producer: Peer
) -> None:
    producer.publish(Q, b"leased")
    assert len(broker.pull(user("alice"), "pulled", 1, 30.0, now=0.0)) == 1
    queue = broker.destination(DestinationKind.QUEUE, "pulled")
    assert isinstance(queue, Queue)
    woken: list[bool] = []
    queue.call_when_ready(lambda: woken.append(True))
    broker.delete_destination(DestinationKind.QUEUE, "pulled")
    assert woken == [True]
    assert broker.expire_leases(now=31.0) == 1
    assert broker.statistics().queued_bytes == 0


def test_a_blocked_users_leases_return_at_once(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, b"held", b"free")
    carol = user("carol")
    broker.pull(carol, "pulled", 1, 3600.0, now=0.0)
    broker.close_sessions_of(carol.id, ErrorCode.ACCOUNT_DISABLED, "disabled")
    again = broker.pull(user("alice"), "pulled", 10, 30.0, now=1.0)
    assert [(lease.message.body, lease.redelivered) for lease in again] == [
        (b"held", True),
        (b"free", False),
    ]
