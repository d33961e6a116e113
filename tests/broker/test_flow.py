"""Producer flow control: queued bytes against the high- and low-water marks."""

from __future__ import annotations

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from tests.broker.helpers import open_peer

Q = "/queue/flow"


def marks(high: int = 1000, low: int = 500) -> Broker:
    return Broker(BrokerConfig(queue_high_water_bytes=high, queue_low_water_bytes=low))


def test_over_high_water_once_queues_hold_more_than_the_mark() -> None:
    broker = marks()
    producer = open_peer(broker)
    producer.publish(Q, *[b"x" * 100] * 10)
    assert broker.statistics().queued_bytes == 1000
    assert not broker.over_high_water
    producer.publish(Q, b"x")
    assert broker.over_high_water


def test_callback_runs_once_when_the_total_falls_under_low_water() -> None:
    broker = marks()
    producer = open_peer(broker)
    producer.publish(Q, *[b"x" * 100] * 11)
    seen: list[int] = []
    broker.call_when_below_low_water(lambda: seen.append(broker.statistics().queued_bytes))
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=100)
    assert seen == []  # delivered but unacked messages still count
    assert broker.over_high_water
    for ack_id in consumer.ack_ids():
        consumer.session.ack(ack_id)
    assert seen == [400]
    assert not broker.over_high_water


def test_nack_keeps_the_bytes_counted() -> None:
    broker = marks()
    producer = open_peer(broker)
    producer.publish(Q, b"x" * 600)
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    consumer.session.set_writable(False)
    consumer.session.settle(consumer.ack_ids()[0], RELEASE)
    assert broker.statistics().queued_bytes == 600
    consumer.session.close()
    assert broker.statistics().queues[0].bytes == 600


def test_auto_delivery_releases_bytes_and_fires_callbacks() -> None:
    broker = marks()
    producer = open_peer(broker)
    producer.publish(Q, *[b"x" * 300] * 4)
    calls: list[str] = []
    broker.call_when_below_low_water(lambda: calls.append("first"))
    broker.call_when_below_low_water(lambda: calls.append("second"))
    open_peer(broker).subscribe(Q)
    assert calls == ["first", "second"]
    assert broker.statistics().queued_bytes == 0


def test_callback_registered_below_low_water_runs_at_once() -> None:
    broker = marks()
    calls: list[str] = []
    broker.call_when_below_low_water(lambda: calls.append("now"))
    assert calls == ["now"]


def test_callbacks_are_one_shot() -> None:
    broker = marks()
    producer = open_peer(broker)
    calls: list[str] = []
    producer.publish(Q, b"x" * 1200)
    broker.call_when_below_low_water(lambda: calls.append("once"))
    consumer = open_peer(broker).subscribe(Q)
    producer.publish(Q, b"x" * 1200)
    assert broker.over_high_water is False
    assert calls == ["once"]
    assert len(consumer.deliveries) == 2
