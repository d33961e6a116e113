"""The Store contract, run against every implementation.

Each test states one promise of ``buzon.store.base.Store``; a new implementation joins by
adding a factory to ``STORES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from buzon.errors import ErrorCode, StoreError
from buzon.store import (
    DestinationKind,
    DestinationRecord,
    MemoryStore,
    Role,
    Store,
    TokenRecord,
    UserRecord,
)
from buzon.store.sqlite import SQLiteStore

STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda _: MemoryStore(),
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "data"),
}


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = STORES[request.param](tmp_path)
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
