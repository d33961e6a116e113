"""Queues: distribution, order, prefetch, ack modes, redelivery, flow control on delivery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from buzon.errors import BrokerError, ErrorCode
from tests.broker.helpers import Delivery, Peer, numbered, open_peer

Q = "/queue/work"


def test_each_message_goes_to_exactly_one_consumer_round_robin(
    broker: Broker, producer: Peer
) -> None:
    consumers = [open_peer(broker, f"c{n}").subscribe(Q) for n in range(3)]
    producer.publish(Q, *numbered(30))
    for index, consumer in enumerate(consumers):
        assert consumer.bodies() == numbered(30)[index::3]
    assert all(delivery.ack_id is None for c in consumers for delivery in c.deliveries)


def test_competing_client_consumers_share_the_work_without_duplicates(
    broker: Broker, producer: Peer
) -> None:
    consumers = [
        open_peer(broker, f"c{n}").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=5)
        for n in range(4)
    ]
    for consumer in consumers:
        consumer.sink.on_deliver = _ack_even(consumer)
    producer.publish(Q, *numbered(40))
    # odd messages stay unacked: each consumer holds at most its window of them
    for consumer in consumers:
        for delivery in consumer.deliveries:
            if int(delivery.message.body) % 2:
                consumer.session.ack(delivery.ack_id or "")
    seen = Counter(body for consumer in consumers for body in consumer.bodies())
    assert seen == Counter(numbered(40))
    assert all(consumer.deliveries for consumer in consumers)
    stats = broker.statistics().queues[0]
    assert (stats.depth, stats.in_flight, stats.acked) == (0, 0, 40)


def test_one_consumer_receives_in_publish_order(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT, prefetch=7)
    bodies = numbered(50)
    producer.publish(Q, *bodies)
    while len(consumer.deliveries) < 50:
        consumer.session.ack(consumer.ack_ids()[-1])
    assert consumer.bodies() == bodies


def test_backlog_waits_for_the_first_consumer(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, *numbered(5))
    assert broker.statistics().queues[0].depth == 5
    consumer = open_peer(broker).subscribe(Q)
    assert consumer.bodies() == numbered(5)
    assert consumer.flags() == [False] * 5
    assert broker.statistics().queues[0].depth == 0


def test_queue_is_created_by_subscribe_and_kept_without_consumers(broker: Broker) -> None:
    consumer = open_peer(broker).subscribe(Q)
    consumer.session.unsubscribe("sub")
    open_peer(broker).publish(Q, b"kept")
    assert [q.name for q in broker.statistics().queues] == ["work"]
    assert open_peer(broker).subscribe(Q).bodies() == [b"kept"]


def test_prefetch_window_bounds_unacked_deliveries(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=3)
    producer.publish(Q, *numbered(10))
    assert consumer.bodies() == numbered(3)
    assert broker.statistics().queues[0].depth == 7
    consumer.session.ack(consumer.ack_ids()[1])
    assert consumer.bodies() == numbered(4)
    assert consumer.session.statistics().unacked == 3


def test_prefetch_is_ignored_in_auto_mode(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.AUTO, prefetch=1)
    producer.publish(Q, *numbered(10))
    assert consumer.bodies() == numbered(10)


def test_default_prefetch_comes_from_the_config() -> None:
    broker = Broker(BrokerConfig(default_prefetch=2))
    producer = open_peer(broker)
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, *numbered(5))
    assert consumer.bodies() == numbered(2)


def test_auto_mode_settles_on_delivery(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q)
    producer.publish(Q, b"x")
    assert consumer.deliveries[0].ack_id is None
    stats = broker.statistics()
    assert (stats.queues[0].acked, stats.queues[0].in_flight, stats.queued_bytes) == (1, 0, 0)


def test_client_ack_is_cumulative(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, *numbered(5))
    ids = consumer.ack_ids()
    consumer.session.ack(ids[2])
    assert consumer.session.statistics().unacked == 2
    for settled in ids[:3]:
        with pytest.raises(BrokerError) as caught:
            consumer.session.ack(settled)
        assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID
    consumer.session.ack(ids[4])
    assert broker.statistics().queues[0].acked == 5


def test_client_individual_ack_settles_only_that_delivery(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    producer.publish(Q, *numbered(5))
    ids = consumer.ack_ids()
    consumer.session.ack(ids[2])
    assert consumer.session.statistics().unacked == 4
    consumer.session.ack(ids[0])
    consumer.session.ack(ids[4])
    assert broker.statistics().queues[0].in_flight == 2


def test_ack_ids_are_unique_within_a_session(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker)
    consumer.subscribe(Q, AckMode.CLIENT, subscription_id="a")
    consumer.subscribe("/queue/other", AckMode.CLIENT, subscription_id="b")
    producer.publish(Q, *numbered(3))
    producer.publish("/queue/other", *numbered(3))
    assert len(set(consumer.ack_ids())) == 6


def test_individual_nack_redelivers_that_message(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=3)
    producer.publish(Q, *numbered(5))
    consumer.session.settle(consumer.ack_ids()[1], RELEASE)
    assert consumer.bodies() == [b"1", b"2", b"3", b"2"]
    assert consumer.flags() == [False, False, False, True]


def test_cumulative_nack_returns_messages_in_original_order(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT, prefetch=3)
    producer.publish(Q, *numbered(5))
    consumer.session.set_writable(False)
    consumer.session.settle(consumer.ack_ids()[2], RELEASE)
    assert broker.statistics().queues[0].depth == 5
    other = open_peer(broker).subscribe(Q)
    assert other.bodies() == numbered(5)
    assert other.flags() == [True, True, True, False, False]
    assert broker.statistics().queues[0].redelivered == 3


def test_close_returns_unacked_merged_with_waiting_in_original_order(
    broker: Broker, producer: Peer
) -> None:
    a = open_peer(broker, "a").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    b = open_peer(broker, "b").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    producer.publish(Q, *numbered(6))
    assert (a.bodies(), b.bodies()) == ([b"1", b"3"], [b"2", b"4"])
    a.session.ack(a.ack_ids()[0])  # settles 1; a takes 5
    assert a.bodies()[-1] == b"5"
    a.session.close()  # 3 and 5 go back around 6, which is waiting
    assert b.bodies() == [b"2", b"4"]  # b has no credit
    b.session.close()
    c = open_peer(broker, "c").subscribe(Q)
    assert c.bodies() == [b"2", b"3", b"4", b"5", b"6"]
    assert c.flags() == [True, True, True, True, False]


def test_unsubscribe_returns_unacked_in_original_order(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT, prefetch=3)
    producer.publish(Q, *numbered(5))
    consumer.session.unsubscribe("sub")
    consumer.clear()
    consumer.subscribe(Q, AckMode.AUTO)
    assert consumer.bodies() == numbered(5)
    assert consumer.flags() == [True, True, True, False, False]


def test_returned_messages_go_to_another_consumer(broker: Broker, producer: Peer) -> None:
    a = open_peer(broker, "a").subscribe(Q, AckMode.CLIENT, prefetch=10)
    producer.publish(Q, *numbered(3))
    b = open_peer(broker, "b").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    a.session.close()
    assert b.bodies() == numbered(3)
    assert b.flags() == [True] * 3


def test_unwritable_session_gets_no_queue_messages(broker: Broker, producer: Peer) -> None:
    a = open_peer(broker, "a").subscribe(Q)
    b = open_peer(broker, "b").subscribe(Q)
    a.session.set_writable(False)
    producer.publish(Q, *numbered(4))
    assert (a.bodies(), b.bodies()) == ([], numbered(4))
    b.session.set_writable(False)
    producer.publish(Q, b"5", b"6")
    assert broker.statistics().queues[0].depth == 2
    a.session.set_writable(True)
    assert a.bodies() == [b"5", b"6"]


def test_set_writable_false_inside_deliver_stops_delivery(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q)
    consumer.sink.on_deliver = lambda _: consumer.session.set_writable(False)
    producer.publish(Q, *numbered(5))
    assert consumer.bodies() == [b"1"]
    consumer.session.set_writable(True)
    assert consumer.bodies() == [b"1", b"2"]
    consumer.sink.on_deliver = None
    consumer.session.set_writable(True)
    assert consumer.bodies() == numbered(5)


def test_acking_inside_deliver_does_not_recurse(broker: Broker, producer: Peer) -> None:
    producer.publish(Q, *numbered(5000))
    consumer = open_peer(broker)
    consumer.sink.on_deliver = lambda d: consumer.session.ack(d.ack_id or "")
    consumer.subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    assert consumer.bodies() == numbered(5000)
    assert broker.statistics().queued_bytes == 0


def test_unsubscribe_inside_deliver_returns_the_message(broker: Broker, producer: Peer) -> None:
    quitter = open_peer(broker, "quitter").subscribe(Q, AckMode.CLIENT)
    quitter.sink.on_deliver = lambda _: quitter.session.unsubscribe("sub")
    other = open_peer(broker, "other").subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, *numbered(3))
    assert quitter.bodies() == [b"1"]
    assert other.bodies() == [b"1", b"2", b"3"]
    assert other.flags() == [True, False, False]


def test_publish_inside_deliver_is_queued_behind(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q)

    def echo(delivery: Delivery) -> None:
        if delivery.message.body == b"1":
            consumer.session.publish(Q, (), b"echo")

    consumer.sink.on_deliver = echo
    producer.publish(Q, b"1", b"2")
    assert consumer.bodies() == [b"1", b"echo", b"2"]


def test_queue_consumer_never_scans_full_consumers(broker: Broker, producer: Peer) -> None:
    # 200 consumers with a full window and one with credit: each publish goes to it.
    full = [
        open_peer(broker, f"f{n}").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
        for n in range(200)
    ]
    producer.publish(Q, *numbered(200))
    assert all(len(peer.deliveries) == 1 for peer in full)
    free = open_peer(broker, "free").subscribe(Q)
    producer.publish(Q, *numbered(100, start=201))
    assert free.bodies() == numbered(100, start=201)


def _ack_even(peer: Peer) -> Callable[[Delivery], None]:
    def ack_even(delivery: Delivery) -> None:
        if int(delivery.message.body) % 2 == 0:
            peer.session.ack(delivery.ack_id or "")

    return ack_even


def test_closing_own_session_inside_deliver_returns_the_message(
    broker: Broker, producer: Peer
) -> None:
    quitter = open_peer(broker, "quitter").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    quitter.sink.on_deliver = lambda _: quitter.session.close()
    other = open_peer(broker, "other").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    producer.publish(Q, b"1", b"2")
    assert quitter.bodies() == [b"1"]
    assert other.bodies() == [b"1", b"2"]
    assert other.flags() == [True, False]
    assert quitter.session.closed


def test_ack_id_for_finds_a_delivery_by_message_and_subscription(
    broker: Broker, producer: Peer
) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, subscription_id="s1")
    producer.publish(Q, b"a", b"b")
    first, second = consumer.deliveries
    session = consumer.session
    assert session.ack_id_for("s1", second.message.id) == second.ack_id
    session.ack(session.ack_id_for("s1", first.message.id))
    with pytest.raises(BrokerError) as settled:
        session.ack_id_for("s1", first.message.id)
    assert settled.value.code is ErrorCode.UNKNOWN_ACK_ID
    with pytest.raises(BrokerError) as unknown:
        session.ack_id_for("nope", second.message.id)
    assert unknown.value.code is ErrorCode.UNKNOWN_SUBSCRIPTION
