"""statistics() snapshots, broker close, and the pinned public surface."""

from __future__ import annotations

import dataclasses

import pytest

import buzon.broker
from buzon.broker import (
    RELEASE,
    AckMode,
    Broker,
    BrokerStats,
    ChannelStats,
    Message,
    QueueStats,
    SessionStats,
)
from tests.broker.helpers import Peer, numbered, open_peer


def test_public_names_are_pinned() -> None:
    assert sorted(buzon.broker.__all__) == [
        "ACCEPT",
        "AckMode",
        "Address",
        "Binding",
        "Broker",
        "BrokerConfig",
        "BrokerStats",
        "Channel",
        "ChannelStats",
        "DeliverySink",
        "Disposition",
        "Headers",
        "Lease",
        "Message",
        "NO_OPTIONS",
        "Outcome",
        "PublishOptions",
        "Queue",
        "QueueStats",
        "REJECT",
        "RELEASE",
        "Session",
        "SessionStats",
        "SlowConsumerPolicy",
        "address",
        "parse_address",
        "parse_destination",
    ]


def test_statistics_snapshots_are_frozen(broker: Broker, producer: Peer) -> None:
    open_peer(broker).subscribe("/queue/q")
    producer.publish("/queue/q", b"x")
    snapshot = broker.statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.queued_bytes = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.queues[0].depth = 1  # type: ignore[misc]


def test_message_ids_are_unique_and_seq_is_publish_order(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe("/queue/q").subscribe("/topic/t", subscription_id="t")
    ids = [producer.session.publish(d, (), b"") for d in ("/queue/q", "/topic/t", "/queue/q")]
    messages: list[Message] = [d.message for d in consumer.deliveries]
    assert [m.id for m in messages] == ids
    assert len(set(ids)) == 3
    assert [m.seq for m in messages] == [1, 2, 3]
    assert [m.destination for m in messages] == ["/queue/q", "/topic/t", "/queue/q"]
    assert len({m.id for m in messages} | {m.id for m in _other_broker_messages()}) == 6


def _other_broker_messages() -> list[Message]:
    broker = Broker()
    consumer = open_peer(broker).subscribe("/queue/q")
    open_peer(broker).publish("/queue/q", b"", b"", b"")
    return [d.message for d in consumer.deliveries]


def test_statistics_snapshot(broker: Broker, producer: Peer) -> None:
    worker = open_peer(broker, "worker").subscribe("/queue/jobs", AckMode.CLIENT, prefetch=2)
    listener = open_peer(broker, "listener").subscribe("/topic/news")
    producer.publish("/queue/jobs", *[b"12345"] * 5)
    producer.publish("/topic/news", b"a", b"b")
    producer.publish("/topic/quiet", b"c")
    worker.session.ack(worker.ack_ids()[0])  # settles 1, takes 3
    worker.session.settle(worker.ack_ids()[2], RELEASE)  # returns 2 and 3, redelivered at once

    stats = broker.statistics()
    assert isinstance(stats, BrokerStats)
    assert stats.queues == (
        QueueStats(
            name="jobs",
            depth=2,
            in_flight=2,
            consumers=1,
            published=5,
            delivered=5,
            acked=1,
            redelivered=2,
            bytes=20,
        ),
    )
    assert stats.channels == (
        ChannelStats(name="news", subscribers=1, published=2, delivered=2, dropped=0),
        ChannelStats(name="quiet", subscribers=0, published=1, delivered=0, dropped=0),
    )
    assert stats.sessions == (
        SessionStats(
            id=producer.session.id,
            principal="producer",
            subscriptions=0,
            unacked=0,
            published=8,
            delivered=0,
        ),
        SessionStats(
            id=worker.session.id,
            principal="worker",
            subscriptions=1,
            unacked=2,
            published=0,
            delivered=5,
        ),
        listener.session.statistics(),
    )
    assert stats.queued_bytes == 20
    assert (stats.messages_published, stats.messages_delivered) == (8, 7)
    assert len({s.id for s in stats.sessions}) == 3


def test_broker_close_closes_every_session_without_sink_calls(
    broker: Broker, producer: Peer
) -> None:
    holders = [
        open_peer(broker, f"h{n}").subscribe("/queue/q", AckMode.CLIENT, prefetch=2)
        for n in range(3)
    ]
    producer.publish("/queue/q", *numbered(6))
    before = [len(h.deliveries) for h in holders]
    broker.close()
    assert all(h.session.closed for h in holders)
    assert producer.session.closed
    assert [len(h.deliveries) for h in holders] == before
    assert all(h.sink.close_requests == [] for h in holders)
    stats = broker.statistics()
    assert stats.sessions == ()
    assert (stats.queues[0].depth, stats.queues[0].in_flight) == (6, 0)
