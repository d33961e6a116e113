"""Peeking at the head of a queue (the dashboard's view of a queue): read-only, checked."""

from __future__ import annotations

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.errors import AccessDenied, ErrorCode
from buzon.store import DestinationKind
from tests.broker.helpers import Peer, numbered, open_peer, send, user

Q = "/queue/work"


def test_peek_shows_the_oldest_waiting_messages_and_takes_nothing(
    broker: Broker, producer: Peer
) -> None:
    producer.publish(Q, *numbered(5))
    shown = broker.peek(user("alice"), "work", 3)
    assert [(message.body, again) for message, again in shown] == [
        (b"1", False),
        (b"2", False),
        (b"3", False),
    ]
    assert broker.statistics().queues[0].depth == 5
    consumer = open_peer(broker, "bob").subscribe(Q)
    assert consumer.bodies() == numbered(5)


def test_peek_flags_returned_messages_and_skips_those_in_flight(
    broker: Broker, producer: Peer
) -> None:
    producer.publish(Q, *numbered(3))
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT, prefetch=2)
    assert [message.body for message, _ in broker.peek(user("alice"), "work", 10)] == [b"3"]
    consumer.session.close()  # its two unacked messages go back, marked redelivered
    shown = broker.peek(user("alice"), "work", 10)
    assert [(message.body, again) for message, again in shown] == [
        (b"1", True),
        (b"2", True),
        (b"3", False),
    ]


def test_peek_skips_what_a_consumer_would_never_get() -> None:
    now = [1_000.0]
    broker = Broker(BrokerConfig(), clock=lambda: now[0])
    producer = open_peer(broker, "alice")
    send(producer.session, Q, (("expires", str(int((now[0] + 1) * 1000))),), b"short-lived")
    producer.publish(Q, b"lasting")
    now[0] += 2
    assert [message.body for message, _ in broker.peek(user("alice"), "work", 10)] == [b"lasting"]


def test_peeking_at_a_protected_queue_needs_its_access_key() -> None:
    broker = Broker()
    record = new_record(DestinationKind.QUEUE, "secret", "id-alice", "$argon2id$hash", 0.0)
    broker.add_destination(record)
    open_peer(broker, "alice").publish("/queue/secret", b"private")
    with pytest.raises(AccessDenied) as denied:
        broker.peek(user("bob"), "secret", 1)
    assert denied.value.code is ErrorCode.ACCESS_KEY_REQUIRED
    assert len(broker.peek(user("bob"), "secret", 1, grants={record.id})) == 1
    assert len(broker.peek(user("alice"), "secret", 1)) == 1
