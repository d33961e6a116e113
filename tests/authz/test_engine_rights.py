"""The engine's side of rights that change: dead-letter grants checked at every move,
access-key grants and subscriptions that end when a key changes, token-bound sessions, and
logins a password change made stale."""

from __future__ import annotations

import dataclasses

import pytest

from buzon.auth import Accounts, SecretHasher, Tokens
from buzon.broker import ACCEPT, AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.broker.policy import feed_grant
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationKind, DestinationRecord, MemoryStore, QueuePolicy
from tests.broker.helpers import Clock, RecordingSink, open_peer, user


def queue_record(name: str, owner: str, key_hash: str | None = None) -> DestinationRecord:
    return new_record(DestinationKind.QUEUE, name, f"id-{owner}", key_hash, 0.0)


def feeding(broker: Broker, target: DestinationRecord, grant: str | None) -> None:
    """Bob's queue ``qb`` whose messages expire at once into the queue ``target`` names."""
    record = dataclasses.replace(
        queue_record("qb", "bob"),
        policy=QueuePolicy(message_ttl_ms=1, dead_letter_queue=target.name),
        dead_letter_grant=grant,
    )
    broker.add_destination(record)


def expire_one(broker: Broker, clock: Clock, body: bytes) -> None:
    open_peer(broker, "bob").publish("/queue/qb", body)
    clock.now += 1
    broker.expire_messages(clock.now)


def depth_and_refused(broker: Broker, name: str) -> tuple[int, int]:
    stats = {queue.name: queue for queue in broker.statistics().queues}
    return stats[name].depth, stats["qb"].dead_letter_refused


def test_a_protected_queue_of_someone_else_is_never_fed_without_a_grant() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    feeding(broker, qa, grant=None)
    expire_one(broker, clock, b"intruder")
    assert depth_and_refused(broker, "qa") == (0, 1)
    assert broker.statistics().queues[1].retired == 1  # qb: it left, and went nowhere


def test_a_grant_lasts_exactly_as_long_as_the_key_it_was_given_for() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    feeding(broker, qa, grant=feed_grant(qa))
    expire_one(broker, clock, b"allowed")
    assert depth_and_refused(broker, "qa") == (1, 0)

    broker.update_destination(dataclasses.replace(qa, key_hash="hash-2"))  # rotated
    expire_one(broker, clock, b"after the rotation")
    assert depth_and_refused(broker, "qa") == (1, 1)

    broker.update_destination(dataclasses.replace(qa, key_hash=None))  # public now
    expire_one(broker, clock, b"anyone may publish to a public queue")
    assert depth_and_refused(broker, "qa") == (2, 1)


def test_a_grant_does_not_follow_the_name_to_a_queue_created_again() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    feeding(broker, qa, grant=feed_grant(qa))
    broker.delete_destination(DestinationKind.QUEUE, "qa")
    broker.add_destination(queue_record("qa", "carol", "hash-1"))  # same key hash, even
    expire_one(broker, clock, b"not for carol")
    assert depth_and_refused(broker, "qa") == (0, 1)


def test_the_owners_own_queue_and_a_missing_one_need_no_grant() -> None:
    clock = Clock()
    broker = Broker(BrokerConfig(), clock=clock)
    mine = queue_record("mine", "bob", "hash-1")
    broker.add_destination(mine)
    feeding(broker, mine, grant=None)
    expire_one(broker, clock, b"to my own protected queue")
    assert depth_and_refused(broker, "mine") == (1, 0)


def test_a_new_key_ends_the_sessions_that_used_the_old_one_and_only_those() -> None:
    broker = Broker()
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    holder = open_peer(broker, "carol")
    holder.session.grant(qa.id)
    holder.subscribe("/queue/qa", AckMode.CLIENT_INDIVIDUAL)
    publisher = open_peer(broker, "dave")
    publisher.session.grant(qa.id)
    owner = open_peer(broker, "alice").subscribe("/queue/qa", subscription_id="own")
    bystander = open_peer(broker, "erin")

    assert broker.update_destination(dataclasses.replace(qa, key_hash="hash-2")) == 2
    for peer in (holder, publisher):
        assert peer.session.closed
        ((code, detail),) = peer.sink.close_requests
        assert code is ErrorCode.PERMISSIONS_CHANGED
        assert "/queue/qa" in detail
    assert not owner.session.closed
    assert not bystander.session.closed
    # removing the key takes nobody's right away
    assert broker.update_destination(dataclasses.replace(qa, key_hash=None)) == 0


def test_a_grant_dies_with_its_destination() -> None:
    broker = Broker()
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    peer = open_peer(broker, "carol")
    peer.session.grant(qa.id)
    broker.delete_destination(DestinationKind.QUEUE, "qa")
    assert not peer.session.granted(qa.id)


def test_revoking_a_token_ends_exactly_the_sessions_that_logged_in_with_it() -> None:
    broker = Broker()
    with_token = broker.open_session(RecordingSink(), user("alice"), token="hash-of-t1")
    other_token = broker.open_session(RecordingSink(), user("alice"), token="hash-of-t2")
    with_password = broker.open_session(RecordingSink(), user("alice"))
    assert broker.close_sessions_with_token("hash-of-t1", ErrorCode.PERMISSIONS_CHANGED, "") == 1
    assert with_token.closed
    assert not other_token.closed
    assert not with_password.closed


async def test_a_login_goes_stale_when_its_password_changes_behind_the_brokers_back(
    hasher: SecretHasher,
) -> None:
    store = MemoryStore()
    accounts = Accounts(store, hasher, Tokens(store, ttl=60.0))
    await accounts.ensure_admin("root", "root-password")
    root = await accounts.authenticate("root", "root-password", "10.0.0.1")
    await accounts.register("erin", "erin-password")
    before = await accounts.authenticate("erin", "erin-password", "10.0.0.1")
    record = await store.user_by_name("erin")
    assert record is not None
    # what `buzon user set-password` does from another process
    await store.update_user(
        dataclasses.replace(record, password_hash=await hasher.hash("new-password"))
    )
    after = await accounts.authenticate("erin", "new-password", "10.0.0.1")
    assert await accounts.revalidate([before, after, root]) == [
        (ErrorCode.PERMISSIONS_CHANGED, "the password changed"),
        None,
        None,
    ]
    await accounts.delete(root, "erin")
    assert await accounts.revalidate([after]) == [
        (ErrorCode.ACCOUNT_DISABLED, "the account was disabled or deleted")
    ]


def test_a_new_key_gives_back_what_others_pulled_with_the_old_one() -> None:
    broker = Broker()
    qa = queue_record("qa", "alice", "hash-1")
    broker.add_destination(qa)
    open_peer(broker, "alice").publish("/queue/qa", b"theirs", b"mine")
    [theirs] = broker.pull(user("carol"), "qa", 1, 60.0, 0.0, grants={qa.id})
    [mine] = broker.pull(user("alice"), "qa", 1, 60.0, 0.0)
    broker.update_destination(dataclasses.replace(qa, key_hash="hash-2"))
    with pytest.raises(BrokerError) as gone:
        broker.settle(user("carol"), "qa", [theirs.receipt], ACCEPT)
    assert gone.value.code is ErrorCode.UNKNOWN_RECEIPT
    broker.settle(user("alice"), "qa", [mine.receipt], ACCEPT)  # the owner's stays
    [again] = broker.pull(user("alice"), "qa", 1, 60.0, 0.0)
    assert (again.message.body, again.redelivered) == (b"theirs", True)
