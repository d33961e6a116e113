"""Copying a single node's SQLite store into an empty PostgreSQL database (``buzon migrate``).

The copy reads ``<data_dir>/buzon.db`` directly, not through :class:`SQLiteStore`: opening
that store writes (its clean-shutdown flag, its forgotten spills, schema upgrades) and waits
for a running broker instead of refusing. Here the file is opened with SQLite's exclusive
locking mode and ``query_only``: a broker that has it open holds a shared lock, so the copy
is refused at once ("stop the broker first"); while the copy runs, a broker started on the
directory cannot open it; and nothing is written to it (closing may fold its write-ahead log
into the file, as any last reader's close does).

What is copied, as it is: users (password hashes included, so logins keep working), tokens
that have not expired, destinations (ids, owners, access key hashes, policies, dead-letter
grants: the ids they are bound to are kept; channel types), queue bindings with their
grants, durable subscriptions, and every persistent
message waiting in a queue or a durable subscription, with its seq, headers, body, expiry,
redelivered mark and, for a scheduled one, the time it waits for. Messages are written
unclaimed, so any node may claim them (scheduled ones: ``ClaimLog.claim_scheduled``);
their seqs are the single node's small ones, below every seq a cluster node numbers (see
``server/cluster.first_seq``), so they are delivered before anything published later. When
the broker's last run did not stop cleanly, its messages may have been delivered without the
acknowledgement reaching the disk: they are copied marked redelivered, as a restart would.
Transient messages spilled to disk are not copied (a restart forgets them too).

The target must hold no buzon data: a second copy into the same database is refused, and a
copy that failed half-way says how to empty the database before trying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from buzon.errors import BuzonError, ErrorCode, StoreError
from buzon.store.migrate import migrations
from buzon.store.postgres import SCHEMA, PostgresStore
from buzon.store.records import (
    BindingRecord,
    DestinationRecord,
    DurableSubscriptionRecord,
    StoredMessage,
    TokenRecord,
    UserRecord,
)
from buzon.store.rows import destination_record, parse_headers, user_record
from buzon.store.sqlite import DATABASE_FILE
from buzon.store.tickets import Ticket, settled

PAGE_MESSAGES = 1_000
"""Messages read and written per batch."""
PAGE_BYTES = 8 * 1024 * 1024
"""Body bytes per batch (a larger message goes alone)."""

T = TypeVar("T")

Progress = Callable[[int, int], None]
"""Called with ``(messages copied, messages to copy)`` before the first batch and after
each batch is committed."""


class TransferError(StoreError):
    """The copy cannot start or did not finish; the text says why and what to do."""

    default_code = ErrorCode.STORAGE_UNAVAILABLE

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Copied:
    """What a copy wrote.

    Attributes:
        users: accounts.
        tokens: unexpired login tokens.
        destinations: queues and channels.
        durable_subscriptions: durable channel subscriptions.
        messages: waiting persistent messages (queues and durable subscriptions).
        unclean: the SQLite broker's last run did not stop cleanly, so the messages were
            marked redelivered.
    """

    users: int
    tokens: int
    destinations: int
    durable_subscriptions: int
    messages: int
    unclean: bool


class SqliteSource:
    """A stopped broker's SQLite database, opened for reading under an exclusive lock.

    Use it as a context manager; the reads run on a worker thread.

    Raises (on entering):
        TransferError: no buzon database in ``data_dir``, a broker is running on it, it
            belongs to another system user, or its schema is not this buzon's.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DATABASE_FILE
        self.stopped_cleanly = True
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> SqliteSource:
        try:
            owner = self.path.stat().st_uid
        except OSError:
            raise TransferError(
                detail=f"no buzon database in {self.data_dir} (give the --data-dir that"
                " buzon serve used)"
            ) from None
        if owner != os.geteuid():
            # the write-ahead log SQLite makes beside it would belong to us
            raise TransferError(
                detail=f"{self.path} belongs to another system user (uid {owner}):"
                " run buzon migrate as that user"
            )
        old_umask = os.umask(0o077)  # the write-ahead log made while reading: 0600
        try:
            self._db = self._connect()
        finally:
            os.umask(old_umask)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=0,
            check_same_thread=False,
        )
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA query_only=ON")
            (version,) = db.execute("PRAGMA user_version").fetchone()  # takes the lock
            self._check_version(version)
            row = db.execute("SELECT value FROM meta WHERE key = 'clean'").fetchone()
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise TransferError(
                    detail=f"{self.path} is in use: a buzon serve is running on"
                    f" {self.data_dir}; stop the broker first, then run buzon migrate again"
                ) from None
            raise TransferError(detail=f"{self.path}: {exc}") from None
        except BaseException:
            db.close()
            raise
        self.stopped_cleanly = row is None or row[0] == "1"
        return db

    def _check_version(self, version: int) -> None:
        newest = migrations()[-1][0]
        if version == 0:
            raise TransferError(detail=f"{self.path} is not a buzon database")
        if version > newest:
            raise TransferError(
                ErrorCode.STORAGE_TOO_NEW,
                f"{self.path} has schema version {version}, this buzon knows up to {newest}:"
                " upgrade buzon",
            )
        if version < newest:
            raise TransferError(
                detail=f"{self.path} has schema version {version} of an older buzon: start"
                f" and stop buzon serve --data-dir {self.data_dir} once with this buzon to"
                " upgrade it, then run buzon migrate again",
            )

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise TransferError(detail="the SQLite database is not open")
        return self._db

    async def _read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connection
        try:
            return await asyncio.to_thread(run, db)
        except sqlite3.Error as exc:
            raise TransferError(detail=f"{self.path}: {exc}") from None

    async def users(self) -> list[UserRecord]:
        return await self._read(
            lambda db: [
                user_record(row)
                for row in db.execute(
                    "SELECT id, name, password_hash, role, disabled, created_at FROM users"
                    " ORDER BY name"
                )
            ]
        )

    async def tokens(self, now: float) -> list[TokenRecord]:
        """Tokens that have not expired at ``now``."""
        return await self._read(
            lambda db: [
                TokenRecord(*row)
                for row in db.execute(
                    "SELECT token_hash, user_id, created_at, expires_at FROM tokens"
                    " WHERE expires_at > ? ORDER BY created_at",
                    (now,),
                )
            ]
        )

    async def destinations(self) -> list[DestinationRecord]:
        return await self._read(
            lambda db: [
                destination_record(row)
                for row in db.execute(
                    "SELECT id, kind, name, owner_id, key_hash, created_at, policy,"
                    " dead_letter_grant, channel_type FROM destinations ORDER BY kind, name"
                )
            ]
        )

    async def durable_subscriptions(self) -> list[DurableSubscriptionRecord]:
        return await self._read(
            lambda db: [
                DurableSubscriptionRecord(*row)
                for row in db.execute(
                    "SELECT id, channel_id, owner_id, name, created_at FROM"
                    " durable_subscriptions ORDER BY channel_id, owner_id, name"
                )
            ]
        )

    async def bindings(self) -> list[BindingRecord]:
        return await self._read(
            lambda db: [
                BindingRecord(*row)
                for row in db.execute(
                    "SELECT channel_id, queue_id, key, owner_id, created_at, channel_grant,"
                    " queue_grant FROM bindings ORDER BY channel_id, queue_id, key"
                )
            ]
        )

    async def count_messages(self) -> int:
        """Persistent messages waiting (spilled transient ones are not counted)."""
        count: int = await self._read(
            lambda db: db.execute("SELECT count(*) FROM messages").fetchone()[0]
        )
        return count

    async def messages_after(
        self, after: tuple[str, int], limit: int, max_bytes: int
    ) -> list[StoredMessage]:
        """The next persistent messages by queue id then seq, past ``(queue_id, seq)``: at
        most ``limit`` and, past the first, about ``max_bytes`` of bodies."""

        def run(db: sqlite3.Connection) -> list[StoredMessage]:
            found: list[StoredMessage] = []
            size = 0
            rows = db.execute(_MESSAGES_AFTER, (*after, limit))
            for row in rows:
                (queue_id, seq, message_id, destination, headers, body) = row[:6]
                expires_at, again, at, level = row[6:]
                found.append(
                    StoredMessage(
                        queue_id,
                        seq,
                        message_id,
                        destination,
                        parse_headers(headers),
                        body,
                        expires_at,
                        bool(again),
                        deliver_at=at,
                        priority=level,
                    )
                )
                size += len(body)
                if size >= max_bytes:
                    break
            rows.close()
            return found

        return await self._read(run)


_MESSAGES_AFTER = (
    "SELECT queue_id, seq, message_id, destination, headers, body, expires_at, redelivered,"
    " deliver_at, priority FROM messages WHERE (queue_id, seq) > (?, ?)"
    " ORDER BY queue_id, seq LIMIT ?"
)


async def copy_to_postgres(
    data_dir: Path,
    url: str,
    *,
    progress: Progress | None = None,
    page: int = PAGE_MESSAGES,
    page_bytes: int = PAGE_BYTES,
) -> Copied:
    """Copy the SQLite store of a stopped broker in ``data_dir`` into the empty PostgreSQL
    database at ``url``; the SQLite store is left as it was.

    Raises:
        TransferError: the source cannot be read (see :class:`SqliteSource`), the target
            already holds buzon data, or the copy failed part-way (the text says how to
            start again).
        StoreError: STORAGE_UNAVAILABLE when the database cannot be reached,
            STORAGE_TOO_NEW.
    """
    with SqliteSource(data_dir) as source:
        users = await source.users()
        tokens = await source.tokens(time.time())
        destinations = await source.destinations()
        durables = await source.durable_subscriptions()
        bindings = await source.bindings()
        total = await source.count_messages()
        target = PostgresStore(url, pool_size=1)
        await target.open()
        try:
            await _refuse_filled(target)
            with _incomplete_copy():
                for user in users:
                    await target.add_user(user)
                for token in tokens:
                    await target.add_token(token)
                for destination in destinations:
                    await target.add_destination(destination)
                for durable in durables:
                    await target.add_durable_subscription(durable)
                for binding in bindings:
                    await target.add_binding(binding)
                messages = await _copy_messages(source, target, total, progress, page, page_bytes)
        finally:
            await target.close()
    return Copied(
        len(users),
        len(tokens),
        len(destinations),
        len(durables),
        messages,
        not source.stopped_cleanly,
    )


async def _refuse_filled(target: PostgresStore) -> None:
    """A database that holds buzon data is never written to (a second copy would
    duplicate it, and a cluster already running there would be overwritten)."""
    users = len(await target.users())
    destinations = len(await target.destinations())
    durables = len(await target.durable_subscriptions())
    messages = sum(count for count, _, _ in (await target.unclaimed()).values())
    if users or destinations or durables or messages:
        raise TransferError(
            detail=f"the PostgreSQL database already holds buzon data (users: {users},"
            f" destinations: {destinations}, durable subscriptions: {durables},"
            f" messages: {messages}): buzon migrate copies only into a new, empty database"
            " (create one, and start no node on it before the copy; if this is what a copy"
            f" that did not finish left, empty it as its owner: DROP SCHEMA {SCHEMA} CASCADE)"
        )


@contextlib.contextmanager
def _incomplete_copy() -> Iterator[None]:
    """Once writing started, a failure leaves part of the data behind: say so."""
    try:
        yield
    except (BuzonError, OSError) as exc:
        raise TransferError(
            detail=f"{exc}; the PostgreSQL database now holds an incomplete copy: empty it"
            f" (as its owner: DROP SCHEMA {SCHEMA} CASCADE) before running buzon migrate again"
        ) from None


async def _copy_messages(
    source: SqliteSource,
    target: PostgresStore,
    total: int,
    progress: Progress | None,
    page: int,
    page_bytes: int,
) -> int:
    """Page by page, reading the next page while the previous one commits."""
    redelivered = not source.stopped_cleanly
    copied = 0
    after = ("", -1)
    pending: tuple[Ticket, int] | None = None
    if progress is not None:
        progress(0, total)
    while True:
        found = await source.messages_after(after, page, page_bytes)
        if pending is not None:
            ticket, count = pending
            await settled(ticket)
            copied += count
            if progress is not None:
                progress(copied, total)
        if not found:
            return copied
        after = (found[-1].queue_id, found[-1].seq)
        if redelivered:
            found = [dataclasses.replace(message, redelivered=True) for message in found]
        pending = target.submit(appends=found), len(found)
