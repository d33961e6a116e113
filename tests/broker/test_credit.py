"""Credit that changes after subscribing: a subscription's prefetch, and a limit shared by
every subscription of a session (AMQP's ``basic.qos`` with ``global``)."""

from __future__ import annotations

import pytest

from buzon.broker import ACCEPT, AckMode, Broker
from buzon.errors import BrokerError, ErrorCode
from tests.broker.helpers import Peer, numbered, open_peer

A = "/queue/a"
B = "/queue/b"
INDIVIDUAL = AckMode.CLIENT_INDIVIDUAL


def settle_first(peer: Peer) -> None:
    """Accept the oldest delivery the peer still holds."""
    held = [d.ack_id for d in peer.deliveries if d.ack_id is not None]
    for ack_id in held:
        try:
            peer.session.settle(ack_id, ACCEPT)
        except BrokerError:
            continue  # settled already
        return
    raise AssertionError("nothing held")


def test_raising_the_prefetch_delivers_what_waits_at_once(broker: Broker) -> None:
    open_peer(broker).publish(A, *numbered(5))
    consumer = open_peer(broker, "bob").subscribe(A, INDIVIDUAL, prefetch=1)
    assert consumer.bodies() == [b"1"]
    consumer.session.set_prefetch("sub", 3)
    assert consumer.bodies() == [b"1", b"2", b"3"]


def test_lowering_the_prefetch_lets_what_is_held_drain_first(broker: Broker) -> None:
    open_peer(broker).publish(A, *numbered(5))
    consumer = open_peer(broker, "bob").subscribe(A, INDIVIDUAL, prefetch=3)
    consumer.session.set_prefetch("sub", 1)
    settle_first(consumer)
    settle_first(consumer)
    assert len(consumer.deliveries) == 3  # still holds one: at its new limit
    settle_first(consumer)
    assert consumer.bodies() == [b"1", b"2", b"3", b"4"]


def test_a_prefetch_out_of_range_or_an_unknown_subscription_is_refused(broker: Broker) -> None:
    consumer = open_peer(broker, "bob").subscribe(A, INDIVIDUAL, prefetch=1)
    with pytest.raises(BrokerError) as bad:
        consumer.session.set_prefetch("sub", 0)
    assert bad.value.code is ErrorCode.BAD_HEADER_VALUE
    with pytest.raises(BrokerError) as unknown:
        consumer.session.set_prefetch("nope", 5)
    assert unknown.value.code is ErrorCode.UNKNOWN_SUBSCRIPTION
    with pytest.raises(BrokerError) as shared:
        consumer.session.set_shared_prefetch(10_001)
    assert shared.value.code is ErrorCode.BAD_HEADER_VALUE


def test_a_shared_limit_bounds_what_all_subscriptions_hold_together(broker: Broker) -> None:
    producer = open_peer(broker)
    producer.publish(A, b"a1", b"a2", b"a3")
    producer.publish(B, b"b1", b"b2", b"b3")
    consumer = open_peer(broker, "bob")
    consumer.session.set_shared_prefetch(2)
    consumer.subscribe(A, INDIVIDUAL, prefetch=10, subscription_id="sa")
    consumer.subscribe(B, INDIVIDUAL, prefetch=10, subscription_id="sb")
    assert consumer.bodies() == [b"a1", b"a2"]  # B gets nothing: the pool is spent
    settle_first(consumer)
    assert len(consumer.deliveries) == 3  # one freed credit, one more delivery
    assert consumer.session.statistics().unacked == 2
    consumer.session.set_shared_prefetch(5)  # applies at once
    assert consumer.session.statistics().unacked == 5
    assert sorted(consumer.bodies()) == [b"a1", b"a2", b"a3", b"b1", b"b2", b"b3"]


def test_sharing_applies_to_subscriptions_already_holding_deliveries(broker: Broker) -> None:
    producer = open_peer(broker)
    producer.publish(A, *numbered(4))
    producer.publish(B, *numbered(4))
    consumer = open_peer(broker, "bob")
    consumer.subscribe(A, INDIVIDUAL, prefetch=2, subscription_id="sa")
    consumer.subscribe(B, INDIVIDUAL, prefetch=2, subscription_id="sb")
    assert consumer.session.statistics().unacked == 4
    consumer.session.set_shared_prefetch(3)  # already over it: nothing until it drains
    settle_first(consumer)
    assert consumer.session.statistics().unacked == 3
    settle_first(consumer)
    assert consumer.session.statistics().unacked == 3  # back at the shared limit
    consumer.session.set_shared_prefetch(None)  # each subscription's own window again
    assert consumer.session.statistics().unacked == 4


def test_raising_a_shared_limit_while_a_held_task_waits_delivers_the_next_one(
    broker: Broker,
) -> None:
    """A worker holds a task it must not ack yet (a countdown); it raises its shared limit
    so that the next task comes at once."""
    producer = open_peer(broker)
    worker = open_peer(broker, "bob")
    worker.session.set_shared_prefetch(1)
    worker.subscribe(A, INDIVIDUAL, prefetch=100)
    producer.publish(A, b"countdown", b"next")
    assert worker.bodies() == [b"countdown"]
    worker.session.set_shared_prefetch(2)
    assert worker.bodies() == [b"countdown", b"next"]


def test_a_channel_subscription_draws_from_the_shared_limit_too(broker: Broker) -> None:
    listener = open_peer(broker, "bob")
    listener.session.set_shared_prefetch(1)
    listener.subscribe("/topic/news", INDIVIDUAL, prefetch=10)
    open_peer(broker).publish("/topic/news", b"1", b"2", b"3")
    assert listener.bodies() == [b"1"]  # the rest wait in the subscription
    listener.session.set_shared_prefetch(3)
    assert listener.bodies() == [b"1", b"2", b"3"]


def test_an_unsubscribe_returns_its_share_of_the_credit(broker: Broker) -> None:
    producer = open_peer(broker)
    producer.publish(A, *numbered(2))
    producer.publish(B, *numbered(2))
    consumer = open_peer(broker, "bob")
    consumer.session.set_shared_prefetch(2)
    consumer.subscribe(A, INDIVIDUAL, prefetch=10, subscription_id="sa")
    consumer.subscribe(B, INDIVIDUAL, prefetch=10, subscription_id="sb")
    assert consumer.session.statistics().unacked == 2
    consumer.session.unsubscribe("sa")  # its two go back to A; B may take the credit
    assert [d.subscription_id for d in consumer.deliveries[2:]] == ["sb", "sb"]
