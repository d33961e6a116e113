"""Transactions: staged sends, acks and nacks; commit, abort, close, limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from buzon.broker import RELEASE, AckMode, Broker, BrokerConfig
from buzon.errors import BrokerError, ErrorCode
from tests.broker.helpers import Peer, numbered, open_peer, send

Q = "/queue/tx"


def test_commit_applies_staged_sends_in_order(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q)
    producer.session.begin("t1")
    ids = [
        send(producer.session, Q, (("n", str(n)),), b"%d" % n, transaction="t1") for n in (1, 2, 3)
    ]
    producer.publish("/topic/side", b"4", transaction="t1")
    assert ids == ["", "", ""]
    assert consumer.bodies() == []
    producer.publish(Q, b"outside")
    producer.session.commit("t1")
    assert consumer.bodies() == [b"outside", b"1", b"2", b"3"]
    assert consumer.deliveries[1].message.headers == (("n", "1"),)
    assert producer.session.statistics().published == 5


def test_abort_leaves_no_trace(broker: Broker, producer: Peer) -> None:
    producer.session.begin("t1")
    producer.publish("/queue/never", b"1", transaction="t1")
    producer.session.abort("t1")
    stats = broker.statistics()
    assert stats.queues == ()
    assert stats.messages_published == 0
    with pytest.raises(BrokerError) as caught:
        producer.session.commit("t1")
    assert caught.value.code is ErrorCode.UNKNOWN_TRANSACTION


def test_close_drops_open_transactions(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, b"1")
    consumer.session.begin("t1")
    consumer.session.ack(consumer.ack_ids()[0], transaction="t1")
    producer.session.begin("t2")
    producer.publish(Q, b"2", transaction="t2")
    producer.session.close()
    consumer.session.close()
    stats = broker.statistics().queues[0]
    assert (stats.published, stats.acked, stats.depth) == (1, 0, 1)


def test_staged_ack_applies_on_commit(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    producer.publish(Q, *numbered(2))
    consumer.session.begin("t1")
    consumer.session.ack(consumer.ack_ids()[0], transaction="t1")
    assert consumer.session.statistics().unacked == 2
    consumer.session.commit("t1")
    assert consumer.session.statistics().unacked == 1
    assert broker.statistics().queues[0].acked == 1


def test_staged_ack_is_validated_when_staged(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    consumer.session.begin("t1")
    with pytest.raises(BrokerError) as caught:
        consumer.session.ack("nope", transaction="t1")
    assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID
    with pytest.raises(BrokerError) as caught:
        consumer.session.settle("nope", RELEASE, transaction="t1")
    assert caught.value.code is ErrorCode.UNKNOWN_ACK_ID


def test_staged_nack_redelivers_on_commit(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    producer.publish(Q, b"1", b"2")
    consumer.session.begin("t1")
    consumer.session.settle(consumer.ack_ids()[0], RELEASE, transaction="t1")
    assert consumer.bodies() == [b"1"]
    consumer.session.commit("t1")
    assert consumer.bodies() == [b"1", b"1"]
    assert consumer.flags() == [False, True]


def test_ack_settled_since_staging_is_skipped_at_commit(broker: Broker, producer: Peer) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, *numbered(3))
    first, _, third = consumer.ack_ids()
    consumer.session.begin("t1")
    consumer.session.ack(first, transaction="t1")
    consumer.session.ack(third, transaction="t1")
    consumer.session.ack(first)  # settled outside the transaction meanwhile
    consumer.session.commit("t1")
    assert broker.statistics().queues[0].acked == 3


def test_staged_publish_checks_the_destination_now(producer: Peer) -> None:
    producer.session.begin("t1")
    with pytest.raises(BrokerError) as caught:
        producer.publish("/nowhere", b"1", transaction="t1")
    assert caught.value.code is ErrorCode.BAD_DESTINATION


def test_transaction_names_are_reusable_after_commit_and_abort(producer: Peer) -> None:
    session = producer.session
    session.begin("t")
    session.commit("t")
    session.begin("t")
    session.abort("t")
    session.begin("t")


def test_begin_of_an_open_transaction_is_refused(producer: Peer) -> None:
    producer.session.begin("t1")
    with pytest.raises(BrokerError) as caught:
        producer.session.begin("t1")
    assert caught.value.code is ErrorCode.DUPLICATE_TRANSACTION


@pytest.mark.parametrize("command", ["publish", "ack", "nack", "commit", "abort"])
def test_unknown_transaction(broker: Broker, producer: Peer, command: str) -> None:
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT)
    producer.publish(Q, b"1")
    session = consumer.session
    ack_id = consumer.ack_ids()[0]
    attempts: dict[str, Callable[[], object]] = {
        "publish": lambda: session.publish(Q, (), b"", transaction="t9"),
        "ack": lambda: session.ack(ack_id, transaction="t9"),
        "nack": lambda: session.settle(ack_id, RELEASE, transaction="t9"),
        "commit": lambda: session.commit("t9"),
        "abort": lambda: session.abort("t9"),
    }
    with pytest.raises(BrokerError) as caught:
        attempts[command]()
    assert caught.value.code is ErrorCode.UNKNOWN_TRANSACTION
    assert consumer.session.statistics().unacked == 1


def test_transactions_are_per_session(broker: Broker, producer: Peer) -> None:
    producer.session.begin("t1")
    other = open_peer(broker)
    with pytest.raises(BrokerError) as caught:
        other.session.commit("t1")
    assert caught.value.code is ErrorCode.UNKNOWN_TRANSACTION


def test_open_transactions_are_bounded() -> None:
    session = open_peer(Broker(BrokerConfig(max_open_transactions=2))).session
    session.begin("a")
    session.begin("b")
    with pytest.raises(BrokerError) as caught:
        session.begin("c")
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    session.commit("a")
    session.begin("c")


def test_staged_operations_are_bounded() -> None:
    broker = Broker(BrokerConfig(max_transaction_operations=2))
    peer = open_peer(broker)
    peer.session.begin("t")
    peer.publish(Q, b"1", b"2", transaction="t")
    with pytest.raises(BrokerError) as caught:
        peer.publish(Q, b"3", transaction="t")
    assert caught.value.code is ErrorCode.LIMIT_EXCEEDED
    peer.session.commit("t")
    assert broker.statistics().queues[0].depth == 2
