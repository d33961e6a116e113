"""Destinations as owned resources in the engine: records, access keys, auto-create, delete."""

from __future__ import annotations

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.store import DestinationKind, DestinationRecord, Role
from tests.broker.helpers import open_peer, user

Q = "/queue/owned"


def protected(
    broker: Broker, owner: str = "alice", kind: DestinationKind = DestinationKind.QUEUE
) -> str:
    record = new_record(kind, "owned", user(owner).id, "$argon2id$key-hash", 0.0)
    broker.add_destination(record)
    return record.id


def test_first_use_creates_a_destination_owned_by_that_user(broker: Broker) -> None:
    created: list[DestinationRecord] = []
    broker.on_created.append(created.append)
    open_peer(broker, "alice").subscribe(Q)
    (record,) = created
    assert (record.kind, record.name, record.owner_id, record.key_hash) == (
        DestinationKind.QUEUE,
        "owned",
        "id-alice",
        None,
    )
    target = broker.destination(DestinationKind.QUEUE, "owned")
    assert target is not None
    assert target.record == record


def test_without_auto_create_a_missing_destination_is_named_in_the_error() -> None:
    broker = Broker(BrokerConfig(auto_create=False))
    peer = open_peer(broker)
    for attempt in (lambda: peer.publish(Q, b"x"), lambda: peer.subscribe(Q)):
        with pytest.raises(BrokerError) as caught:
            attempt()
        assert caught.value.code is ErrorCode.DESTINATION_NOT_FOUND
        assert Q in caught.value.detail
    assert broker.statistics().queues == ()


def test_a_protected_destination_needs_a_grant_except_for_owner_and_admins(broker: Broker) -> None:
    record_id = protected(broker)
    owner = open_peer(broker, "alice")
    admin = open_peer(broker, "root", Role.ADMIN)
    stranger = open_peer(broker, "bob")
    owner.publish(Q, b"from owner")
    admin.publish(Q, b"from admin")
    for attempt in (lambda: stranger.publish(Q, b"no"), lambda: stranger.subscribe(Q)):
        with pytest.raises(AccessDenied) as denied:
            attempt()
        assert denied.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        assert Q in denied.value.detail
    stranger.session.grant(record_id)
    stranger.subscribe(Q, AckMode.AUTO)
    assert stranger.bodies() == [b"from owner", b"from admin"]


def test_a_transaction_cannot_slip_past_the_key(broker: Broker) -> None:
    protected(broker)
    stranger = open_peer(broker, "bob")
    stranger.session.begin("t")
    with pytest.raises(AccessDenied):
        stranger.publish(Q, b"sneaky", transaction="t")
    stranger.session.commit("t")
    queue = broker.destination(DestinationKind.QUEUE, "owned")
    assert queue is not None
    assert queue.statistics().published == 0


def test_a_grant_does_not_survive_delete_and_recreate(broker: Broker) -> None:
    stranger = open_peer(broker, "bob")
    stranger.session.grant(protected(broker))
    stranger.publish(Q, b"ok")
    broker.delete_destination(DestinationKind.QUEUE, "owned")
    protected(broker)  # same name, new id
    with pytest.raises(AccessDenied):
        stranger.publish(Q, b"not any more")


def test_deleting_a_queue_drops_its_messages_and_ends_its_consumers(broker: Broker) -> None:
    owner = open_peer(broker, "alice")
    consumer = open_peer(broker, "bob").subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    owner.publish(Q, b"in flight", b"waiting")
    assert consumer.bodies() == [b"in flight"]
    assert broker.statistics().queued_bytes > 0
    broker.delete_destination(DestinationKind.QUEUE, "owned")
    assert consumer.sink.close_requests == [(ErrorCode.DESTINATION_DELETED, f"{Q} was deleted")]
    assert consumer.session.closed
    stats = broker.statistics()
    assert stats.queues == ()
    assert stats.queued_bytes == 0  # waiting and in-flight bytes were released
    assert stats.messages_published == 2  # the totals never go back
    with pytest.raises(BrokerError) as gone:
        broker.delete_destination(DestinationKind.QUEUE, "owned")
    assert gone.value.code is ErrorCode.DESTINATION_NOT_FOUND


def test_deleting_a_channel_ends_its_subscribers(broker: Broker) -> None:
    subscriber = open_peer(broker, "bob").subscribe("/topic/owned")
    bystander = open_peer(broker, "carol").subscribe("/topic/other")
    broker.delete_destination(DestinationKind.CHANNEL, "owned")
    assert [code for code, _ in subscriber.sink.close_requests] == [ErrorCode.DESTINATION_DELETED]
    assert not bystander.session.closed


def test_commit_fails_whole_when_a_staged_destination_is_gone() -> None:
    broker = Broker(BrokerConfig(auto_create=False))
    owner = open_peer(broker, "alice")
    broker.add_destination(new_record(DestinationKind.QUEUE, "a", "id-alice", None, 0.0))
    broker.add_destination(new_record(DestinationKind.QUEUE, "b", "id-alice", None, 0.0))
    consumer = open_peer(broker, "alice").subscribe("/queue/a")
    owner.session.begin("t")
    owner.publish("/queue/a", b"first", transaction="t")
    owner.publish("/queue/b", b"second", transaction="t")
    broker.delete_destination(DestinationKind.QUEUE, "b")
    with pytest.raises(BrokerError) as caught:
        owner.session.commit("t")
    assert caught.value.code is ErrorCode.DESTINATION_NOT_FOUND
    assert consumer.bodies() == []  # nothing of the transaction was applied
    owner.session.abort("t")  # and it is still open


def test_disabling_a_user_ends_only_their_sessions(broker: Broker) -> None:
    first, second = open_peer(broker, "alice"), open_peer(broker, "alice")
    other = open_peer(broker, "bob")
    assert broker.close_sessions_of("id-alice", ErrorCode.ACCOUNT_DISABLED, "disabled") == 2
    assert first.session.closed
    assert second.session.closed
    assert first.sink.close_requests == [(ErrorCode.ACCOUNT_DISABLED, "disabled")]
    assert not other.session.closed
