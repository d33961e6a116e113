"""Idempotent publish in the engine: a key seen by a queue within its window enqueues nothing."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig, PublishOptions
from buzon.broker.destinations import new_record
from buzon.errors import BrokerError, ErrorCode, StoreError
from buzon.store import DestinationKind, Overflow, QueuePolicy
from tests.broker.helpers import Clock, HeldLog, open_peer, send, user

Q = "/queue/orders"


def keyed(key: str) -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", key),)


def make_queue(broker: Broker, name: str = "orders", **policy: object) -> None:
    record = new_record(DestinationKind.QUEUE, name, "id-alice", None, 0.0)
    broker.add_destination(dataclasses.replace(record, policy=QueuePolicy(**policy)))  # type: ignore[arg-type]


def queue_stats(broker: Broker, name: str = "orders") -> tuple[int, int, int]:
    (stats,) = [q for q in broker.statistics().queues if q.name == name]
    return stats.depth, stats.published, stats.deduplicated


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock: Clock) -> Broker:
    broker = Broker(BrokerConfig(), clock=clock)
    make_queue(broker, dedup_window_ms=60_000)
    return broker


def test_a_repeated_key_within_the_window_enqueues_one_message(broker: Broker) -> None:
    producer = open_peer(broker, "alice")
    first = send(producer.session, Q, keyed("order-7"), b"pay 10")
    again = send(open_peer(broker, "bob").session, Q, keyed("order-7"), b"pay 10")
    assert again == first
    assert queue_stats(broker) == (1, 1, 1)
    consumer = open_peer(broker, "carol").subscribe(Q)
    assert consumer.bodies() == [b"pay 10"]
    assert consumer.deliveries[0].message.headers == keyed("order-7")  # consumers see it


def test_the_key_is_remembered_after_the_message_is_consumed(broker: Broker) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q)
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("k"), b"once")
    send(producer.session, Q, keyed("k"), b"once")
    assert consumer.bodies() == [b"once"]


def test_keys_are_per_queue(broker: Broker) -> None:
    make_queue(broker, "refunds")
    producer = open_peer(broker, "alice")
    first = send(producer.session, Q, keyed("same"), b"a")
    other = send(producer.session, "/queue/refunds", keyed("same"), b"b")
    assert other != first
    assert queue_stats(broker)[0] == queue_stats(broker, "refunds")[0] == 1


def test_different_keys_and_no_key_are_all_enqueued(broker: Broker) -> None:
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("a"), b"1")
    send(producer.session, Q, keyed("b"), b"2")
    producer.session.publish(Q, (), b"3")
    producer.session.publish(Q, (), b"3")
    assert queue_stats(broker) == (4, 4, 0)


def test_after_the_window_the_key_publishes_again(broker: Broker, clock: Clock) -> None:
    producer = open_peer(broker, "alice")
    first = send(producer.session, Q, keyed("k"), b"1")
    clock.now += 59.9
    assert send(producer.session, Q, keyed("k"), b"1") == first
    clock.now += 0.1
    assert send(producer.session, Q, keyed("k"), b"2") != first
    assert queue_stats(broker) == (2, 2, 1)


def test_a_zero_window_ignores_keys(broker: Broker) -> None:
    make_queue(broker, "plain", dedup_window_ms=0)
    producer = open_peer(broker, "alice")
    send(producer.session, "/queue/plain", keyed("k"), b"1")
    send(producer.session, "/queue/plain", keyed("k"), b"1")
    assert queue_stats(broker, "plain") == (2, 2, 0)
    assert broker.statistics().idempotency_keys == 0


def test_the_default_window_is_ten_minutes(clock: Clock) -> None:
    broker = Broker(BrokerConfig(), clock=clock)
    producer = open_peer(broker, "alice")
    first = send(producer.session, "/queue/auto", keyed("k"), b"1")  # created on first use
    clock.now += 599.0
    assert send(producer.session, "/queue/auto", keyed("k"), b"1") == first
    clock.now += 1.0
    assert send(producer.session, "/queue/auto", keyed("k"), b"1") != first


@pytest.mark.parametrize("key", ["", "x" * 257, "é" * 129])
def test_an_empty_or_oversized_key_is_refused_naming_the_header(broker: Broker, key: str) -> None:
    producer = open_peer(broker, "alice")
    with pytest.raises(BrokerError) as refused:
        send(producer.session, Q, keyed(key), b"never")
    assert refused.value.code is ErrorCode.BAD_HEADER_VALUE
    assert "idempotency-key" in refused.value.detail
    assert queue_stats(broker) == (0, 0, 0)
    assert not producer.session.closed  # the session goes on serving


def test_a_key_of_exactly_256_bytes_is_accepted(broker: Broker) -> None:
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("é" * 128), b"1")
    send(producer.session, Q, keyed("é" * 128), b"1")
    assert queue_stats(broker) == (1, 1, 1)


def test_channels_ignore_keys_but_still_refuse_oversized_ones(broker: Broker) -> None:
    listener = open_peer(broker, "carol").subscribe("/topic/news")
    producer = open_peer(broker, "alice")
    send(producer.session, "/topic/news", keyed("k"), b"1")
    send(producer.session, "/topic/news", keyed("k"), b"2")
    assert listener.bodies() == [b"1", b"2"]
    with pytest.raises(BrokerError):
        send(producer.session, "/topic/news", keyed("x" * 257), b"3")
    assert listener.bodies() == [b"1", b"2"]


def test_a_committed_transaction_drops_sends_whose_key_was_seen(broker: Broker) -> None:
    consumer = open_peer(broker, "carol").subscribe(Q, AckMode.CLIENT_INDIVIDUAL)
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("seen"), b"first")
    producer.session.begin("tx")
    producer.session.publish(Q, (), b"a", transaction="tx")
    send(producer.session, Q, keyed("seen"), b"again", transaction="tx")
    send(producer.session, Q, keyed("new"), b"b", transaction="tx")
    send(producer.session, Q, keyed("new"), b"b again", transaction="tx")
    producer.session.commit("tx")
    assert consumer.bodies() == [b"first", b"a", b"b"]
    assert queue_stats(broker)[2] == 1  # counted: the repeat of a key seen before the commit


def test_a_commit_that_fails_leaves_its_keys_free_for_the_retry(clock: Clock) -> None:
    broker = Broker(BrokerConfig(), clock=clock)
    make_queue(broker, dedup_window_ms=60_000)
    make_queue(broker, "small", max_length=1)
    producer = open_peer(broker, "alice")
    producer.session.publish("/queue/small", (), b"fills it")
    producer.session.begin("tx")
    send(producer.session, Q, keyed("order-8"), b"pay 8", transaction="tx")
    producer.session.publish("/queue/small", (), b"no room", transaction="tx")
    with pytest.raises(BrokerError) as full:
        producer.session.commit("tx")
    assert full.value.code is ErrorCode.QUEUE_FULL
    producer.session.abort("tx")
    send(producer.session, Q, keyed("order-8"), b"pay 8")  # the retry, on its own
    assert queue_stats(broker) == (1, 1, 0)  # published, not taken for a duplicate


def test_the_broker_bounds_the_keys_it_holds(clock: Clock) -> None:
    broker = Broker(BrokerConfig(dedup_max_keys=3), clock=clock)
    producer = open_peer(broker, "alice")
    for n in range(4):
        send(producer.session, Q, keyed(f"k{n}"), b"x")
    stats = broker.statistics()
    assert (stats.idempotency_keys, stats.idempotency_keys_evicted) == (3, 1)
    send(producer.session, Q, keyed("k3"), b"x")  # the newest are kept
    assert queue_stats(broker)[0] == 4
    send(producer.session, Q, keyed("k0"), b"x")  # the oldest was forgotten early
    assert queue_stats(broker)[0] == 5


def test_a_deleted_queues_keys_leave_room_for_the_others(clock: Clock) -> None:
    broker = Broker(BrokerConfig(dedup_max_keys=3), clock=clock)
    make_queue(broker, "doomed", dedup_window_ms=60_000)
    producer = open_peer(broker, "alice")
    for n in range(3):
        send(producer.session, "/queue/doomed", keyed(f"d{n}"), b"x")
    broker.delete_destination(DestinationKind.QUEUE, "doomed")
    assert broker.statistics().idempotency_keys == 0
    for n in range(3):
        send(producer.session, Q, keyed(f"k{n}"), b"x")
    send(producer.session, Q, keyed("k0"), b"x")  # held: nothing was evicted for it
    assert queue_stats(broker) == (3, 3, 1)
    assert broker.statistics().idempotency_keys_evicted == 0


def test_expired_keys_are_pruned(broker: Broker, clock: Clock) -> None:
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("a"), b"1")
    clock.now += 30
    send(producer.session, Q, keyed("b"), b"2")
    clock.now += 30
    assert broker.prune_idempotency_keys() == 1
    assert broker.statistics().idempotency_keys == 1
    clock.now += 30
    assert broker.prune_idempotency_keys() == 1
    assert broker.statistics().idempotency_keys == 0


def test_http_publishes_say_which_were_duplicates(broker: Broker) -> None:
    alice = user("alice")
    options = PublishOptions(idempotency_key="k")
    first = broker.publish(alice, Q, keyed("k"), b"1", options=options)
    again = broker.publish(alice, Q, keyed("k"), b"1", options=options)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.message_id == first.message_id
    assert queue_stats(broker) == (1, 1, 1)


def test_stomp_and_http_share_the_keys(broker: Broker) -> None:
    via_stomp = send(open_peer(broker, "alice").session, Q, keyed("k"), b"1")
    via_http = broker.publish(
        user("alice"), Q, keyed("k"), b"1", options=PublishOptions(idempotency_key="k")
    )
    assert (via_http.message_id, via_http.duplicate) == (via_stomp, True)


# -- with a message log: keys are written with their messages ----------------------------


@pytest.fixture
def log() -> HeldLog:
    return HeldLog()


@pytest.fixture
def logged(log: HeldLog, clock: Clock) -> Broker:
    broker = Broker(BrokerConfig(), clock=clock, log=log)
    make_queue(broker, dedup_window_ms=60_000)
    return broker


def test_the_key_is_written_in_the_same_write_as_its_message(
    logged: Broker, log: HeldLog, clock: Clock
) -> None:
    message_id = send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    ((ticket, appends, _),) = log.pending
    assert [m.message_id for m in appends] == [message_id]
    assert [(k.key, k.message_id, k.expires_at) for k in log.keys[ticket]] == [
        ("k", message_id, clock.now + 60)
    ]
    log.resolve()
    assert list(log.kept_keys) == [(appends[0].queue_id, "k")]


def test_a_duplicate_of_a_pending_message_is_confirmed_once_that_is_durable(
    logged: Broker, log: HeldLog
) -> None:
    consumer = open_peer(logged, "carol").subscribe(Q)
    send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    writes = logged.journal.writes
    send(open_peer(logged, "bob").session, Q, keyed("k"), b"1")
    # the duplicate wrote nothing, yet counts as writing so that its RECEIPT waits
    assert logged.journal.writes == writes + 1
    assert len(log.pending) == 1
    assert not logged.journal.last.done
    log.resolve()
    assert consumer.bodies() == [b"1"]


def test_a_duplicate_is_not_confirmed_when_the_original_write_fails(
    logged: Broker, log: HeldLog
) -> None:
    send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    open_peer(logged, "carol").session.publish(Q, (), b"written later")
    send(open_peer(logged, "bob").session, Q, keyed("k"), b"1")
    confirmation = logged.journal.last  # what bob's RECEIPT waits for
    (original, *_), (later, *_) = log.pending
    original.resolve(StoreError(ErrorCode.STORAGE_UNAVAILABLE, "simulated"))
    assert not confirmation.done  # writes before the RECEIPT are not all done yet
    later.resolve()  # a later write may succeed where the original's failed
    assert confirmation.done
    assert confirmation.error is not None  # so bob gets no RECEIPT for a message not stored


def test_a_duplicate_of_a_durable_message_waits_for_nothing(logged: Broker, log: HeldLog) -> None:
    send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    log.resolve()
    writes = logged.journal.writes
    send(open_peer(logged, "bob").session, Q, keyed("k"), b"1")
    assert logged.journal.writes == writes


def test_when_the_original_write_fails_the_key_publishes_again(
    logged: Broker, log: HeldLog
) -> None:
    consumer = open_peer(logged, "carol").subscribe(Q)
    send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    log.resolve(ErrorCode.STORAGE_UNAVAILABLE)
    assert consumer.bodies() == []
    send(open_peer(logged, "bob").session, Q, keyed("k"), b"1")
    log.resolve()
    assert consumer.bodies() == [b"1"]


def test_keys_kept_by_the_store_hold_after_a_restart(
    logged: Broker, log: HeldLog, clock: Clock
) -> None:
    first = send(open_peer(logged, "alice").session, Q, keyed("k"), b"1")
    log.resolve()
    restarted = Broker(BrokerConfig(), clock=clock, log=HeldLog())
    queue = logged.destination(DestinationKind.QUEUE, "orders")
    assert queue is not None
    restarted.add_destination(queue.record)
    assert restarted.restore_idempotency_keys(log.kept_keys.values()) == 1
    again = send(open_peer(restarted, "alice").session, Q, keyed("k"), b"1")
    assert again == first
    assert queue_stats(restarted) == (0, 0, 1)


def test_dead_letters_do_not_take_their_keys_to_the_dead_letter_queue(clock: Clock) -> None:
    broker = Broker(BrokerConfig(), clock=clock)
    make_queue(broker, dead_letter_queue="dead", max_length=1, overflow=Overflow.DROP_HEAD)
    producer = open_peer(broker, "alice")
    send(producer.session, Q, keyed("k1"), b"1")
    send(producer.session, Q, keyed("k2"), b"2")  # drops 1 to the dead-letter queue
    send(producer.session, "/queue/dead", keyed("k1"), b"direct")
    assert queue_stats(broker, "dead")[0] == 2
