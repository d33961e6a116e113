"""The Store contract, run against every implementation.

Each test states one promise of ``buzon.store.base.Store``; a new implementation joins by
adding a factory to ``STORES``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from buzon.errors import ErrorCode, StoreError
from buzon.store import (
    BindingRecord,
    ChannelType,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    MemoryStore,
    Overflow,
    Page,
    QueuePolicy,
    Role,
    Store,
    StoredMessage,
    TailCount,
    Ticket,
    TokenRecord,
    UserRecord,
)
from buzon.store.postgres import PostgresStore
from buzon.store.sqlite import SQLiteStore
from buzon.store.tickets import settled

STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "memory": lambda _, __: MemoryStore(),
    "sqlite": lambda _, tmp_path: SQLiteStore(tmp_path / "data"),
    # a fresh database of the test process's own PostgreSQL server
    "postgresql": lambda request, _: PostgresStore(request.getfixturevalue("database_url")),
}


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = STORES[request.param](request, tmp_path)
    await made.open()
    yield made
    await made.close()


def user(name: str, user_id: str | None = None, role: Role = Role.USER) -> UserRecord:
    return UserRecord(user_id or f"id-{name}", name, "$argon2id$hash", role, False, 1.0)


def destination(kind: DestinationKind, name: str, owner: str = "id-alice") -> DestinationRecord:
    return DestinationRecord(f"{kind}-{name}", kind, name, owner, None, 2.0)


async def test_users_round_trip_and_names_are_unique(store: Store) -> None:
    alice = user("alice")
    await store.add_user(alice)
    assert await store.user_by_name("alice") == alice
    assert await store.user_by_id("id-alice") == alice
    assert await store.user_by_name("bob") is None
    with pytest.raises(StoreError) as taken:
        await store.add_user(user("alice", "id-other"))
    assert taken.value.code is ErrorCode.USERNAME_TAKEN
    await store.add_user(user("bob"))
    assert [u.name for u in await store.users()] == ["alice", "bob"]


async def test_update_keeps_the_name_and_needs_the_user(store: Store) -> None:
    await store.add_user(user("alice"))
    changed = UserRecord("id-alice", "renamed", "$argon2id$new", Role.ADMIN, True, 1.0)
    await store.update_user(changed)
    stored = await store.user_by_id("id-alice")
    assert stored is not None
    assert (stored.name, stored.role, stored.disabled) == ("alice", Role.ADMIN, True)
    with pytest.raises(StoreError) as missing:
        await store.update_user(user("ghost"))
    assert missing.value.code is ErrorCode.USER_NOT_FOUND


async def test_deleting_a_user_deletes_their_tokens_only(store: Store) -> None:
    await store.add_user(user("alice"))
    await store.add_user(user("bob"))
    await store.add_token(TokenRecord("h-alice", "id-alice", 1.0, 100.0))
    await store.add_token(TokenRecord("h-bob", "id-bob", 1.0, 100.0))
    await store.delete_user("id-alice")
    assert await store.user_by_name("alice") is None
    assert await store.token("h-alice") is None
    assert await store.token("h-bob") is not None
    with pytest.raises(StoreError) as missing:
        await store.delete_user("id-alice")
    assert missing.value.code is ErrorCode.USER_NOT_FOUND
    await store.add_user(user("alice", "id-alice-2"))  # the name is free again


async def test_tokens_expire_and_delete(store: Store) -> None:
    await store.add_user(user("alice"))
    await store.add_token(TokenRecord("old", "id-alice", 1.0, 10.0))
    await store.add_token(TokenRecord("new", "id-alice", 1.0, 30.0))
    assert await store.token("old") == TokenRecord("old", "id-alice", 1.0, 10.0)
    assert await store.delete_expired_tokens(10.0) == 1
    assert await store.token("old") is None
    await store.delete_token("new")
    await store.delete_token("never-existed")
    assert await store.token("new") is None


async def test_destinations_are_unique_per_kind_and_sorted(store: Store) -> None:
    jobs = destination(DestinationKind.QUEUE, "jobs")
    news = destination(DestinationKind.CHANNEL, "jobs")  # same name, other kind: allowed
    await store.add_destination(news)
    await store.add_destination(jobs)
    await store.add_destination(destination(DestinationKind.QUEUE, "alpha"))
    with pytest.raises(StoreError) as exists:
        await store.add_destination(destination(DestinationKind.QUEUE, "jobs", "id-bob"))
    assert exists.value.code is ErrorCode.DESTINATION_EXISTS
    assert await store.destination(DestinationKind.QUEUE, "jobs") == jobs
    listed = [(d.kind, d.name) for d in await store.destinations()]
    assert listed == sorted(listed)
    assert len(listed) == 3
    await store.delete_destination(jobs.id)
    await store.delete_destination("never-existed")
    assert await store.destination(DestinationKind.QUEUE, "jobs") is None
    assert await store.destination(DestinationKind.CHANNEL, "jobs") == news


def stored(queue_id: str, seq: int, body: bytes = b"x") -> StoredMessage:
    headers = (("n", str(seq)), ("tricky", "a:b\nc"))
    return StoredMessage(queue_id, seq, f"m-{seq}", "/queue/jobs", headers, body, None, False)


async def test_messages_append_remove_and_mark_in_order(store: Store) -> None:
    first = store.submit(appends=[stored("q1", 1), stored("q1", 2, b"\x00binary"), stored("q2", 3)])
    second = store.submit(removals=[("q1", 1)], redelivered=[("q1", 2)])
    done: list[str] = []
    first.add_callback(lambda _: done.append("first"))
    second.add_callback(lambda _: done.append("second"))
    messages = await store.messages()
    assert done == ["first", "second"] or (first is second and done)
    assert first.error is None
    assert second.error is None
    assert [(m.queue_id, m.seq, m.body, m.redelivered) for m in messages] == [
        ("q1", 2, b"\x00binary", True),
        ("q2", 3, b"x", False),
    ]
    assert messages[0].headers == (("n", "2"), ("tricky", "a:b\nc"))


async def test_append_and_remove_in_one_call_leaves_nothing(store: Store) -> None:
    store.submit(appends=[stored("q", 1)], removals=[("q", 1)])
    assert await store.messages() == []


async def test_deleting_a_destination_deletes_its_messages(store: Store) -> None:
    jobs = destination(DestinationKind.QUEUE, "jobs")
    await store.add_destination(jobs)
    store.submit(appends=[stored(jobs.id, 1), stored("other", 2)])
    await store.delete_destination(jobs.id)
    assert [m.queue_id for m in await store.messages()] == ["other"]


async def test_queue_policies_round_trip(store: Store) -> None:
    policy = QueuePolicy(
        durable=False,
        max_length=10,
        max_length_bytes=4096,
        overflow=Overflow.DROP_HEAD,
        message_ttl_ms=1500,
        dead_letter_queue="dead",
        max_deliveries=3,
        dedup_window_ms=5000,
    )
    record = dataclasses.replace(destination(DestinationKind.QUEUE, "strict"), policy=policy)
    await store.add_destination(record)
    assert await store.destination(DestinationKind.QUEUE, "strict") == record


async def test_durable_subscriptions_and_their_backlog(store: Store) -> None:
    record = DurableSubscriptionRecord("sub-1", "chan-1", "id-alice", "audit", 3.0)
    await store.add_durable_subscription(record)
    with pytest.raises(StoreError) as twice:
        await store.add_durable_subscription(
            DurableSubscriptionRecord("sub-2", "chan-1", "id-alice", "audit", 4.0)
        )
    assert twice.value.code is ErrorCode.DESTINATION_EXISTS
    other_owner = DurableSubscriptionRecord("sub-3", "chan-1", "id-bob", "audit", 5.0)
    await store.add_durable_subscription(other_owner)
    assert await store.durable_subscriptions() == [record, other_owner]
    store.submit(appends=[stored("sub-1", 7)])
    await store.delete_durable_subscription("sub-1")
    assert await store.messages() == []
    assert await store.durable_subscriptions() == [other_owner]


# -- idempotency keys ----------------------------------------------------------------


def key(queue_id: str, name: str, message_id: str, expires_at: float) -> IdempotencyKey:
    return IdempotencyKey(queue_id, name, message_id, expires_at)


async def test_idempotency_keys_are_written_with_their_messages_and_outlive_them(
    store: Store,
) -> None:
    store.submit(
        appends=[stored("q1", 1), stored("q2", 2)],
        keys=[key("q1", "k", "m-1", 200.0), key("q2", "k", "m-2", 100.0)],
    )
    store.submit(appends=[stored("q1", 3)], keys=[key("q1", "é" * 128, "m-3", 150.0)])
    store.submit(removals=[("q1", 1), ("q1", 3), ("q2", 2)])
    assert await store.messages() == []
    assert await store.idempotency_keys(50.0) == [
        key("q1", "é" * 128, "m-3", 150.0),
        key("q1", "k", "m-1", 200.0),
        key("q2", "k", "m-2", 100.0),
    ]


async def test_an_idempotency_key_written_again_replaces_the_old_one(store: Store) -> None:
    store.submit(appends=[stored("q", 1)], keys=[key("q", "k", "m-1", 100.0)])
    store.submit(appends=[stored("q", 2)], keys=[key("q", "k", "m-2", 300.0)])
    assert await store.idempotency_keys(200.0) == [key("q", "k", "m-2", 300.0)]


async def test_expired_idempotency_keys_are_not_read_and_are_pruned(store: Store) -> None:
    store.submit(
        appends=[stored("q", 1), stored("q", 2), stored("r", 3)],
        keys=[
            key("q", "older", "m-1", 90.0),
            key("q", "new", "m-2", 300.0),
            key("r", "old", "m-3", 100.0),
        ],
    )
    assert [k.key for k in await store.idempotency_keys(100.0)] == ["new"]
    assert await store.prune_idempotency_keys(100.0, 1) == 1  # the soonest first
    assert [k.key for k in await store.idempotency_keys(0.0)] == ["new", "old"]
    assert await store.prune_idempotency_keys(100.0, 10) == 1
    assert await store.prune_idempotency_keys(100.0, 10) == 0
    assert [k.key for k in await store.idempotency_keys(0.0)] == ["new"]


async def test_a_failed_write_stores_neither_the_message_nor_its_key(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    await done(store.submit(appends=[stored("q", 1)]))
    # the same message again breaks the primary key: the whole write fails
    failed = store.submit(appends=[stored("q", 1)], keys=[key("q", "k", "m-1", 100.0)])
    with pytest.raises(StoreError):
        await settled(failed)
    assert await store.idempotency_keys(0.0) == []
    await store.close()


async def test_deleting_a_queue_deletes_its_idempotency_keys(store: Store) -> None:
    jobs = destination(DestinationKind.QUEUE, "jobs")
    await store.add_destination(jobs)
    store.submit(
        appends=[stored(jobs.id, 1), stored("other", 2)],
        keys=[key(jobs.id, "k", "m-1", 100.0), key("other", "k", "m-2", 100.0)],
    )
    await store.delete_destination(jobs.id)
    assert [k.queue_id for k in await store.idempotency_keys(0.0)] == ["other"]


async def test_idempotency_keys_survive_a_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    store.submit(appends=[stored("q", 1)], keys=[key("q", "k", "m-1", 100.0)])
    await store.close()
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    assert await store.idempotency_keys(0.0) == [key("q", "k", "m-1", 100.0)]
    await store.close()


async def test_a_fresh_store_counts_as_cleanly_closed(store: Store) -> None:
    assert store.opened_cleanly


async def test_only_a_store_that_keeps_files_reports_a_size_on_disk(store: Store) -> None:
    size = store.size_on_disk()
    if store.durable:
        assert size is not None
        assert size > 0
    else:
        assert size is None


# -- paged backlogs: ranged reads, spills, counting, expiry and purge of a tail --------


async def done(ticket: Ticket) -> object:
    """The result of a store operation, once it completes (in order with the others)."""
    finished = asyncio.Event()
    ticket.add_callback(lambda _: finished.set())
    await asyncio.wait_for(finished.wait(), 5)
    assert ticket.error is None, ticket.error
    return ticket.result


def expiring(queue_id: str, seq: int, expires_at: float) -> StoredMessage:
    return dataclasses.replace(stored(queue_id, seq), expires_at=expires_at)


async def test_a_page_reads_a_range_oldest_first_persistent_and_spilled_alike(
    store: Store,
) -> None:
    store.submit(appends=[stored("q", seq) for seq in (1, 2, 4, 7)] + [stored("other", 3)])
    store.spill([dataclasses.replace(stored("q", 5), persistent=False)])
    page = await done(store.read_page("q", 1, 7, 10, 1 << 20))
    assert isinstance(page, Page)
    assert [(m.seq, m.persistent) for m in page.messages] == [
        (2, True),
        (4, True),
        (5, False),
        (7, True),
    ]
    assert page.exhausted
    assert page.messages[0].headers == (("n", "2"), ("tricky", "a:b\nc"))
    # a spilled message read back lives in memory only now: it is not read twice
    again = await done(store.read_page("q", 1, 7, 10, 1 << 20))
    assert isinstance(again, Page)
    assert [m.seq for m in again.messages] == [2, 4, 7]


async def test_a_page_stops_at_its_count_or_its_bytes_but_takes_one_message_always(
    store: Store,
) -> None:
    store.submit(appends=[stored("q", seq, b"x" * 100) for seq in range(1, 11)])
    by_count = await done(store.read_page("q", 0, 10, 3, 1 << 20))
    by_bytes = await done(store.read_page("q", 0, 10, 10, 250))
    one = await done(store.read_page("q", 0, 10, 10, 1))
    assert isinstance(by_count, Page)
    assert isinstance(by_bytes, Page)
    assert isinstance(one, Page)
    assert ([m.seq for m in by_count.messages], by_count.exhausted) == ([1, 2, 3], False)
    assert ([m.seq for m in by_bytes.messages], by_bytes.exhausted) == ([1, 2], False)
    assert [m.seq for m in one.messages] == [1]


async def test_a_tail_is_counted_in_steps(store: Store) -> None:
    store.submit(appends=[stored("q", seq, b"12345") for seq in range(1, 8)])
    store.submit(appends=[expiring("q", 9, 50.0), expiring("q", 10, 40.0)])
    first = await done(store.count_tail("q", 1, 10, 4))
    assert first == TailCount(4, 20, 5, None)
    second = await done(store.count_tail("q", 5, 10, 4))
    assert second == TailCount(4, 12, 10, 40.0)
    assert await done(store.count_tail("q", 10, 10, 4)) == TailCount(0, 0, 10, None)


async def test_expired_tail_messages_are_deleted_and_returned_with_the_next_expiry(
    store: Store,
) -> None:
    store.submit(
        appends=[
            expiring("q", 1, 10.0),
            expiring("q", 2, 30.0),
            stored("q", 3),
            expiring("q", 4, 20.0),
            expiring("q", 5, 5.0),
        ]
    )
    store.spill([dataclasses.replace(expiring("q", 6, 15.0), persistent=False)])
    result = await done(store.expire_tail("q", 1, 6, 25.0, 10))
    assert isinstance(result, tuple)
    due, next_expiry = result
    assert [(m.seq, m.persistent) for m in due] == [(4, True), (5, True), (6, False)]
    assert next_expiry == 30.0
    assert [m.seq for m in await store.messages()] == [1, 2, 3]  # 1 is outside the range


async def test_a_purge_of_a_tail_keeps_what_it_is_told_to_and_what_is_outside_it(
    store: Store,
) -> None:
    store.submit(appends=[stored("q", seq) for seq in range(1, 7)] + [stored("other", 4)])
    store.spill([dataclasses.replace(stored("q", 7), persistent=False)])
    await done(store.purge_tail("q", 2, 7, [5]))
    assert [(m.queue_id, m.seq) for m in await store.messages()] == [
        ("other", 4),
        ("q", 1),
        ("q", 2),
        ("q", 5),
    ]
    page = await done(store.read_page("q", 0, 10, 10, 1 << 20))
    assert isinstance(page, Page)
    assert [m.seq for m in page.messages] == [1, 2, 5]


async def test_backlogs_give_each_queue_its_head_and_the_extent_of_the_rest(
    store: Store,
) -> None:
    store.submit(appends=[stored("big", seq) for seq in range(1, 6)] + [stored("small", 9)])
    found = {item.queue_id: item for item in await store.backlogs(2, 1 << 20)}
    assert [m.seq for m in found["big"].head] == [1, 2]
    assert (found["big"].high_seq, found["big"].more) == (5, True)
    assert [m.seq for m in found["small"].head] == [9]
    assert (found["small"].high_seq, found["small"].more) == (9, False)


# -- priorities: every tail operation can be narrowed to one priority -------------------


def at(priority: int, queue_id: str, seq: int, expires_at: float | None = None) -> StoredMessage:
    return dataclasses.replace(stored(queue_id, seq), priority=priority, expires_at=expires_at)


async def test_the_priority_of_a_message_is_kept(store: Store) -> None:
    store.submit(appends=[at(9, "q", 1), stored("q", 2), at(0, "q", 3)])
    assert [(m.seq, m.priority) for m in await store.messages()] == [(1, 9), (2, 4), (3, 0)]


async def test_tail_reads_and_counts_narrowed_to_a_priority_see_only_its_messages(
    store: Store,
) -> None:
    store.submit(appends=[at(p, "q", seq) for seq, p in enumerate([9, 4, 9, 0, 4, 9], 1)])
    store.spill([dataclasses.replace(at(9, "q", 7), persistent=False), at(4, "q", 8)])
    nines = await done(store.read_page("q", 0, 10, 10, 1 << 20, priority=9))
    fours = await done(store.read_page("q", 0, 10, 2, 1 << 20, priority=4))
    everything = await done(store.read_page("q", 0, 10, 10, 1 << 20))
    assert isinstance(nines, Page)
    assert isinstance(fours, Page)
    assert isinstance(everything, Page)
    assert ([m.seq for m in nines.messages], nines.exhausted) == ([1, 3, 6, 7], True)
    assert {m.priority for m in nines.messages} == {9}
    assert ([m.seq for m in fours.messages], fours.exhausted) == ([2, 5], False)
    # the spilled 9 was read (and so forgotten); the spilled 4 was not, and is still there
    assert [m.seq for m in everything.messages] == [1, 2, 3, 4, 5, 6, 8]
    counted = await done(store.count_tail("q", 1, 10, 10, priority=9))
    assert isinstance(counted, TailCount)
    assert (counted.messages, counted.last_seq) == (2, 6)


async def test_expiry_and_purge_narrowed_to_a_priority_leave_the_others(store: Store) -> None:
    store.submit(
        appends=[at(9, "q", 1, 10.0), at(2, "q", 2, 10.0), at(9, "q", 3, 50.0), at(2, "q", 4)]
    )
    result = await done(store.expire_tail("q", 0, 10, 20.0, 10, priority=9))
    assert isinstance(result, tuple)
    due, next_expiry = result
    assert ([m.seq for m in due], next_expiry) == ([1], 50.0)
    await done(store.purge_tail("q", 0, 10, [], priority=2))
    assert [(m.seq, m.priority) for m in await store.messages()] == [(3, 9)]


async def test_backlogs_give_a_head_per_priority(store: Store) -> None:
    store.submit(appends=[at(p, "q", seq) for seq, p in enumerate([4, 9, 4, 9, 9, 0], 1)])
    found = {item.priority: item for item in await store.backlogs(2, 1 << 20)}
    assert sorted(found) == [0, 4, 9]
    assert ([m.seq for m in found[9].head], found[9].high_seq, found[9].more) == ([2, 4], 5, True)
    assert ([m.seq for m in found[4].head], found[4].high_seq, found[4].more) == ([1, 3], 3, False)
    assert ([m.seq for m in found[0].head], found[0].more) == ([6], False)
    assert {item.queue_id for item in found.values()} == {"q"}


async def test_spilled_messages_do_not_outlive_a_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    store.spill([dataclasses.replace(stored("q", 1), persistent=False)])
    store.submit(appends=[stored("q", 2)])
    await store.close()
    store = SQLiteStore(tmp_path / "data")
    await store.open()
    page = await done(store.read_page("q", 0, 10, 10, 1 << 20))
    assert isinstance(page, Page)
    assert [m.seq for m in page.messages] == [2]
    await store.close()


# -- scheduled messages: stored with their time, no part of a tail, handed back apart --


def scheduled(queue_id: str, seq: int, deliver_at: float, body: bytes = b"x") -> StoredMessage:
    return dataclasses.replace(stored(queue_id, seq, body), deliver_at=deliver_at)


Reopen = Callable[[], Awaitable[Store]]


@pytest.fixture
async def reopen(
    request: pytest.FixtureRequest, tmp_path: Path, store: Store
) -> AsyncIterator[Reopen]:
    """Close the store and open it again, as a restarted broker does (the same file, the
    same database; a memory store is opened again within the process)."""
    kind = request.node.callspec.params["store"]
    opened: list[Store] = []

    async def run() -> Store:
        await store.close()
        again = store if kind == "memory" else STORES[kind](request, tmp_path)
        await again.open()
        opened.append(again)
        return again

    yield run
    for again in opened:
        await again.close()


async def test_scheduled_messages_are_not_read_counted_expired_or_purged_with_a_tail(
    store: Store,
) -> None:
    store.submit(
        appends=[
            stored("q", 1, b"12345"),
            dataclasses.replace(scheduled("q", 2, 500.0), expires_at=5.0),
            expiring("q", 3, 10.0),
            scheduled("q", 4, 600.0, b"scheduled"),
            stored("q", 5, b"12345"),
        ]
    )
    page = await done(store.read_page("q", 0, 10, 10, 1 << 20))
    assert isinstance(page, Page)
    assert ([m.seq for m in page.messages], page.exhausted) == ([1, 3, 5], True)
    assert await done(store.count_tail("q", 0, 10, 10)) == TailCount(3, 11, 5, 10.0)
    # a step counts ready messages, however many scheduled ones lie between them
    assert await done(store.count_tail("q", 0, 10, 2)) == TailCount(2, 6, 3, 10.0)
    # seq 2 is past its expiry too, but it waits for its time, not in the tail
    assert await done(store.expire_tail("q", 0, 10, 20.0, 10)) == (
        [expiring("q", 3, 10.0)],
        None,
    )
    await done(store.purge_tail("q", 0, 10, []))
    assert [(m.seq, m.deliver_at) for m in await store.messages()] == [(2, 500.0), (4, 600.0)]


async def test_backlogs_hand_back_scheduled_messages_apart_and_number_above_them(
    store: Store,
) -> None:
    store.submit(
        appends=[
            stored("mixed", 1),
            stored("mixed", 2),
            scheduled("mixed", 3, 700.0),
            stored("mixed", 4),
            scheduled("mixed", 9, 650.0),
            stored("exact", 1),
            stored("exact", 2),
            scheduled("exact", 3, 800.0),
            scheduled("waiting", 5, 900.0),  # only scheduled messages: still a backlog
        ]
    )
    found = {item.queue_id: item for item in await store.backlogs(2, 1 << 20)}
    assert sorted(found) == ["exact", "mixed", "waiting"]
    summary = {
        queue_id: (
            [m.seq for m in item.head],
            item.more,
            item.high_seq,
            [(m.seq, m.deliver_at, m.redelivered) for m in item.scheduled],
        )
        for queue_id, item in found.items()
    }
    assert summary == {
        "mixed": ([1, 2], True, 9, [(9, 650.0, False), (3, 700.0, False)]),  # soonest first
        "exact": ([1, 2], False, 3, [(3, 800.0, False)]),
        "waiting": ([], False, 5, [(5, 900.0, False)]),
    }
    assert found["mixed"].scheduled[1] == scheduled("mixed", 3, 700.0)


async def test_a_schedule_sets_the_time_and_the_mark_and_survives_a_reopen(
    store: Store, reopen: Reopen
) -> None:
    store.submit(appends=[stored("q", 1), stored("q", 2), stored("q", 3)])
    # a NACKed message returned for a later retry; a message not stored: nothing happens
    await done(store.submit(schedules=[(("q", 1), 1234.5), (("q", 99), 1.0)]))
    store = await reopen()
    assert [(m.seq, m.deliver_at, m.redelivered) for m in await store.messages()] == [
        (1, 1234.5, True),
        (2, None, False),
        (3, None, False),
    ]
    [found] = await store.backlogs(10, 1 << 20)
    assert ([m.seq for m in found.head], found.high_seq, found.more) == ([2, 3], 3, False)
    assert [(m.seq, m.deliver_at, m.redelivered) for m in found.scheduled] == [(1, 1234.5, True)]
    page = await done(store.read_page("q", 0, 3, 10, 1 << 20))
    assert isinstance(page, Page)
    assert [m.seq for m in page.messages] == [2, 3]
    # an acknowledgement removes a scheduled message like any other
    await done(store.submit(removals=[("q", 1)]))
    assert [m.seq for m in await store.messages()] == [2, 3]


async def test_writes_of_one_turn_apply_in_order_and_a_removal_wins_over_a_schedule(
    store: Store,
) -> None:
    await done(store.submit(appends=[stored("q", seq) for seq in (1, 2, 3)]))
    # one call: removals apply before schedules
    store.submit(removals=[("q", 1)], schedules=[(("q", 1), 50.0)])
    # scheduled, then removed, in the same turn; and removed, then scheduled
    store.submit(schedules=[(("q", 2), 50.0)])
    store.submit(removals=[("q", 2), ("q", 3)])
    store.submit(schedules=[(("q", 3), 50.0)])
    # appended, marked and scheduled twice in the same turn: the last time holds
    store.submit(appends=[stored("q", 4)])
    store.submit(redelivered=[("q", 4)], schedules=[(("q", 4), 80.0)])
    last = store.submit(schedules=[(("q", 4), 90.0)])
    await done(last)
    assert [(m.seq, m.deliver_at, m.redelivered) for m in await store.messages()] == [
        (4, 90.0, True)
    ]


# -- a schedule larger than memory: read in pages by its order, purged from a place --


def held(queue_id: str, seq: int, deliver_at: float, body: bytes = b"x") -> StoredMessage:
    """A scheduled message as a node writes it: held by that node until its time (what a
    cluster's store reads back and purges for it; the others keep no claims)."""
    return dataclasses.replace(scheduled(queue_id, seq, deliver_at, body), claimed=True)


def places(messages: object) -> list[tuple[float | None, int]]:
    assert isinstance(messages, list)
    return [(m.deliver_at, m.seq) for m in messages]


async def test_a_schedule_is_read_in_pages_by_time_then_seq_after_a_place(store: Store) -> None:
    store.submit(
        appends=[
            held("q", 1, 300.0),
            held("q", 2, 100.0),
            held("q", 3, 200.0),
            held("q", 4, 100.0),
            held("q", 5, 200.0),
            held("q", 6, 50.0, b"soonest"),
            stored("q", 7),  # ready: no part of the schedule
            held("other", 8, 10.0),
        ]
    )
    # read before the writes above are awaited: it comes after them
    first = await done(store.read_scheduled("q", None, 3))
    assert places(first) == [(50.0, 6), (100.0, 2), (100.0, 4)]
    assert isinstance(first, list)
    assert dataclasses.replace(first[0], claimed=True) == held("q", 6, 50.0, b"soonest")
    # the place a page starts after is left out; ties on the time go by seq
    assert places(await done(store.read_scheduled("q", (100.0, 4), 3))) == [
        (200.0, 3),
        (200.0, 5),
        (300.0, 1),
    ]
    assert places(await done(store.read_scheduled("q", (100.0, 2), 1))) == [(100.0, 4)]
    assert places(await done(store.read_scheduled("q", (200.0, 3), 10))) == [(200.0, 5), (300.0, 1)]
    assert places(await done(store.read_scheduled("q", (300.0, 1), 10))) == []
    assert places(await done(store.read_scheduled("nobody", None, 10))) == []


async def test_a_purge_of_a_schedule_forgets_what_comes_after_a_place(store: Store) -> None:
    await done(
        store.submit(
            appends=[
                held("q", 1, 300.0),
                held("q", 2, 100.0),
                held("q", 3, 100.0),
                stored("q", 4),
                held("other", 5, 500.0),
            ]
        )
    )
    store.submit(appends=[held("q", 6, 400.0)])  # written before the purge: purged too
    await done(store.purge_scheduled("q", (100.0, 2)))
    assert [(m.queue_id, m.seq) for m in await store.messages()] == [
        ("other", 5),
        ("q", 2),
        ("q", 4),
    ]
    await done(store.purge_scheduled("q", None))
    assert [(m.queue_id, m.seq) for m in await store.messages()] == [("other", 5), ("q", 4)]
    assert places(await done(store.read_scheduled("other", None, 10))) == [(500.0, 5)]


async def test_backlogs_bound_the_scheduled_messages_and_count_them_all(store: Store) -> None:
    store.submit(
        appends=[stored("q", 1)] + [held("q", seq, 1000.0 - seq, b"x" * 100) for seq in range(2, 7)]
    )
    [by_count] = await store.backlogs(2, 1 << 20)
    [by_bytes] = await store.backlogs(10, 250)
    [one] = await store.backlogs(10, 1)
    assert [m.seq for m in by_count.head] == [1]
    assert [m.seq for m in by_count.scheduled] == [6, 5]  # the soonest
    assert [m.seq for m in by_bytes.scheduled] == [6, 5]
    assert [m.seq for m in one.scheduled] == [6]  # one, however large
    for found in (by_count, by_bytes, one):
        assert (found.scheduled_count, found.scheduled_bytes) == (5, 500)
    store.submit(appends=[stored("ready", 1)])
    assert {
        item.queue_id: (item.scheduled, item.scheduled_count, item.scheduled_bytes)
        for item in await store.backlogs(2, 1 << 20)
        if item.queue_id == "ready"
    } == {"ready": ([], 0, 0)}


async def test_a_scheduled_message_is_read_back_after_a_reopen(
    store: Store, reopen: Reopen
) -> None:
    store.submit(appends=[held("q", 1, 700.0), held("q", 2, 600.0)])
    store.submit(appends=[dataclasses.replace(stored("q", 3), claimed=True)])
    # a held message returned for a retry
    await done(store.submit(schedules=[(("q", 3), 650.0)]))
    store = await reopen()
    [found] = await store.backlogs(1, 1 << 20)
    assert (found.scheduled_count, found.scheduled_bytes) == (3, 3)
    assert [m.seq for m in found.scheduled] == [2]
    later = await done(store.read_scheduled("q", (600.0, 2), 10))
    assert isinstance(later, list)
    assert [(m.seq, m.deliver_at, m.redelivered) for m in later] == [
        (3, 650.0, True),
        (1, 700.0, False),
    ]


async def test_channel_types_and_bindings_round_trip_and_survive_a_reopen(
    store: Store, reopen: Reopen
) -> None:
    topic = dataclasses.replace(
        destination(DestinationKind.CHANNEL, "logs"), channel_type=ChannelType.TOPIC
    )
    jobs = destination(DestinationKind.QUEUE, "jobs")
    audit = destination(DestinationKind.QUEUE, "audit")
    for record in (topic, jobs, audit):
        await store.add_destination(record)
    first = BindingRecord(topic.id, jobs.id, "app.*", "id-alice", 3.0)
    second = BindingRecord(topic.id, jobs.id, "#", "id-bob", 4.0, "chan-grant", "queue-grant")
    third = BindingRecord(topic.id, audit.id, "", "id-alice", 5.0)
    for binding in (first, second, third):
        await store.add_binding(binding)
    # binding again with the same identity replaces it (new grants)
    regranted = dataclasses.replace(first, queue_grant="new-grant", created_at=6.0)
    await store.add_binding(regranted)
    store = await reopen()
    assert await store.destination(DestinationKind.CHANNEL, "logs") == topic
    stored = await store.destination(DestinationKind.QUEUE, "jobs")
    assert stored is not None
    assert stored.channel_type is ChannelType.FANOUT
    expected = sorted([regranted, second, third], key=lambda b: (b.channel_id, b.queue_id, b.key))
    assert await store.bindings() == expected
    await store.delete_binding(topic.id, jobs.id, "#")
    await store.delete_binding(topic.id, jobs.id, "no such key")  # not an error
    assert await store.bindings() == sorted(
        [regranted, third], key=lambda b: (b.channel_id, b.queue_id, b.key)
    )


async def test_deleting_either_side_deletes_its_bindings(store: Store) -> None:
    channels = [destination(DestinationKind.CHANNEL, name) for name in ("a", "b")]
    queues = [destination(DestinationKind.QUEUE, name) for name in ("q1", "q2")]
    for record in (*channels, *queues):
        await store.add_destination(record)
    for chan in channels:
        for queue in queues:
            await store.add_binding(BindingRecord(chan.id, queue.id, "k", "id-alice", 1.0))
    await store.delete_destination(queues[0].id)
    assert {(b.channel_id, b.queue_id) for b in await store.bindings()} == {
        (channels[0].id, queues[1].id),
        (channels[1].id, queues[1].id),
    }
    await store.delete_destination(channels[1].id)
    assert [(b.channel_id, b.queue_id) for b in await store.bindings()] == [
        (channels[0].id, queues[1].id)
    ]
