"""Copying a stopped broker's SQLite store into an empty PostgreSQL database
(``buzon.store.transfer``), store to store: every record and waiting message arrives as it
was, the SQLite store is left as it was, and what cannot be copied safely is refused."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode, StoreError
from buzon.store import (
    BindingRecord,
    ChannelType,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    Overflow,
    QueuePolicy,
    Role,
    StoredMessage,
    TokenRecord,
    UserRecord,
)
from buzon.store.postgres import PostgresStore
from buzon.store.sqlite import DATABASE_FILE, SQLiteStore
from buzon.store.tickets import settled
from buzon.store.transfer import SqliteSource, TransferError, copy_to_postgres

JOBS = "queue-jobs"
DURABLE = "durable-feed"


def message(queue_id: str, seq: int, **changes: object) -> StoredMessage:
    made = StoredMessage(
        queue_id,
        seq,
        f"m-{queue_id}-{seq}",
        "/queue/jobs" if queue_id == JOBS else "/topic/news",
        (("priority", str(seq)), ("x-repeat", "a"), ("x-repeat", "b")),
        bytes([seq % 256]) * (seq * 10),
        None,
        False,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


WAITING = [
    message(JOBS, 1, redelivered=True),
    message(JOBS, 2, expires_at=time.time() + 3600),
    *(message(JOBS, seq) for seq in (4, 5, 9, 10)),
    message(DURABLE, 3),
    message(DURABLE, 6, body=b"\x00\xff binary"),
]


async def fill(data_dir: Path, hasher: SecretHasher) -> None:
    """A broker's SQLite store with accounts, destinations and waiting messages; closed
    cleanly, as ``buzon serve`` leaves it when stopped."""
    store = SQLiteStore(data_dir)
    await store.open()
    now = time.time()
    await store.add_user(
        UserRecord("u-admin", "admin", hasher.hash_now("admin-pass"), Role.ADMIN, False, now)
    )
    await store.add_user(
        UserRecord("u-alice", "alice", hasher.hash_now("alice-pass"), Role.USER, False, now)
    )
    await store.add_user(
        UserRecord("u-bob", "bob", hasher.hash_now("bob-pass"), Role.USER, True, now)
    )
    await store.add_token(TokenRecord("live-token", "u-alice", now, now + 3600))
    await store.add_token(TokenRecord("old-token", "u-alice", now - 7200, now - 3600))
    policy = QueuePolicy(
        max_length=50,
        overflow=Overflow.DROP_HEAD,
        message_ttl_ms=60_000,
        dead_letter_queue="jobs-dead",
        max_deliveries=3,
    )
    await store.add_destination(
        DestinationRecord(
            JOBS, DestinationKind.QUEUE, "jobs", "u-alice", hasher.hash_now("k1"), now, policy
        )
    )
    await store.add_destination(
        DestinationRecord(
            "queue-dead",
            DestinationKind.QUEUE,
            "jobs-dead",
            "u-admin",
            hasher.hash_now("k2"),
            now,
            dead_letter_grant="grant-proof",
        )
    )
    await store.add_destination(
        DestinationRecord(
            "channel-news",
            DestinationKind.CHANNEL,
            "news",
            "u-admin",
            None,
            now,
            channel_type=ChannelType.TOPIC,
        )
    )
    await store.add_binding(
        BindingRecord("channel-news", JOBS, "news.#", "u-alice", now, None, "queue-grant")
    )
    await store.add_durable_subscription(
        DurableSubscriptionRecord(DURABLE, "channel-news", "u-alice", "feed", now)
    )
    await settled(store.submit(appends=WAITING))
    # a transient message a full window spilled: a restart forgets it, so does the copy
    await settled(store.spill([message(JOBS, 11, persistent=False)]))
    await store.close()


def dump(data_dir: Path) -> list[str]:
    """The SQLite database's whole content, as SQL text."""
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db:
        return list(db.iterdump())


@pytest.fixture
async def target(database_url: str) -> AsyncIterator[PostgresStore]:
    """The target database, opened after the copy to see what it holds."""
    store = PostgresStore(database_url)
    yield store
    await store.close()


async def test_everything_waiting_arrives_as_it_was_and_the_source_is_unchanged(
    tmp_path: Path, hasher: SecretHasher, database_url: str, target: PostgresStore
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    source = SQLiteStore(data_dir)
    await source.open()
    users, destinations = await source.users(), await source.destinations()
    durables = await source.durable_subscriptions()
    bindings = await source.bindings()
    await source.close()
    before = dump(data_dir)
    steps: list[tuple[int, int]] = []

    copied = await copy_to_postgres(
        data_dir, database_url, progress=lambda done, total: steps.append((done, total)), page=3
    )

    assert (copied.users, copied.tokens, copied.destinations) == (3, 1, 3)
    assert (copied.durable_subscriptions, copied.messages, copied.unclean) == (1, 8, False)
    assert steps == [(0, 8), (3, 8), (6, 8), (8, 8)]  # pages of three, then the rest
    await target.open()
    assert await target.users() == users
    assert await target.destinations() == destinations
    assert await target.durable_subscriptions() == durables
    assert await target.bindings() == bindings  # with the topic channel's type, above
    assert len(bindings) == 1
    # unclaimed (any node may claim them), seqs, headers, bodies, expiry, marks as they were
    assert await target.messages() == sorted(WAITING, key=lambda m: (m.queue_id, m.seq))
    assert await target.unclaimed() == {
        JOBS: (6, sum(len(m.body) for m in WAITING[:6]), WAITING[1].expires_at),
        DURABLE: (2, sum(len(m.body) for m in WAITING[6:]), None),
    }
    assert await target.token("live-token") is not None
    assert await target.token("old-token") is None
    assert dump(data_dir) == before


async def test_scheduled_messages_arrive_waiting_for_their_time(
    tmp_path: Path, database_url: str, target: PostgresStore
) -> None:
    data_dir = tmp_path / "data"
    store = SQLiteStore(data_dir)
    await store.open()
    later = time.time() + 3600
    delayed = message(JOBS, 1, deliver_at=later)  # published with a delay
    ready = message(JOBS, 2)
    retried = message(JOBS, 3)
    await settled(store.submit(appends=[delayed, ready, retried]))
    await settled(store.submit(schedules=[((JOBS, 3), later + 60)]))  # NACKed, back-off
    await store.close()

    copied = await copy_to_postgres(data_dir, database_url)

    assert copied.messages == 3
    await target.open()
    assert await target.messages() == [
        delayed,
        ready,
        dataclasses.replace(retried, redelivered=True, deliver_at=later + 60),
    ]
    # only the ready one waits for any node; the scheduled ones wait for their time
    assert await target.unclaimed() == {JOBS: (1, len(ready.body), None)}
    [found] = await target.backlogs(10, 1 << 20)
    assert [m.seq for m in found.scheduled] == [1, 3]


async def test_an_unclean_last_run_marks_the_copied_messages_redelivered(
    tmp_path: Path, hasher: SecretHasher, database_url: str, target: PostgresStore
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    # what a broker killed while running leaves behind: its run marked as not closed
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db, db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'clean'")

    copied = await copy_to_postgres(data_dir, database_url)

    assert copied.unclean
    await target.open()
    stored = await target.messages()
    assert len(stored) == len(WAITING)
    assert all(m.redelivered for m in stored)


async def test_a_database_that_holds_buzon_data_is_never_written_to(
    tmp_path: Path, hasher: SecretHasher, database_url: str, target: PostgresStore
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    await copy_to_postgres(data_dir, database_url)

    with pytest.raises(TransferError) as refused:
        await copy_to_postgres(data_dir, database_url)

    assert "already holds buzon data (users: 3, destinations: 3," in str(refused.value)
    assert "new, empty database" in str(refused.value)
    await target.open()
    assert len(await target.messages()) == len(WAITING)
    assert len(await target.users()) == 3


async def test_a_store_a_broker_has_open_is_refused(
    tmp_path: Path, hasher: SecretHasher, database_url: str, target: PostgresStore
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    running = SQLiteStore(data_dir)  # as ``buzon serve`` holds it while it runs
    await running.open()
    try:
        with pytest.raises(TransferError) as refused:
            await copy_to_postgres(data_dir, database_url)
    finally:
        await running.close()

    assert "a buzon serve is running on" in str(refused.value)
    assert "stop the broker first" in str(refused.value)
    await target.open()
    assert await target.users() == []


async def test_a_broker_started_during_a_copy_is_told_why_it_cannot_open(
    tmp_path: Path, hasher: SecretHasher
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    # SqliteSource: what buzon migrate holds while it copies
    with SqliteSource(data_dir), pytest.raises(StoreError) as refused:
        await SQLiteStore(data_dir).open()

    assert refused.value.code is ErrorCode.STORAGE_UNAVAILABLE  # not "damaged"
    assert "locked by another process (buzon migrate copying it?)" in str(refused.value)
    after = SQLiteStore(data_dir)
    await after.open()
    assert len(await after.messages()) == len(WAITING)
    await after.close()


async def test_a_directory_without_a_buzon_database_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    with pytest.raises(TransferError) as refused:
        await copy_to_postgres(tmp_path / "nothing-here", database_url)

    assert str(refused.value).startswith(f"no buzon database in {tmp_path / 'nothing-here'}")
    assert refused.value.code is ErrorCode.STORAGE_UNAVAILABLE


async def test_a_copy_that_fails_part_way_says_how_to_start_again(
    tmp_path: Path, hasher: SecretHasher, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    await fill(data_dir, hasher)
    # a text PostgreSQL cannot store (SQLite can): the third page fails
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db, db:
        db.execute("UPDATE messages SET message_id = ? WHERE seq = 9", ("nul\x00",))

    with pytest.raises(TransferError) as failed:
        await copy_to_postgres(data_dir, database_url, page=2)

    assert str(failed.value).startswith("storage unavailable: PostgreSQL: ")
    assert str(failed.value).endswith(
        "; the PostgreSQL database now holds an incomplete copy: empty it (as its owner:"
        " DROP SCHEMA buzon CASCADE) before running buzon migrate again"
    )
    with pytest.raises(TransferError) as refused:
        await copy_to_postgres(data_dir, database_url)
    assert "(users: 3, destinations: 3, durable subscriptions: 1, messages: 6)" in str(
        refused.value
    )
    assert "empty it as its owner: DROP SCHEMA buzon CASCADE" in str(refused.value)
    # what the line says to do works
    connection = await asyncpg.connect(database_url)
    await connection.execute("DROP SCHEMA buzon CASCADE")
    await connection.close()
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db, db:
        db.execute("UPDATE messages SET message_id = 'fixed' WHERE seq = 9")
    copied = await copy_to_postgres(data_dir, database_url)
    assert copied.messages == len(WAITING)
