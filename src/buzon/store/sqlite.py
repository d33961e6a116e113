"""SQLiteStore: the default Store, one SQLite file in WAL mode under the data directory.

Durability: ``synchronous=FULL``, so a write's future resolves only after its transaction
is synced to disk; writes from many callers share one commit (see ``sqlite_thread``). The
data directory is created 0700 and its files 0600, since they hold password hashes. At
open the file's integrity is checked (``PRAGMA quick_check``); a damaged or truncated
database is reported and left alone, never silently recreated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buzon.durations import Durations
from buzon.errors import BuzonError, ErrorCode, StoreError
from buzon.priority import DEFAULT_PRIORITY, HIGHEST_PRIORITY
from buzon.store.base import MessageKey, head_of
from buzon.store.migrate import migrate
from buzon.store.records import (
    BindingRecord,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    Page,
    StoredBacklog,
    StoredMessage,
    TailCount,
    TokenRecord,
    UserRecord,
)
from buzon.store.rows import (
    destination_record,
    destination_row,
    headers_text,
    parse_headers,
    user_record,
)
from buzon.store.sqlite_thread import COMMIT_BUCKETS, SqliteThread
from buzon.store.tickets import Ticket

DATABASE_FILE = "buzon.db"

_PRUNE_KEYS = (
    "DELETE FROM idempotency_keys WHERE (queue_id, key) IN (SELECT queue_id, key"
    " FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)

log = logging.getLogger("buzon.store")


@dataclass(slots=True)
class _Batch:
    """Message writes submitted during one event-loop turn: one job, one transaction."""

    appends: list[StoredMessage] = field(default_factory=list)
    removals: list[MessageKey] = field(default_factory=list)
    redelivered: list[MessageKey] = field(default_factory=list)
    schedules: list[tuple[float, str, int]] = field(default_factory=list)
    spills: list[StoredMessage] = field(default_factory=list)
    keys: list[IdempotencyKey] = field(default_factory=list)
    ticket: Ticket = field(default_factory=Ticket)

    def run(self, db: sqlite3.Connection) -> None:
        if self.appends:
            db.executemany(_INSERT, [_message_row(m) for m in self.appends])
        if self.keys:
            db.executemany(
                "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?)",
                [(k.queue_id, k.key, k.message_id, k.expires_at) for k in self.keys],
            )
        if self.spills:
            db.executemany(
                "INSERT INTO spilled VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*_message_row(m)[:7], m.priority) for m in self.spills],
            )
        if self.removals:
            db.executemany("DELETE FROM messages WHERE queue_id = ? AND seq = ?", self.removals)
        if self.redelivered:
            db.executemany(
                "UPDATE messages SET redelivered = 1 WHERE queue_id = ? AND seq = ?",
                self.redelivered,
            )
        if self.schedules:
            db.executemany(
                "UPDATE messages SET deliver_at = ?, redelivered = 1"
                " WHERE queue_id = ? AND seq = ?",
                self.schedules,
            )

    def finish(self, ok: bool, value: Any) -> None:
        self.ticket.resolve(None if ok else _as_buzon_error(value))


def _ignore(ok: bool, value: Any) -> None:
    """The outcome of a write nobody waits for."""


def _as_buzon_error(error: BaseException) -> BuzonError:
    """What a failed job raised, as the error its ticket carries."""
    if isinstance(error, BuzonError):
        return error
    return StoreError(ErrorCode.STORAGE_UNAVAILABLE, str(error)[:200])


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data directory (0700) if needed; return the database path.

    Raises:
        StoreError: STORAGE_UNAVAILABLE when the directory cannot be created or used.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            ErrorCode.STORAGE_UNAVAILABLE, f"cannot create {data_dir}: {exc.strerror}"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, f"{data_dir} is not writable")
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        data_dir.chmod(0o700)
    return data_dir / DATABASE_FILE


FULL_CHECK_LIMIT = 256 * 1024 * 1024
"""Databases up to this size get ``PRAGMA quick_check`` at every start (it reads every page:
about a second per 250 MiB here). A larger one, a big backlog, would keep the broker from
accepting connections for many seconds; it gets the schema read instead, and the operator
runs the full check offline (docs/durability.md)."""


def _setup(connection: sqlite3.Connection, *, full_check: bool = True) -> None:
    """Pragmas, integrity check and migrations; runs on the database thread."""
    try:
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        if full_check:
            (check,) = connection.execute("PRAGMA quick_check").fetchone()
        else:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            check = "ok"
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):
            # held whole by another process: buzon migrate copying it (see store/transfer)
            raise StoreError(
                ErrorCode.STORAGE_UNAVAILABLE,
                "the database is locked by another process (buzon migrate copying it?):"
                " start the broker once that has ended",
            ) from None
        raise StoreError(ErrorCode.STORAGE_CORRUPT, f"{exc}; restore it from a backup") from None
    if check != "ok" or mode != "wal":
        raise StoreError(
            ErrorCode.STORAGE_CORRUPT, f"integrity check: {check[:200]}; restore from a backup"
        )
    migrate(connection)


def _take_clean_flag(db: sqlite3.Connection) -> bool:
    """Whether the previous run closed cleanly; from now on, the run counts as unclean.

    Transient messages spilled by the previous run are forgotten here: they never outlive
    the process that took them."""
    db.execute("DELETE FROM spilled")
    row = db.execute("SELECT value FROM meta WHERE key = 'clean'").fetchone()
    db.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '0')")
    return row is None or row[0] == "1"


class SQLiteStore:
    """A :class:`~buzon.store.base.Store` in ``<data_dir>/buzon.db``.

    Args:
        data_dir: the directory (created 0700 if missing).
        full_check_limit: the largest database checked whole at open (see
            ``FULL_CHECK_LIMIT``).
    """

    durable = True

    def __init__(self, data_dir: Path, *, full_check_limit: int = FULL_CHECK_LIMIT) -> None:
        self.data_dir = data_dir
        self._full_check_limit = full_check_limit
        self.opened_cleanly = True
        self.commit_durations = Durations(COMMIT_BUCKETS)
        self._thread: SqliteThread | None = None
        self._batch: _Batch | None = None

    async def open(self) -> None:
        """Create or check the database.

        Raises:
            StoreError: STORAGE_UNAVAILABLE (cannot create or write), STORAGE_CORRUPT,
                STORAGE_TOO_NEW.
        """
        path = prepare_data_dir(self.data_dir)
        old_umask = os.umask(0o077)  # the database, its WAL and shared-memory files: 0600
        try:
            size = path.stat().st_size if path.exists() else 0
            full_check = size <= self._full_check_limit
            if not full_check:
                log.info(
                    "the database is %d MiB: skipping the full integrity check at start"
                    " (run PRAGMA quick_check on a stopped broker's buzon.db to do it)",
                    size >> 20,
                )
            setup = functools.partial(_setup, full_check=full_check)
            thread = SqliteThread(path, setup, self.commit_durations)
            await thread.start()
        finally:
            os.umask(old_umask)
        self._thread = thread
        self.opened_cleanly = await thread.write(_take_clean_flag)

    async def close(self) -> None:
        """Write what is pending, mark the run clean, close."""
        if self._thread is None:
            return
        thread = self._db  # flushes the pending batch
        await thread.write(
            lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES ('clean', '1')")
        )
        await thread.close()
        self._thread = None

    def free_space(self) -> tuple[int, int] | None:
        """Free (for an unprivileged writer) and total bytes of the data directory's volume;
        None when the system cannot tell (SQLite still reports a full disk by itself)."""
        try:
            found = os.statvfs(self.data_dir)
        except OSError:
            return None
        return found.f_bavail * found.f_frsize, found.f_blocks * found.f_frsize

    def size_on_disk(self) -> int | None:
        """The database file with its write-ahead log and shared-memory index."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += (self.data_dir / (DATABASE_FILE + suffix)).stat().st_size
        return total

    @property
    def _db(self) -> SqliteThread:
        """The database thread, after handing it any pending message batch, so that every
        call runs after the writes submitted before it."""
        if self._thread is None:
            raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is not open")
        if self._batch is not None:
            self._flush()
        return self._thread

    # -- users ---------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        user.name,
                        user.password_hash,
                        user.role.value,
                        int(user.disabled),
                        user.created_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise StoreError(ErrorCode.USERNAME_TAKEN, f"user {user.name!r} exists") from None

        await self._db.write(run)

    async def user_by_name(self, name: str) -> UserRecord | None:
        return await self._db.read(lambda db: _one_user(db, _USER_BY_NAME, name))

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return await self._db.read(lambda db: _one_user(db, _USER_BY_ID, user_id))

    async def users(self) -> list[UserRecord]:
        def run(db: sqlite3.Connection) -> list[UserRecord]:
            return [user_record(row) for row in db.execute(_ALL_USERS).fetchall()]

        return await self._db.read(run)

    async def update_user(self, user: UserRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            changed = db.execute(
                "UPDATE users SET password_hash = ?, role = ?, disabled = ? WHERE id = ?",
                (user.password_hash, user.role.value, int(user.disabled), user.id),
            ).rowcount
            if not changed:
                raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user.id!r}")

        await self._db.write(run)

    async def delete_user(self, user_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            if not db.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount:
                raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user_id!r}")

        await self._db.write(run)

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        await self._db.write(
            lambda db: db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?)",
                (token.token_hash, token.user_id, token.created_at, token.expires_at),
            )
        )

    async def token(self, token_hash: str) -> TokenRecord | None:
        def run(db: sqlite3.Connection) -> TokenRecord | None:
            row = db.execute(
                "SELECT token_hash, user_id, created_at, expires_at FROM tokens"
                " WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            return None if row is None else TokenRecord(*row)

        return await self._db.read(run)

    async def delete_token(self, token_hash: str) -> None:
        await self._db.write(
            lambda db: db.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))
        )

    async def delete_expired_tokens(self, now: float) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount

        return await self._db.write(run)

    # -- destinations --------------------------------------------------------------------

    async def add_destination(self, record: DestinationRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO destinations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    destination_row(record),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    ErrorCode.DESTINATION_EXISTS, f"{record.kind} {record.name!r}"
                ) from None

        await self._db.write(run)

    async def destination(self, kind: DestinationKind, name: str) -> DestinationRecord | None:
        def run(db: sqlite3.Connection) -> DestinationRecord | None:
            row = db.execute(_DESTINATION_BY_NAME, (kind.value, name)).fetchone()
            return None if row is None else destination_record(row)

        return await self._db.read(run)

    async def destinations(self) -> list[DestinationRecord]:
        def run(db: sqlite3.Connection) -> list[DestinationRecord]:
            return [destination_record(row) for row in db.execute(_ALL_DESTINATIONS).fetchall()]

        return await self._db.read(run)

    async def update_destination(self, record: DestinationRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE destinations SET key_hash = ?, dead_letter_grant = ? WHERE id = ?",
                (record.key_hash, record.dead_letter_grant, record.id),
            )

        await self._db.write(run)

    async def delete_destination(self, destination_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM destinations WHERE id = ?", (destination_id,))
            db.execute("DELETE FROM messages WHERE queue_id = ?", (destination_id,))
            db.execute("DELETE FROM idempotency_keys WHERE queue_id = ?", (destination_id,))
            db.execute(
                "DELETE FROM bindings WHERE channel_id = ? OR queue_id = ?",
                (destination_id, destination_id),
            )

        await self._db.write(run)

    # -- bindings ------------------------------------------------------------------------

    async def add_binding(self, record: BindingRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?, ?)",
                dataclasses.astuple(record),
            )

        await self._db.write(run)

    async def bindings(self) -> list[BindingRecord]:
        def run(db: sqlite3.Connection) -> list[BindingRecord]:
            return [BindingRecord(*row) for row in db.execute(_ALL_BINDINGS).fetchall()]

        return await self._db.read(run)

    async def delete_binding(self, channel_id: str, queue_id: str, key: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM bindings WHERE channel_id = ? AND queue_id = ? AND key = ?",
                (channel_id, queue_id, key),
            )

        await self._db.write(run)

    # -- durable subscriptions -----------------------------------------------------------

    async def add_durable_subscription(self, record: DurableSubscriptionRecord) -> None:
        def run(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO durable_subscriptions VALUES (?, ?, ?, ?, ?)",
                    (record.id, record.channel_id, record.owner_id, record.name, record.created_at),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    ErrorCode.DESTINATION_EXISTS, f"subscription {record.name!r}"
                ) from None

        await self._db.write(run)

    async def durable_subscriptions(self) -> list[DurableSubscriptionRecord]:
        def run(db: sqlite3.Connection) -> list[DurableSubscriptionRecord]:
            rows = db.execute(_ALL_DURABLES).fetchall()
            return [DurableSubscriptionRecord(*row) for row in rows]

        return await self._db.read(run)

    async def delete_durable_subscription(self, subscription_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM durable_subscriptions WHERE id = ?", (subscription_id,))
            db.execute("DELETE FROM messages WHERE queue_id = ?", (subscription_id,))

        await self._db.write(run)

    # -- messages ------------------------------------------------------------------------

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        """Queue message writes; see :meth:`buzon.store.base.MessageLog.submit`.

        Everything submitted during one turn of the event loop goes to the database as
        one job (one ``executemany`` per kind of write, in the order appends, removals,
        marks, schedules: a key removed and scheduled in one turn stays removed) and
        shares one ticket.
        """
        batch = self._pending_batch()
        batch.appends.extend(appends)
        batch.removals.extend(removals)
        batch.redelivered.extend(redelivered)
        batch.schedules.extend((at, queue_id, seq) for (queue_id, seq), at in schedules)
        batch.keys.extend(keys)
        return batch.ticket

    def _pending_batch(self) -> _Batch:
        """The batch of this event-loop turn (started, and its flush scheduled, if none)."""
        batch = self._batch
        if batch is None:
            if self._thread is None:
                raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is not open")
            batch = self._batch = _Batch()
            asyncio.get_running_loop().call_soon(self._flush)
        return batch

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        if self._thread is None:
            batch.ticket.resolve(StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is closed"))
            return
        try:
            self._thread.post(batch.run, batch.finish)
        except StoreError as exc:
            batch.ticket.resolve(exc)

    async def messages(self) -> list[StoredMessage]:
        def run(db: sqlite3.Connection) -> list[StoredMessage]:
            return [_stored_message(row) for row in db.execute(_ALL_MESSAGES).fetchall()]

        return await self._db.read(run)

    async def idempotency_keys(self, now: float) -> list[IdempotencyKey]:
        def run(db: sqlite3.Connection) -> list[IdempotencyKey]:
            rows = db.execute(
                "SELECT queue_id, key, message_id, expires_at FROM idempotency_keys"
                " WHERE expires_at > ? ORDER BY queue_id, expires_at",
                (now,),
            )
            return [IdempotencyKey(*row) for row in rows.fetchall()]

        return await self._db.read(run)

    async def prune_idempotency_keys(self, now: float, limit: int) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute(_PRUNE_KEYS, (now, limit)).rowcount

        return await self._db.write(run)

    async def backlogs(self, limit: int, max_bytes: int) -> list[StoredBacklog]:
        """Each queue's head per priority, and its soonest scheduled messages with the
        first of them; queue ids are found by skipping through the primary key and
        scheduled messages through their own index, so this costs a few index lookups per
        queue and priority, whatever the backlogs hold, plus one count of its scheduled
        messages (their index and sizes, not their bodies)."""

        def run(db: sqlite3.Connection) -> list[StoredBacklog]:
            found: list[StoredBacklog] = []
            queue_id = ""
            while True:
                row = db.execute(_NEXT_QUEUE, (queue_id,)).fetchone()
                if row is None:
                    return found
                queue_id = row[0]
                first = len(found)
                for priority in range(HIGHEST_PRIORITY, -1, -1):
                    level, values = _level(priority)
                    (high,) = db.execute(
                        _HIGH_SEQ.format(level=level), (queue_id, *values)
                    ).fetchone()
                    if high is None:
                        continue
                    rows = db.execute(
                        _RANGE_OF_MESSAGES.format(level=level),
                        (queue_id, -1, high, *values, limit + 1),
                    )
                    stored = [_stored_message(row) for row in rows.fetchall()]
                    head = head_of(stored, limit, max_bytes)
                    more = len(head) < len(stored)
                    found.append(StoredBacklog(queue_id, head, high, more, priority=priority))
                count, size = db.execute(_SCHEDULED_TOTAL, (queue_id,)).fetchone()
                if count:
                    rows = db.execute(_SCHEDULED.format(after=""), (queue_id, limit))
                    soonest = [_stored_message(row) for row in rows.fetchall()]
                    found[first] = dataclasses.replace(
                        found[first],
                        scheduled=head_of(soonest, limit, max_bytes),
                        scheduled_count=count,
                        scheduled_bytes=int(size),
                    )

        return await self._db.read(run)

    # -- paged backlogs (see PagedLog) ---------------------------------------------------

    def spill(self, messages: Sequence[StoredMessage]) -> Ticket:
        """Queue spilled transient messages with the other message writes of this turn."""
        batch = self._pending_batch()
        batch.spills.extend(messages)
        return batch.ticket

    def read_page(
        self,
        queue_id: str,
        after: int,
        upto: int,
        limit: int,
        max_bytes: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        """A read that answers without waiting for the commit in progress (the tail's range
        holds no row an uncommitted write touched), then a write that forgets the spilled
        messages it read (if that fails, the next start forgets them)."""
        spilled_upto: list[int] = []
        level, values = _level(priority)

        def run(db: sqlite3.Connection) -> Page:
            found: list[StoredMessage] = []
            for table, extra, ready in _TAIL_TABLES:
                rows = db.execute(
                    _RANGE.format(table=table, extra=extra, ready=ready, level=level),
                    (queue_id, after, upto, *values, limit),
                )
                found.extend(_stored_message(row) for row in rows.fetchall())
            found.sort(key=lambda message: message.seq)
            page = head_of(found, limit, max_bytes)
            if any(not message.persistent for message in page):
                spilled_upto.append(page[-1].seq)
            return Page(page, len(page) == len(found) and len(found) < limit)

        def forget_spilled(db: sqlite3.Connection) -> None:
            if spilled_upto:
                db.execute(
                    _FORGET_SPILLED.format(level=level),
                    (queue_id, after, spilled_upto[0], *values),
                )

        ticket = self._operation(run, write=False, early=True)
        if not ticket.done:
            self._db.post(forget_spilled, _ignore)
        return ticket

    def count_tail(
        self, queue_id: str, after: int, upto: int, limit: int, *, priority: int | None = None
    ) -> Ticket:
        level, values = _level(priority)

        def run(db: sqlite3.Connection) -> TailCount:
            count, size, last, first_expiry = db.execute(
                _COUNT.format(level=level), (queue_id, after, upto, *values, limit)
            ).fetchone()
            return TailCount(count, int(size), after if last is None else last, first_expiry)

        return self._operation(run, write=False)

    def expire_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        now: float,
        limit: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        level, values = _level(priority)

        def run(db: sqlite3.Connection) -> tuple[list[StoredMessage], float | None]:
            due: list[StoredMessage] = []
            later: list[float] = []
            for table, extra, ready in _TAIL_TABLES:
                rows = db.execute(
                    _EXPIRE.format(table=table, extra=extra, ready=ready, level=level),
                    (queue_id, queue_id, now, after, upto, *values, limit),
                )
                due.extend(_stored_message(row) for row in rows.fetchall())
                (first,) = db.execute(
                    _FIRST_EXPIRY.format(table=table, ready=ready, level=level),
                    (queue_id, after, upto, *values),
                ).fetchone()
                if first is not None:
                    later.append(first)
            due.sort(key=lambda message: message.seq)
            return due, min(later) if later else None

        return self._operation(run, write=True)

    def purge_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        keep: Sequence[int],
        *,
        priority: int | None = None,
    ) -> Ticket:
        kept = json.dumps(list(keep))
        level, values = _level(priority)

        def run(db: sqlite3.Connection) -> None:
            for table, _, ready in _TAIL_TABLES:
                db.execute(
                    _PURGE.format(table=table, ready=ready, level=level),
                    (queue_id, after, upto, *values, kept),
                )

        return self._operation(run, write=True)

    def read_scheduled(self, queue_id: str, after: tuple[float, int] | None, limit: int) -> Ticket:
        """One range of the scheduled index, after the writes submitted before it."""
        clause, bounds = _after_place(after)

        def run(db: sqlite3.Connection) -> list[StoredMessage]:
            rows = db.execute(_SCHEDULED.format(after=clause), (queue_id, *bounds, limit))
            return [_stored_message(row) for row in rows.fetchall()]

        return self._operation(run, write=False)

    def purge_scheduled(self, queue_id: str, after: tuple[float, int] | None) -> Ticket:
        clause, bounds = _after_place(after)

        def run(db: sqlite3.Connection) -> None:
            db.execute(_PURGE_SCHEDULED.format(after=clause), (queue_id, *bounds))

        return self._operation(run, write=True)

    def _operation(
        self, run: Callable[[sqlite3.Connection], Any], *, write: bool, early: bool = False
    ) -> Ticket:
        """Queue ``run`` behind every write submitted so far; its ticket carries the result."""
        ticket = Ticket()

        def finish(ok: bool, value: Any) -> None:
            if ok:
                ticket.resolve(result=value)
            else:
                ticket.resolve(_as_buzon_error(value))

        try:
            self._db.post(run, finish, write=write, early=early)
        except StoreError as exc:
            ticket.resolve(exc)
        return ticket


_USER_BY_NAME = (
    "SELECT id, name, password_hash, role, disabled, created_at FROM users WHERE name = ?"
)
_USER_BY_ID = "SELECT id, name, password_hash, role, disabled, created_at FROM users WHERE id = ?"
_ALL_USERS = "SELECT id, name, password_hash, role, disabled, created_at FROM users ORDER BY name"
_DESTINATIONS = (
    "SELECT id, kind, name, owner_id, key_hash, created_at, policy, dead_letter_grant,"
    " channel_type FROM destinations"
)
_DESTINATION_BY_NAME = _DESTINATIONS + " WHERE kind = ? AND name = ?"
_ALL_DESTINATIONS = _DESTINATIONS + " ORDER BY kind, name"
_ALL_BINDINGS = (
    "SELECT channel_id, queue_id, key, owner_id, created_at, channel_grant, queue_grant"
    " FROM bindings ORDER BY channel_id, queue_id, key"
)
_ALL_DURABLES = (
    "SELECT id, channel_id, owner_id, name, created_at FROM durable_subscriptions"
    " ORDER BY channel_id, owner_id, name"
)
_INSERT = (
    "INSERT INTO messages (queue_id, seq, message_id, destination, headers, body, expires_at,"
    " redelivered, priority, deliver_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ALL_MESSAGES = (
    "SELECT queue_id, seq, message_id, destination, headers, body, expires_at, redelivered,"
    " 1, priority, deliver_at FROM messages ORDER BY queue_id, seq"
)
# A backlog's tail lives in two tables: ``messages`` and ``spilled`` (transient messages,
# never delivered before, never scheduled). Each table with the columns of a stored message
# it gives (after ``expires_at``), and the condition that leaves scheduled messages out of
# the tail (the partial expiry index of ``messages`` has it too, so the queries must repeat
# it). ``{level}`` narrows a query to one priority (see ``_level``).
_MESSAGES_EXTRA = "redelivered, 1, priority, deliver_at"
_TAIL_TABLES = (
    ("messages", _MESSAGES_EXTRA, " AND deliver_at IS NULL"),
    ("spilled", "0, 0, priority, NULL", ""),
)
# ``{level}`` narrows a query to one priority (see ``_level``), after its ``seq`` bounds.
_RANGE = (
    "SELECT queue_id, seq, message_id, destination, headers, body, expires_at, {extra}"
    " FROM {table} WHERE queue_id = ? AND seq > ? AND seq <= ?{ready}{level} ORDER BY seq"
    " LIMIT ?"
)
_RANGE_OF_MESSAGES = _RANGE.format(
    table="messages", extra=_MESSAGES_EXTRA, ready=_TAIL_TABLES[0][2], level="{level}"
)
_NEXT_QUEUE = "SELECT queue_id FROM messages WHERE queue_id > ? ORDER BY queue_id LIMIT 1"
_HIGH_SEQ = "SELECT max(seq) FROM messages WHERE queue_id = ?{level}"
_COUNT = (
    "SELECT count(*), total(length(body)), max(seq), min(expires_at) FROM"
    " (SELECT seq, body, expires_at FROM messages"
    "  WHERE queue_id = ? AND seq > ? AND seq <= ? AND deliver_at IS NULL{level}"
    "  ORDER BY seq LIMIT ?)"
)
# A queue's scheduled messages, by (deliver_at, seq): {after} is empty or _AFTER_PLACE.
# INDEXED BY: by the primary key the planner could read the queue's whole backlog to find
# them; their index holds them in that order, and a place to start from bounds its range.
_SCHEDULED = (
    "SELECT queue_id, seq, message_id, destination, headers, body, expires_at, redelivered,"
    " 1, priority, deliver_at FROM messages INDEXED BY messages_scheduled"
    " WHERE queue_id = ? AND deliver_at IS NOT NULL{after} ORDER BY deliver_at, seq LIMIT ?"
)
_AFTER_PLACE = " AND (deliver_at, seq) > (?, ?)"
_SCHEDULED_TOTAL = (
    "SELECT count(*), total(length(body)) FROM messages INDEXED BY messages_scheduled"
    " WHERE queue_id = ? AND deliver_at IS NOT NULL"
)
_PURGE_SCHEDULED = (
    "DELETE FROM messages INDEXED BY messages_scheduled"
    " WHERE queue_id = ? AND deliver_at IS NOT NULL{after}"
)
_FORGET_SPILLED = "DELETE FROM spilled WHERE queue_id = ? AND seq > ? AND seq <= ?{level}"
_EXPIRE = (
    "DELETE FROM {table} WHERE queue_id = ? AND seq IN"
    " (SELECT seq FROM {table} WHERE queue_id = ? AND expires_at <= ?{ready}"
    "  AND seq > ? AND seq <= ?{level} ORDER BY expires_at LIMIT ?)"
    " RETURNING queue_id, seq, message_id, destination, headers, body, expires_at, {extra}"
)
_FIRST_EXPIRY = (
    "SELECT min(expires_at) FROM {table}"
    " WHERE queue_id = ? AND expires_at IS NOT NULL{ready} AND seq > ? AND seq <= ?{level}"
)
_PURGE = (
    "DELETE FROM {table} WHERE queue_id = ? AND seq > ? AND seq <= ?{ready}{level}"
    " AND seq NOT IN (SELECT value FROM json_each(?))"
)


def _level(priority: int | None) -> tuple[str, tuple[int, ...]]:
    """The condition (and its values) that narrows a message query to one priority; none
    for None. Messages of another priority than the default are found through a partial
    index, which SQLite uses only when the query repeats that index's condition."""
    if priority is None:
        return "", ()
    if priority == DEFAULT_PRIORITY:
        return f" AND priority = {DEFAULT_PRIORITY:d}", ()
    return f" AND priority = ? AND priority <> {DEFAULT_PRIORITY:d}", (priority,)


def _one_user(db: sqlite3.Connection, query: str, value: str) -> UserRecord | None:
    row = db.execute(query, (value,)).fetchone()
    return None if row is None else user_record(row)


def _after_place(after: tuple[float, int] | None) -> tuple[str, tuple[float, int] | tuple[()]]:
    """The condition that starts a read of scheduled messages after a place, and its
    values (none when it starts at the first)."""
    return ("", ()) if after is None else (_AFTER_PLACE, after)


def _message_row(message: StoredMessage) -> tuple[object, ...]:
    return (
        message.queue_id,
        message.seq,
        message.message_id,
        message.destination,
        headers_text(message.headers),
        message.body,
        message.expires_at,
        int(message.redelivered),
        message.priority,
        message.deliver_at,
    )


def _stored_message(row: tuple[Any, ...]) -> StoredMessage:
    """A message from its columns: those of ``messages`` up to ``redelivered``, then
    (optionally) whether it is persistent, its priority and ``deliver_at``."""
    queue_id, seq, message_id, destination, headers, body, expires_at, redelivered = row[:8]
    return StoredMessage(
        queue_id,
        seq,
        message_id,
        destination,
        parse_headers(headers),
        body,  # a BLOB column reads as bytes already
        expires_at,
        bool(redelivered),
        bool(row[8]) if len(row) > 8 else True,
        priority=row[9] if len(row) > 9 else DEFAULT_PRIORITY,
        deliver_at=row[10] if len(row) > 10 else None,
    )
