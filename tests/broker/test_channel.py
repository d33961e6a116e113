"""Channels: fan-out, ordering, client acks without redelivery, pending bound and policies."""

from __future__ import annotations

import pytest

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig, SlowConsumerPolicy
from buzon.errors import BrokerError, ErrorCode
from tests.broker.helpers import Delivery, Peer, numbered, open_peer

T = "/topic/news"


def bounded(policy: SlowConsumerPolicy, pending: int = 3, pending_bytes: int = 1 << 20) -> Broker:
    return Broker(
        BrokerConfig(
            channel_max_pending=pending,
            channel_max_pending_bytes=pending_bytes,
            slow_consumer_policy=policy,
        )
    )


def test_fan_out_to_every_subscriber_in_publish_order(broker: Broker, producer: Peer) -> None:
    subscribers = [open_peer(broker, f"s{n}").subscribe(T) for n in range(3)]
    producer.publish(T, *numbered(10))
    for subscriber in subscribers:
        assert subscriber.bodies() == numbered(10)
        assert subscriber.flags() == [False] * 10
        assert all(delivery.ack_id is None for delivery in subscriber.deliveries)
    # one message object shared by every delivery
    assert subscribers[0].deliveries[0].message is subscribers[2].deliveries[0].message


def test_two_subscriptions_of_one_session_each_get_a_copy(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker)
    peer.subscribe(T, subscription_id="a").subscribe(T, subscription_id="b")
    producer.publish(T, b"x")
    assert [d.subscription_id for d in peer.deliveries] == ["a", "b"]


def test_late_subscriber_gets_nothing_older(broker: Broker, producer: Peer) -> None:
    producer.publish(T, *numbered(3))
    late = open_peer(broker).subscribe(T)
    assert late.bodies() == []
    producer.publish(T, b"4")
    assert late.bodies() == [b"4"]
    stats = broker.statistics().channels[0]
    assert (stats.name, stats.published, stats.delivered) == ("news", 4, 1)


def test_unsubscribed_gets_nothing_more(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T)
    producer.publish(T, b"1")
    peer.session.unsubscribe("sub")
    producer.publish(T, b"2")
    assert peer.bodies() == [b"1"]


def test_client_ack_on_a_channel_with_prefetch(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT, prefetch=2)
    producer.publish(T, *numbered(5))
    assert peer.bodies() == numbered(2)
    peer.session.ack(peer.ack_ids()[1])  # cumulative: both
    assert peer.bodies() == numbered(4)
    assert peer.session.statistics().unacked == 2


def test_channel_nack_drops_instead_of_redelivering(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    producer.publish(T, b"1", b"2")
    peer.session.settle(peer.ack_ids()[0], RELEASE)
    assert peer.bodies() == [b"1", b"2"]
    assert peer.flags() == [False, False]
    with pytest.raises(BrokerError) as caught:
        peer.session.ack(peer.ack_ids()[0])
    assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_channel_unacked_are_dropped_on_close(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT)
    other = open_peer(broker, "other")
    producer.publish(T, *numbered(3))
    peer.session.close()
    other.subscribe(T, AckMode.CLIENT)
    assert other.bodies() == []
    assert broker.statistics().queued_bytes == 0


def test_unwritable_subscriber_gets_pending_in_order_later(broker: Broker, producer: Peer) -> None:
    slow = open_peer(broker, "slow").subscribe(T)
    fast = open_peer(broker, "fast").subscribe(T)
    slow.session.set_writable(False)
    producer.publish(T, *numbered(3))
    assert (slow.bodies(), fast.bodies()) == ([], numbered(3))
    slow.session.set_writable(True)
    producer.publish(T, b"4")
    assert slow.bodies() == numbered(4)


def test_pending_messages_stay_ahead_of_new_ones(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    producer.publish(T, *numbered(3))
    peer.session.ack(peer.ack_ids()[0])
    producer.publish(T, b"4")
    for _ in range(2):
        peer.session.ack(peer.ack_ids()[-1])
    assert peer.bodies() == numbered(4)


def test_set_writable_false_inside_deliver_holds_channel_messages(
    broker: Broker, producer: Peer
) -> None:
    peer = open_peer(broker).subscribe(T)
    peer.sink.on_deliver = lambda _: peer.session.set_writable(False)
    producer.publish(T, *numbered(4))
    assert peer.bodies() == [b"1"]
    peer.sink.on_deliver = None
    peer.session.set_writable(True)
    assert peer.bodies() == numbered(4)


def test_drop_oldest_keeps_the_newest_within_the_count_bound() -> None:
    broker = bounded(SlowConsumerPolicy.DROP_OLDEST, pending=3)
    producer = open_peer(broker)
    peer = open_peer(broker).subscribe(T)
    peer.session.set_writable(False)
    producer.publish(T, *numbered(10))
    peer.session.set_writable(True)
    assert peer.bodies() == [b"8", b"9", b"10"]
    assert broker.statistics().channels[0].dropped == 7
    assert peer.sink.close_requests == []


def test_drop_oldest_applies_the_byte_bound() -> None:
    broker = bounded(SlowConsumerPolicy.DROP_OLDEST, pending=100, pending_bytes=10)
    producer = open_peer(broker)
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT, prefetch=1)
    producer.publish(T, b"aaaa", b"bbbb", b"cccc", b"dddd", b"eeee")
    # "aaaa" is in flight; pending holds at most 10 bytes: the newest two
    peer.session.ack(peer.ack_ids()[0])
    peer.session.ack(peer.ack_ids()[1])
    peer.session.ack(peer.ack_ids()[2])
    assert peer.bodies() == [b"aaaa", b"dddd", b"eeee"]
    assert broker.statistics().channels[0].dropped == 2


def test_disconnect_policy_closes_the_slow_session_once() -> None:
    broker = bounded(SlowConsumerPolicy.DISCONNECT, pending=3)
    producer = open_peer(broker)
    slow = open_peer(broker, "slow").subscribe(T)
    fast = open_peer(broker, "fast").subscribe(T)
    slow.session.set_writable(False)
    producer.publish(T, *numbered(6))
    assert len(slow.sink.close_requests) == 1
    code, detail = slow.sink.close_requests[0]
    assert code is ErrorCode.SLOW_CONSUMER
    assert "/topic/news" in detail
    assert slow.session.closed
    assert slow.bodies() == []
    assert fast.bodies() == numbered(6)
    stats = broker.statistics()
    assert stats.channels[0].subscribers == 1
    assert stats.channels[0].dropped == 4
    assert [s.principal for s in stats.sessions] == ["alice", "fast"]


def test_disconnect_when_the_window_stays_full() -> None:
    broker = bounded(SlowConsumerPolicy.DISCONNECT, pending=2)
    producer = open_peer(broker)
    slow = open_peer(broker).subscribe(T, AckMode.CLIENT, prefetch=1)
    producer.publish(T, *numbered(3))
    assert not slow.session.closed
    producer.publish(T, b"4")
    assert slow.session.closed
    assert [code for code, _ in slow.sink.close_requests] == [ErrorCode.SLOW_CONSUMER]


def test_sink_may_close_the_session_from_close_session() -> None:
    # The server's close_session ends the connection, which closes the session re-entrantly.
    broker = bounded(SlowConsumerPolicy.DISCONNECT, pending=1)
    producer = open_peer(broker)
    slow = open_peer(broker, "slow").subscribe(T)
    slow.sink.on_close = lambda code, detail: slow.session.close()
    after = open_peer(broker, "after").subscribe(T)
    slow.session.set_writable(False)
    producer.publish(T, b"1", b"2", b"3")
    assert slow.session.closed
    assert len(slow.sink.close_requests) == 1
    assert after.bodies() == [b"1", b"2", b"3"]


def test_publisher_can_be_the_slow_subscriber() -> None:
    broker = bounded(SlowConsumerPolicy.DISCONNECT, pending=1)
    peer = open_peer(broker).subscribe(T)
    peer.session.set_writable(False)
    peer.publish(T, b"1")
    peer.session.publish(T, (), b"2")  # over the bound: the session ends inside its publish
    assert peer.session.closed


def test_republish_inside_deliver_keeps_order_for_everyone(broker: Broker, producer: Peer) -> None:
    echo = open_peer(broker, "echo").subscribe(T)
    other = open_peer(broker, "other").subscribe(T)

    def answer(delivery: Delivery) -> None:
        if delivery.message.body == b"ping":
            echo.session.publish(T, (), b"pong")

    echo.sink.on_deliver = answer
    producer.publish(T, b"ping", b"next")
    assert echo.bodies() == [b"ping", b"pong", b"next"]
    assert other.bodies() == [b"ping", b"pong", b"next"]


def test_closing_another_subscriber_mid_fan_out(broker: Broker, producer: Peer) -> None:
    first = open_peer(broker, "first").subscribe(T)
    second = open_peer(broker, "second").subscribe(T)
    third = open_peer(broker, "third").subscribe(T)
    first.sink.on_deliver = lambda _: second.session.close()
    producer.publish(T, b"1")
    assert (first.bodies(), second.bodies(), third.bodies()) == ([b"1"], [], [b"1"])


def test_channel_messages_do_not_count_as_queued_bytes(broker: Broker, producer: Peer) -> None:
    peer = open_peer(broker).subscribe(T, AckMode.CLIENT)
    producer.publish(T, b"x" * 100)
    assert broker.statistics().queued_bytes == 0
    assert peer.session.statistics().unacked == 1
