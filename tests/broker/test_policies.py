"""Queue policies: max-length, TTL, max-deliveries, dead-lettering, purge."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, Overflow, QueuePolicy
from tests.broker.helpers import Clock, Peer, open_peer, send

Q = "/queue/strict"


def strict_queue(broker: Broker, **policy: object) -> None:
    record = new_record(DestinationKind.QUEUE, "strict", "id-alice", None, 0.0)
    broker.add_destination(dataclasses.replace(record, policy=QueuePolicy(**policy)))  # type: ignore[arg-type]


def dead_letters(broker: Broker) -> Peer:
    return open_peer(broker, "auditor").subscribe("/queue/dead")


def test_reject_publish_refuses_past_max_length_and_loses_nothing() -> None:
    broker = Broker()
    strict_queue(broker, max_length=2)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"1", b"2")
    with pytest.raises(BrokerError) as full:
        producer.publish(Q, b"3")
    assert full.value.code is ErrorCode.QUEUE_FULL
    assert Q in full.value.detail
    consumer = open_peer(broker).subscribe(Q)
    assert consumer.bodies() == [b"1", b"2"]
    producer.publish(Q, b"3")  # room again
    assert consumer.bodies() == [b"1", b"2", b"3"]


def test_max_length_in_bytes() -> None:
    broker = Broker()
    strict_queue(broker, max_length_bytes=10)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"12345", b"67890")
    with pytest.raises(BrokerError) as full:
        producer.publish(Q, b"x")
    assert full.value.code is ErrorCode.QUEUE_FULL


def test_drop_head_dead_letters_the_oldest_with_the_reason() -> None:
    broker = Broker()
    strict_queue(broker, max_length=2, overflow=Overflow.DROP_HEAD, dead_letter_queue="dead")
    audit = dead_letters(broker)
    producer = open_peer(broker, "alice")
    send(producer.session, Q, (("trace", "t1"),), b"oldest")
    producer.publish(Q, b"middle", b"newest")
    consumer = open_peer(broker).subscribe(Q)
    assert consumer.bodies() == [b"middle", b"newest"]
    (moved,) = audit.deliveries
    assert moved.message.body == b"oldest"
    headers = dict(reversed(moved.message.headers))
    assert headers["x-dead-letter-reason"] == "max-length"
    assert headers["x-original-destination"] == Q
    assert headers["x-original-message-id"].endswith("-1")
    assert headers["trace"] == "t1"  # the publisher's headers are kept
    assert broker.statistics().queues[1].retired == 1  # sorted by name: dead, strict


def test_expired_messages_are_never_delivered_and_are_dead_lettered() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    strict_queue(broker, message_ttl_ms=5_000, dead_letter_queue="dead")
    audit = dead_letters(broker)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"short-lived")
    soon = int((clock.now + 1) * 1000)
    send(producer.session, Q, (("expires", str(soon)),), b"even shorter")
    send(producer.session, Q, (("expires", "0"),), b"0 means never: the queue's TTL applies")
    clock.now += 2
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    assert consumer.bodies() == [b"short-lived", b"0 means never: the queue's TTL applies"]
    consumer.session.settle(consumer.ack_ids()[0], RELEASE)
    consumer.session.unsubscribe("sub")
    clock.now += 10
    assert broker.expire_messages(clock.now) == 2  # the sweep frees them without a consumer
    reasons = [dict(d.message.headers)["x-dead-letter-reason"] for d in audit.deliveries]
    assert reasons == ["expired", "expired", "expired"]
    # the expires header does not follow it into the dead-letter queue (it would expire
    # there too); its value is kept for the record
    first = dict(audit.deliveries[0].message.headers)
    assert (first.get("expires"), first["x-original-expires"]) == (None, str(soon))
    assert broker.statistics().queues[1].depth == 0


def test_a_bad_expires_header_is_refused() -> None:
    broker = Broker()
    with pytest.raises(BrokerError) as bad:
        send(open_peer(broker).session, Q, (("expires", "tomorrow"),), b"x")
    assert bad.value.code is ErrorCode.BAD_HEADER_VALUE


def test_max_deliveries_dead_letters_a_poison_message() -> None:
    broker = Broker()
    strict_queue(broker, max_deliveries=2, dead_letter_queue="dead")
    audit = dead_letters(broker)
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    open_peer(broker, "alice").publish(Q, b"poison", b"fine")
    first = consumer.deliveries[0]
    consumer.session.settle(first.ack_id or "", RELEASE)
    second = [d for d in consumer.deliveries if d.message.body == b"poison"][-1]
    assert second.redelivered
    consumer.session.settle(second.ack_id or "", RELEASE)
    assert [d.message.body for d in consumer.deliveries].count(b"poison") == 2
    (moved,) = audit.deliveries
    assert dict(moved.message.headers)["x-dead-letter-reason"] == "max-deliveries"


def test_without_a_dead_letter_queue_retired_messages_are_dropped() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    strict_queue(broker, message_ttl_ms=1_000)
    open_peer(broker, "alice").publish(Q, b"gone")
    clock.now += 5
    assert broker.expire_messages(clock.now) == 1
    assert [q.name for q in broker.statistics().queues] == ["strict"]


def test_purge_drops_waiting_messages_not_those_in_flight() -> None:
    broker = Broker()
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    open_peer(broker, "alice").publish(Q, b"in flight", b"waiting 1", b"waiting 2")
    assert broker.purge("strict") == 2
    queue = broker.statistics().queues[0]
    assert (queue.depth, queue.in_flight, queue.bytes) == (0, 1, len(b"in flight"))
    consumer.session.settle(consumer.ack_ids()[0], RELEASE)
    assert consumer.bodies() == [b"in flight", b"in flight"]
    with pytest.raises(BrokerError) as missing:
        broker.purge("nope")
    assert missing.value.code is ErrorCode.DESTINATION_NOT_FOUND
