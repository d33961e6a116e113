"""Queues that end by themselves (exclusive, auto-delete, expiring), cancellation of the
subscriptions of a deleted queue, and taking one message without subscribing (get)."""

from __future__ import annotations

import pytest

from buzon.broker import RELEASE, AckMode, Broker, Queue
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.store import DestinationKind, DestinationRecord, QueuePolicy
from tests.broker.helpers import Clock, RecordingSink, open_peer, user


def _queue(
    broker: Broker, name: str, policy: QueuePolicy | None = None, exclusive_to: str | None = None
) -> DestinationRecord:
    record = DestinationRecord(
        f"id-{name}", DestinationKind.QUEUE, name, "id-alice", None, 0.0, policy or QueuePolicy()
    )
    broker.add_destination(record, exclusive_to=exclusive_to)
    return record


def _deleted(broker: Broker) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    broker.on_deleted.append(lambda record, reason: seen.append((record.name, reason)))
    return seen


def test_only_the_owning_connection_consumes_an_exclusive_queue_others_may_publish() -> None:
    broker = Broker()
    _queue(broker, "replies", exclusive_to="conn-1")
    mine = RecordingSink()
    session = broker.open_session(mine, user("alice"), connection="conn-1")
    other = open_peer(broker, "alice")  # same user, another connection
    with pytest.raises(AccessDenied) as locked:
        other.subscribe("/queue/replies")
    assert locked.value.code is ErrorCode.RESOURCE_LOCKED
    with pytest.raises(AccessDenied):
        other.session.get("replies", ack=False)
    other.publish("/queue/replies", b"answer")  # an RPC reply from elsewhere
    session.subscribe("s", "/queue/replies")
    assert [d.message.body for d in mine.deliveries] == [b"answer"]


def test_an_exclusive_queue_goes_when_its_connection_closes() -> None:
    broker = Broker()
    deleted = _deleted(broker)
    _queue(broker, "a", exclusive_to="conn-1")
    _queue(broker, "b", exclusive_to="conn-2")
    assert broker.connection_closed("conn-1") == 1
    assert deleted == [("a", "exclusive")]
    assert broker.destination(DestinationKind.QUEUE, "a") is None
    assert broker.destination(DestinationKind.QUEUE, "b") is not None
    assert broker.connection_closed("conn-1") == 0


def test_auto_delete_waits_for_a_first_consumer_then_goes_with_the_last() -> None:
    broker = Broker()
    deleted = _deleted(broker)
    _queue(broker, "work", QueuePolicy(auto_delete=True))
    first, second = open_peer(broker, "alice"), open_peer(broker, "bob")
    first.publish("/queue/work", b"kept")  # no consumer ever: it stays
    assert deleted == []
    first.subscribe("/queue/work", AckMode.CLIENT_INDIVIDUAL)
    second.subscribe("/queue/work")
    first.session.unsubscribe("sub")
    assert deleted == []  # one consumer left
    second.session.close()
    assert deleted == [("work", "auto-delete")]
    assert broker.destination(DestinationKind.QUEUE, "work") is None


def test_an_unused_queue_expires_and_use_restarts_its_clock() -> None:
    clock = Clock()
    broker = Broker(clock=clock)
    deleted = _deleted(broker)
    _queue(broker, "idle", QueuePolicy(expires_ms=10_000))
    peer = open_peer(broker, "alice")
    clock.now += 9
    broker.timers.fire()
    peer.session.get("idle", ack=False)  # a get is a use
    clock.now += 9
    broker.timers.fire()
    assert deleted == []
    peer.subscribe("/queue/idle")  # in use while a consumer is attached, however long
    clock.now += 100
    broker.timers.fire()
    assert deleted == []
    peer.session.unsubscribe("sub")
    clock.now += 10
    broker.timers.fire()
    assert deleted == [("idle", "expired")]


def test_a_deleted_queue_cancels_subscriptions_of_sessions_that_can_say_so() -> None:
    broker = Broker()
    _queue(broker, "q")
    _queue(broker, "other")
    sink = RecordingSink()
    session = broker.open_session(sink, user("alice"))
    cancelled: list[tuple[str, ErrorCode]] = []
    session.on_cancelled(lambda sub_id, code, detail: cancelled.append((sub_id, code)))
    session.subscribe("on-q", "/queue/q")
    session.subscribe("on-other", "/queue/other")
    plain = open_peer(broker, "bob").subscribe("/queue/q")
    broker.delete_destination(DestinationKind.QUEUE, "q")
    assert cancelled == [("on-q", ErrorCode.DESTINATION_DELETED)]
    assert not session.closed
    assert sink.close_requests == []
    session.subscribe("on-q", "/queue/other")  # the id is free again
    assert plain.session.closed  # a front end that cannot say so loses its session
    assert plain.sink.close_requests[0][0] is ErrorCode.DESTINATION_DELETED


def test_get_takes_the_oldest_and_counts_what_is_left() -> None:
    broker = Broker()
    _queue(broker, "jobs")
    peer = open_peer(broker, "alice")
    assert peer.session.get("jobs", ack=True) is None
    peer.publish("/queue/jobs", b"1", b"2", b"3")
    got = peer.session.get("jobs", ack=False)
    assert got is not None
    message, ack_id, redelivered, left = got
    assert (message.body, ack_id, redelivered, left) == (b"1", None, False, 2)
    got = peer.session.get("jobs", ack=True)
    assert got is not None
    assert (got[0].body, got[3]) == (b"2", 1)
    assert got[1] is not None
    peer.session.settle(got[1], RELEASE)  # back at its place, redelivered
    again = peer.session.get("jobs", ack=True)
    assert again is not None
    assert (again[0].body, again[2]) == (b"2", True)
    peer.session.ack(again[1] or "")
    queue = broker.destination(DestinationKind.QUEUE, "jobs")
    assert isinstance(queue, Queue)
    assert queue.depth == 1


def test_what_a_get_holds_goes_back_when_the_session_closes() -> None:
    broker = Broker()
    _queue(broker, "jobs")
    peer = open_peer(broker, "alice")
    peer.publish("/queue/jobs", b"held")
    assert peer.session.get("jobs", ack=True) is not None
    peer.session.close()
    other = open_peer(broker, "bob").subscribe("/queue/jobs")
    assert other.bodies() == [b"held"]
    assert other.flags() == [True]


def test_get_of_a_missing_queue_names_it() -> None:
    peer = open_peer(Broker(), "alice")
    with pytest.raises(BrokerError) as missing:
        peer.session.get("nowhere", ack=False)
    assert missing.value.code is ErrorCode.DESTINATION_NOT_FOUND
