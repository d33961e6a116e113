"""Settlement outcomes: accept, release (requeue) and reject, one delivery or many."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import (
    ACCEPT,
    REJECT,
    RELEASE,
    AckMode,
    Broker,
    Disposition,
    Outcome,
    PublishOptions,
)
from buzon.broker.destinations import new_record
from buzon.broker.policy import REASON_HEADER
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, QueuePolicy
from tests.broker.helpers import open_peer

A = "/queue/a"
B = "/queue/b"


def test_a_released_message_goes_back_to_its_original_place_marked_redelivered(
    broker: Broker,
) -> None:
    producer = open_peer(broker)
    producer.publish(A, b"1", b"2", b"3", b"4")
    consumer = open_peer(broker, "bob").subscribe(A, AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    assert consumer.bodies() == [b"1", b"2"]
    second = consumer.ack_ids()[1]
    consumer.session.settle(second, RELEASE)
    # back ahead of 3 and 4, where it was published, not at the tail
    assert consumer.bodies() == [b"1", b"2", b"2"]
    assert consumer.flags() == [False, False, True]
    consumer.session.settle(consumer.ack_ids()[0], ACCEPT)
    assert consumer.bodies()[-1] == b"3"


def test_multiple_settles_every_earlier_delivery_of_the_session_across_subscriptions(
    broker: Broker,
) -> None:
    producer = open_peer(broker)
    consumer = open_peer(broker, "bob")
    consumer.subscribe(A, AckMode.CLIENT_INDIVIDUAL, prefetch=10, subscription_id="sa")
    consumer.subscribe(B, AckMode.CLIENT_INDIVIDUAL, prefetch=10, subscription_id="sb")
    for body in (b"a1", b"b1", b"a2", b"b2", b"a3"):
        producer.publish(A if body.startswith(b"a") else B, body)
    ack_ids = consumer.ack_ids()
    consumer.session.settle(ack_ids[3], ACCEPT, multiple=True)  # a1, b1, a2, b2
    assert consumer.session.statistics().unacked == 1
    stats = {queue.name: queue for queue in broker.statistics().queues}
    assert (stats["a"].in_flight, stats["b"].in_flight) == (1, 0)
    with pytest.raises(BrokerError) as settled:
        consumer.session.settle(ack_ids[0], ACCEPT)
    assert settled.value.code is ErrorCode.UNKNOWN_ACK_ID
    consumer.session.settle(ack_ids[4], RELEASE, multiple=True)  # only a3 is left: back
    assert consumer.bodies()[-1] == b"a3"
    assert consumer.flags()[-1] is True


def test_multiple_in_a_transaction_applies_at_commit(broker: Broker) -> None:
    producer = open_peer(broker)
    producer.publish(A, b"1", b"2", b"3")
    consumer = open_peer(broker, "bob").subscribe(A, AckMode.CLIENT_INDIVIDUAL, prefetch=3)
    consumer.session.begin("t")
    consumer.session.settle(consumer.ack_ids()[1], ACCEPT, multiple=True, transaction="t")
    assert consumer.session.statistics().unacked == 3
    consumer.session.commit("t")
    assert consumer.session.statistics().unacked == 1


def test_reject_dead_letters_with_reason_rejected_and_the_error(broker: Broker) -> None:
    record = new_record(DestinationKind.QUEUE, "a", "id-alice", None, 0.0)
    policy = QueuePolicy(dead_letter_queue="dead")
    broker.add_destination(dataclasses.replace(record, policy=policy))
    open_peer(broker).publish(A, b"poison", b"fine")
    consumer = open_peer(broker, "alice").subscribe(A, AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    poison, fine = consumer.ack_ids()
    consumer.session.settle(poison, Outcome(Disposition.REJECT, error="bad input"))
    consumer.session.settle(fine, REJECT)
    audit = open_peer(broker, "alice").subscribe("/queue/dead")
    reasons = [dict(d.message.headers)[REASON_HEADER] for d in audit.deliveries]
    assert audit.bodies() == [b"poison", b"fine"]
    assert reasons == ["rejected", "rejected"]
    assert dict(audit.deliveries[0].message.headers)["x-last-error"] == "bad input"


def test_a_dead_letter_keeps_its_priority_and_whether_it_may_be_stored(broker: Broker) -> None:
    for name, durable in (("kept", True), ("memory", False)):
        record = new_record(DestinationKind.QUEUE, name, "id-alice", None, 0.0)
        policy = QueuePolicy(dead_letter_queue="dead", durable=durable)
        broker.add_destination(dataclasses.replace(record, policy=policy))
    producer = open_peer(broker).session
    producer.publish("/queue/kept", (), b"transient", PublishOptions(persistent=False))
    producer.publish("/queue/kept", (), b"urgent", PublishOptions(priority=7))
    producer.publish("/queue/memory", (), b"from memory")  # its queue could not store it
    for name in ("kept", "memory"):
        consumer = open_peer(broker, "alice").subscribe(f"/queue/{name}", AckMode.CLIENT)
        consumer.session.settle(consumer.ack_ids()[-1], REJECT)
    audit = open_peer(broker, "alice").subscribe("/queue/dead", AckMode.CLIENT)
    moved = {d.message.body: d.message for d in audit.deliveries}
    assert moved[b"transient"].persistent is False
    assert (moved[b"urgent"].persistent, moved[b"urgent"].priority) == (True, 7)
    assert moved[b"from memory"].persistent is True
