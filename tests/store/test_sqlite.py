"""What the SQLite store promises beyond the contract: files, damage, versions, groups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from buzon.errors import ErrorCode, StoreError
from buzon.store import Role, StoredMessage, TokenRecord, UserRecord
from buzon.store.migrate import migrations
from buzon.store.sqlite import DATABASE_FILE, SQLiteStore
from buzon.store.sqlite_thread import SqliteThread
from buzon.store.tickets import settled


def user(name: str) -> UserRecord:
    return UserRecord(f"id-{name}", name, "$argon2id$hash", Role.USER, False, 1.0)


async def opened(data_dir: Path) -> SQLiteStore:
    store = SQLiteStore(data_dir)
    await store.open()
    return store


async def test_data_dir_is_private_and_survives_a_reopen(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await opened(data_dir)
    await store.add_user(user("alice"))
    await store.close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for file in data_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    again = await opened(data_dir)
    assert await again.user_by_name("alice") == user("alice")
    await again.close()


async def test_an_existing_open_data_dir_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    store = await opened(data_dir)
    await store.close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


async def test_a_damaged_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await opened(data_dir)
    await store.add_user(user("alice"))
    await store.close()
    database = data_dir / DATABASE_FILE
    damaged = bytearray(database.read_bytes())
    damaged[100:4096] = os.urandom(4096 - 100)  # the schema page
    database.write_bytes(bytes(damaged))
    with pytest.raises(StoreError) as caught:
        await opened(data_dir)
    assert caught.value.code is ErrorCode.STORAGE_CORRUPT
    assert database.read_bytes() == bytes(damaged)  # never recreated


async def test_a_large_database_skips_the_full_check_but_not_the_schema(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    store = await opened(data_dir)
    await store.add_user(user("alice"))
    await store.close()
    reopened = SQLiteStore(data_dir, full_check_limit=0)  # every database counts as large
    with caplog.at_level(logging.INFO, logger="buzon.store"):
        await reopened.open()
    assert await reopened.user_by_name("alice") is not None
    await reopened.close()
    assert "skipping the full integrity check" in caplog.text
    database = data_dir / DATABASE_FILE
    damaged = bytearray(database.read_bytes())
    damaged[100:4096] = os.urandom(4096 - 100)  # the schema page
    database.write_bytes(bytes(damaged))
    with pytest.raises(StoreError) as caught:
        await SQLiteStore(data_dir, full_check_limit=0).open()
    assert caught.value.code is ErrorCode.STORAGE_CORRUPT


async def test_a_truncated_database_is_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    await (await opened(data_dir)).close()
    database = data_dir / DATABASE_FILE
    database.write_bytes(database.read_bytes()[:1000])
    with pytest.raises(StoreError) as caught:
        await opened(data_dir)
    assert caught.value.code is ErrorCode.STORAGE_CORRUPT


async def test_a_database_from_a_newer_buzon_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    await (await opened(data_dir)).close()
    newer = migrations()[-1][0] + 1
    with sqlite3.connect(data_dir / DATABASE_FILE) as connection:
        connection.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(StoreError) as caught:
        await opened(data_dir)
    assert caught.value.code is ErrorCode.STORAGE_TOO_NEW
    assert "upgrade buzon" in caught.value.detail


async def test_an_unwritable_data_dir_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/buzon-data")  # not even root may create this
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "data"
    with pytest.raises(StoreError) as caught:
        await opened(target)
    assert caught.value.code is ErrorCode.STORAGE_UNAVAILABLE


async def test_one_failing_write_does_not_fail_its_group(tmp_path: Path) -> None:
    store = await opened(tmp_path / "data")
    await store.add_user(user("alice"))
    writes = [store.add_token(TokenRecord(f"t{n}", "id-alice", 1.0, 2.0)) for n in range(50)]
    writes.insert(25, store.add_user(user("alice")))  # a duplicate name, in the middle
    results = await asyncio.gather(*writes, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], StoreError)
    assert failures[0].code is ErrorCode.USERNAME_TAKEN
    assert await store.delete_expired_tokens(2.0) == 50  # every other write committed
    await store.close()


async def test_a_crash_is_remembered_and_a_clean_close_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await opened(data_dir)
    assert store.opened_cleanly  # a new database
    await store.close()
    again = await opened(data_dir)
    assert again.opened_cleanly
    # leave without close(), as a killed process would
    await again._db.close()
    after_crash = await opened(data_dir)
    assert not after_crash.opened_cleanly
    await after_crash.close()


async def test_writes_of_one_loop_turn_share_one_ticket_and_commit_together(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "data")
    message = StoredMessage("q", 1, "m-1", "/queue/q", (), b"x", None, False)
    first = store.submit(appends=[message])
    second = store.submit(removals=[("q", 99)])
    assert first is second
    assert [m.seq for m in await store.messages()] == [1]
    assert first.done
    assert first.error is None
    # a later turn: one bad write (a key already stored) fails its whole group, good
    # writes of that group included, and nothing of it is stored
    good = StoredMessage("q", 2, "m-2", "/queue/q", (), b"y", None, False)
    failed = store.submit(appends=[good, message])
    assert failed is not first
    assert [m.seq for m in await store.messages()] == [1]
    assert failed.error is not None
    assert failed.error.code is ErrorCode.STORAGE_UNAVAILABLE
    await store.close()


async def test_a_full_database_never_reports_a_lost_write_as_committed(tmp_path: Path) -> None:
    path = tmp_path / "full.db"

    def setup(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, b BLOB)")
        db.execute("PRAGMA max_page_count = 20")  # about 80 KiB: a tiny "disk"

    thread = SqliteThread(path, setup)
    await thread.start()

    def insert(key: int, size: int) -> Callable[[sqlite3.Connection], None]:
        return lambda db: db.execute("INSERT INTO t VALUES (?, ?)", (key, b"x" * size)).close()

    # one group: small writes around one that cannot fit
    writes = [thread.write(insert(n, 1000 if n != 3 else 500_000)) for n in range(6)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    reported = {n for n, result in enumerate(results) if not isinstance(result, BaseException)}
    assert 3 not in reported
    failures = [r for r in results if isinstance(r, StoreError)]
    assert failures
    # the write that did not fit, and those rolled back with it, say the disk is full
    assert all(f.code is ErrorCode.STORAGE_FULL for f in failures)
    stored = await thread.read(lambda db: {k for (k,) in db.execute("SELECT k FROM t")})
    assert reported <= stored  # everything reported as committed is there
    await thread.write(insert(100, 10))  # and the database keeps working
    await thread.close()


async def test_size_on_disk_counts_the_database_its_log_and_index(tmp_path: Path) -> None:
    store = await opened(tmp_path / "data")
    empty = store.size_on_disk()
    assert empty is not None
    big = StoredMessage("q", 1, "m-1", "/queue/q", (), b"x" * 1_000_000, None, False)
    store.submit(appends=[big])
    await store.messages()  # runs after the write
    grown = store.size_on_disk()
    assert grown == sum(file.stat().st_size for file in (tmp_path / "data").iterdir())
    assert grown >= empty + 1_000_000
    await store.close()


async def test_a_database_from_before_scheduled_messages_is_upgraded(tmp_path: Path) -> None:
    """A broker's database at schema 0004 (no ``deliver_at``) opens with its messages
    ready as they were, and scheduling works on them."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for version, sql in migrations():
            if version <= 4:
                db.executescript(sql)
        db.execute("PRAGMA user_version = 4")
        db.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, '/queue/q', '[]', ?, ?, 0)",
            [("q", 1, "m-1", b"a", 40.0), ("q", 2, "m-2", b"b", None), ("q", 3, "m-3", b"c", 90.0)],
        )
        db.commit()
    store = await opened(data_dir)
    [found] = await store.backlogs(10, 1 << 20)
    assert [(m.seq, m.deliver_at) for m in found.head] == [(1, None), (2, None), (3, None)]
    assert found.scheduled == []
    store.submit(schedules=[(("q", 3), 500.0)])
    expired = await settled(store.expire_tail("q", 0, 3, 100.0, 10))
    assert expired == ([StoredMessage("q", 1, "m-1", "/queue/q", (), b"a", 40.0, False)], None)
    await store.close()
    store = await opened(data_dir)
    [found] = await store.backlogs(10, 1 << 20)
    assert [m.seq for m in found.head] == [2]
    assert [(m.seq, m.deliver_at, m.redelivered) for m in found.scheduled] == [(3, 500.0, True)]
    await store.close()
    with contextlib.closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
