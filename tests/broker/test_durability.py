"""Persistent messages in the engine: nothing is delivered before it is durable."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, QueuePolicy, StoredMessage
from tests.broker.helpers import Clock, HeldLog, found, open_peer, send

Q = "/queue/durable"


@pytest.fixture
def log() -> HeldLog:
    return HeldLog()


@pytest.fixture
def broker(log: HeldLog) -> Broker:
    return Broker(BrokerConfig(), log=log)


def test_a_persistent_message_arrives_only_once_durable(broker: Broker, log: HeldLog) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"safe")
    assert consumer.bodies() == []
    assert not broker.journal.last.done
    log.resolve()
    assert consumer.bodies() == [b"safe"]
    assert broker.journal.last.done
    assert log.kept == {}  # delivered in ack mode auto: settled, so removed again


def test_one_publishers_messages_keep_their_order_behind_a_pending_write(
    broker: Broker, log: HeldLog
) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"1")
    send(producer.session, Q, (("persistent", "false"),), b"2 (transient)")
    producer.publish("/topic/news", b"3 (channel)")
    assert consumer.bodies() == []
    log.resolve()
    assert consumer.bodies() == [b"1", b"2 (transient)"]


def test_a_failed_write_is_never_delivered_and_ends_the_publisher(
    broker: Broker, log: HeldLog
) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q)
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"lost")
    log.resolve(ErrorCode.STORAGE_UNAVAILABLE)
    assert consumer.bodies() == []
    assert [code for code, _ in producer.sink.close_requests] == [ErrorCode.STORAGE_UNAVAILABLE]
    assert producer.session.closed
    queue = broker.statistics().queues[0]
    assert (queue.depth, queue.published) == (0, 0)


def test_acks_remove_persistent_messages_from_the_log(broker: Broker, log: HeldLog) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    auto = open_peer(broker, "dave").subscribe("/queue/auto")
    assert auto.bodies() == []
    producer = open_peer(broker, "alice")
    producer.publish(Q, b"a", b"b")
    producer.publish("/queue/auto", b"c")
    log.resolve()
    assert auto.bodies() == [b"c"]
    assert len(log.kept) == 2  # c was removed at once: auto mode settles on delivery
    consumer.session.ack(consumer.ack_ids()[0])
    log.resolve()
    assert [m.body for m in log.kept.values()] == [b"b"]


def test_recovery_restores_order_and_marks(log: HeldLog) -> None:
    broker = Broker(BrokerConfig(), log=log)
    record = new_record(DestinationKind.QUEUE, "durable", "id-alice", None, 0.0)
    broker.add_destination(record)

    def logged(seq: int, redelivered: bool, queue_id: str = record.id) -> StoredMessage:
        return StoredMessage(queue_id, seq, f"m-{seq}", Q, (), str(seq).encode(), None, redelivered)

    messages = [logged(3, False), logged(5, True), logged(9, False, "deleted-queue")]
    assert broker.restore(found(messages), cleanly=True) == 2
    consumer = open_peer(broker).subscribe(Q)
    assert consumer.bodies() == [b"3", b"5"]
    assert consumer.flags() == [False, True]
    assert log.pending[0][2] == [("deleted-queue", 9)]  # orphans are removed from the log
    # numbering continues after the highest logged message
    open_peer(broker).publish(Q, b"new")
    log.resolve()
    assert consumer.deliveries[-1].message.seq == 10


def test_after_a_crash_every_recovered_message_counts_as_redelivered(log: HeldLog) -> None:
    broker = Broker(BrokerConfig(), log=log)
    record = new_record(DestinationKind.QUEUE, "durable", "id-alice", None, 0.0)
    broker.add_destination(record)
    message = StoredMessage(record.id, 1, "m-1", Q, (), b"x", None, False)
    broker.restore(found([message]), cleanly=False)
    assert open_peer(broker).subscribe(Q).flags() == [True]


def test_a_clean_close_logs_which_waiting_messages_were_delivered(
    broker: Broker, log: HeldLog
) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    open_peer(broker, "alice").publish(Q, b"delivered", b"not yet")
    log.resolve()
    consumer.session.unsubscribe("sub")  # both come back; only the first was delivered
    broker.close()
    assert [seq for _, seq in log.redelivered] == [1]


def test_non_durable_queues_write_nothing(broker: Broker, log: HeldLog) -> None:
    record = new_record(DestinationKind.QUEUE, "fast", "id-alice", None, 0.0)
    broker.add_destination(dataclasses.replace(record, policy=QueuePolicy(durable=False)))
    consumer = open_peer(broker, "carol").subscribe("/queue/fast")
    open_peer(broker, "alice").publish("/queue/fast", b"quick")
    assert consumer.bodies() == [b"quick"]
    assert log.pending == []


def test_under_the_disk_floor_only_what_would_be_written_is_refused(
    broker: Broker, log: HeldLog
) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q)
    news = open_peer(broker, "dave").subscribe("/topic/news")
    producer = open_peer(broker, "alice")
    broker.storage_full = True
    with pytest.raises(BrokerError) as refused:
        producer.publish(Q, b"needs disk")
    assert refused.value.code is ErrorCode.STORAGE_FULL
    send(producer.session, Q, (("persistent", "false"),), b"memory only")
    producer.publish("/topic/news", b"no durable subscription: nothing to write")
    log.resolve()
    assert consumer.bodies() == [b"memory only"]
    assert news.bodies() == [b"no durable subscription: nothing to write"]
    assert log.kept == {}
    broker.storage_full = False  # space came back
    producer.publish(Q, b"stored")
    log.resolve()
    assert consumer.bodies() == [b"memory only", b"stored"]


def test_under_the_disk_floor_a_dead_letter_still_moves(log: HeldLog) -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock, log=log)
    record = new_record(DestinationKind.QUEUE, "durable", "id-alice", None, 0.0)
    policy = QueuePolicy(message_ttl_ms=1_000, dead_letter_queue="dead")
    broker.add_destination(dataclasses.replace(record, policy=policy))
    open_peer(broker, "alice").publish(Q, b"short-lived")
    log.resolve()
    broker.storage_full = True  # publishers are refused from now on, moves are not
    clock.now += 5
    assert broker.expire_messages(clock.now) == 1
    log.resolve()
    dead = open_peer(broker, "alice").subscribe("/queue/dead")
    assert dead.bodies() == [b"short-lived"]
    assert [m.destination for m in log.kept.values()] == ["/queue/dead"]
