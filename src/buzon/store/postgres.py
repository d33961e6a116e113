"""PostgresStore: the Store contract on PostgreSQL, shared by the nodes of a cluster.

Every node of a cluster opens the same database; everything they share lives there
(``pg_migrations/``): users, tokens, destinations, durable subscriptions, messages, the
nodes themselves and the feed that carries channel messages between nodes.

Writes. The engine's message writes (``submit``, ``spill``), the claims and the other
ticket operations go through one connection, in the order they were made. Message writes
made while a transaction is in flight wait and form the next one (group commit, as the
SQLite store does): one multi-row statement per kind of write (``unnest`` of arrays), one
COMMIT, and one ``NOTIFY`` per transaction naming the queues that got messages any node may
claim (never one per message: NOTIFY serialises commits). A ticket resolves once its
transaction committed, so a RECEIPT means committed in PostgreSQL (replicated too, with a
synchronous standby).

Failures. When the database cannot be reached, a transaction fails as a whole: its tickets
get STORAGE_UNAVAILABLE (a publisher gets an ERROR, never a receipt). Removals, redelivery
marks, schedules and claim releases are idempotent; those of a failed transaction are kept
and go with the next one, so an acknowledgement made during an outage is written once the
database is back. The connection is made again with back-off on the next write.

Claims (see ``broker/claimed_backlog``). A message row with ``claimed_by`` NULL waits for any
node; a node claims the oldest ones with ``FOR UPDATE SKIP LOCKED`` (two nodes never claim
the same row, and neither waits for the other), and releases what it will not deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from buzon.durations import Durations
from buzon.errors import BuzonError, ErrorCode, StoreError
from buzon.store.base import MessageKey, head_of
from buzon.store.migrate import migrations, refuse_newer
from buzon.store.records import (
    BindingRecord,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    NodeRecord,
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
    policy_text,
    user_record,
)
from buzon.store.sqlite_thread import COMMIT_BUCKETS
from buzon.store.tickets import Ticket, settled

log = logging.getLogger("buzon.store")

SCHEMA = "buzon"
"""The schema buzon keeps its tables in (created in the database it is given)."""
MIGRATION_LOCK = 0x62757A6F6E
"""The advisory lock nodes take to migrate: one runs the migrations, the others wait."""
MESSAGES_CHANNEL = "buzon_messages"
"""NOTIFY channel: queue ids that got claimable messages (``*``: look at every queue)."""
FEED_CHANNEL = "buzon_feed"
"""NOTIFY channel: new rows in the channel feed."""
CATALOG_CHANNEL = "buzon_catalog"
"""NOTIFY channel: a user, token, destination or durable subscription changed."""
LEASES_CHANNEL = "buzon_leases"
"""NOTIFY channel: a node asks the node holding HTTP pull leases to settle them, and the
answer (JSON objects naming the node each is for)."""
PING_CHANNEL = "buzon_ping"
"""NOTIFY channel: each node pings itself, to know its listening connection still hears."""
MAX_NOTIFY = 7000
"""Longest payload sent (PostgreSQL's limit is 8000 bytes); past it, ``*``."""
CONNECT_TIMEOUT = 5.0
RECONNECT_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds between attempts to reach the database again (the last repeats)."""
OUTAGE_WAIT = 10.0
"""Seconds a message write waits for an unreachable database before it fails (publishers
get their receipts late instead of errors across a restart or a failover)."""
SLOTS = 1024
"""Node slots: a message seq carries its node's slot in its low 10 bits."""

_MESSAGE_COLUMNS = (
    "queue_id, seq, message_id, destination, headers, body, expires_at, redelivered, persistent,"
    " deliveries, priority, deliver_at"
)


def unavailable(error: BaseException) -> StoreError:
    """A driver or network error as the error callers see."""
    if isinstance(error, StoreError):
        return error
    text = str(error) or type(error).__name__
    return StoreError(ErrorCode.STORAGE_UNAVAILABLE, f"PostgreSQL: {text[:200]}")


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _reachable(error: BaseException) -> bool:
    """Whether a failed write reached the database (it refused the write itself: trying
    again would not help), as opposed to a connection that failed, broke or was shut."""
    return isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )


async def migrate(connection: asyncpg.Connection) -> int:
    """Create the schema and bring it up to date, under an advisory lock: nodes starting at
    once run the migrations one at a time (the first does the work, the others find it
    done). Returns the version.

    Raises:
        StoreError: STORAGE_TOO_NEW when the database is newer than this buzon.
    """
    known = migrations("buzon.store.pg_migrations")
    newest = known[-1][0]
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version"
            " (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await connection.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version"
        )
        refuse_newer(current, newest)
        for version, sql in known:
            if version > current:
                await connection.execute(f"SET LOCAL search_path = {SCHEMA}")
                await connection.execute(sql)
                await connection.execute(
                    f"INSERT INTO {SCHEMA}.schema_version (version) VALUES ($1)", version
                )
    return int(max(current, newest))


@dataclass(slots=True)
class _Batch:
    """Message writes that go to the database in one transaction, with one ticket."""

    appends: list[StoredMessage] = field(default_factory=list)
    claimed: list[bool] = field(default_factory=list)
    removals: list[MessageKey] = field(default_factory=list)
    redelivered: list[MessageKey] = field(default_factory=list)
    schedules: list[tuple[MessageKey, float]] = field(default_factory=list)
    releases: list[tuple[str, int, bool, int]] = field(default_factory=list)
    feed: list[StoredMessage] = field(default_factory=list)
    keys: list[IdempotencyKey] = field(default_factory=list)
    ticket: Ticket = field(default_factory=Ticket)


@dataclass(slots=True)
class _Operation:
    """A ticket operation run on the write connection, in order with the batches."""

    run: Callable[[asyncpg.Connection], Awaitable[Any]]
    ticket: Ticket


class PostgresStore:
    """A :class:`~buzon.store.base.Store` in a PostgreSQL database (schema ``buzon``).

    Args:
        url: ``postgresql://user@host:port/db`` (a password comes best from ``PGPASSWORD``
            or ``~/.pgpass``; ``sslmode`` and the other libpq parameters are honoured).
        pool_size: connections for the calls that are not message writes.

    Attributes:
        node_id: this node's run id, once :meth:`register_node` ran (claims carry it).
    """

    durable = True

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.opened_cleanly = True
        self.commit_durations = Durations(COMMIT_BUCKETS)
        self.node_id: int = 0
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._connection: asyncpg.Connection | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._batch: _Batch | None = None
        self._jobs: list[_Batch | _Operation] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._carried: _Batch = _Batch()  # idempotent writes of failed transactions
        self._size = 0
        self._closing = False

    # -- life ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, start the writer.

        Raises:
            StoreError: STORAGE_UNAVAILABLE (cannot connect), STORAGE_TOO_NEW.
        """
        try:
            connection = await self._connect()
            try:
                await migrate(connection)
            finally:
                await connection.close()
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=OUTAGE_WAIT,
                server_settings=_SETTINGS,
            )
            self._size = await self._pool.fetchval(_SCHEMA_SIZE)
        except _DRIVER_ERRORS as exc:
            await self._close_pool()
            raise unavailable(exc) from None
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Write what is pending, then disconnect."""
        if self._worker is None:
            return
        with contextlib.suppress(BuzonError):
            await settled(self._operation(_nothing))
        self._closing = True
        self._wake.set()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
        if self._connection is not None:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await self._connection.close(timeout=2)
            self._connection = None
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await asyncio.wait_for(pool.close(), 5)

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.url,
            timeout=CONNECT_TIMEOUT,
            command_timeout=OUTAGE_WAIT,  # a path cut without a reset must not hang a write
            server_settings=_SETTINGS,
        )

    def free_space(self) -> tuple[int, int] | None:
        """None: the database's disk is PostgreSQL's to watch (it reports a full disk)."""
        return None

    def size_on_disk(self) -> int | None:
        """The size of buzon's tables and indexes as last measured (at open, then at each
        :meth:`heartbeat`)."""
        return self._size

    # -- the pool ------------------------------------------------------------------------

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self._ready_pool().fetch(query, *args))
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None

    async def _execute(self, query: str, *args: Any) -> str:
        try:
            result: str = await self._ready_pool().execute(query, *args)
            return result
        except asyncpg.UniqueViolationError:
            raise
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None

    def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is not open")
        return self._pool

    async def _notify_catalog(self, what: str) -> None:
        """Tell the other nodes a record changed (they reload it within a second)."""
        await self.notify(CATALOG_CHANNEL, what)

    async def notify(self, channel: str, payload: str) -> None:
        """Send a notification to every node (``payload`` under ``MAX_NOTIFY`` bytes)."""
        await self._execute("SELECT pg_notify($1, $2)", channel, payload)

    # -- users ---------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        try:
            await self._execute(
                "INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6)",
                user.id,
                user.name,
                user.password_hash,
                user.role.value,
                user.disabled,
                user.created_at,
            )
        except asyncpg.UniqueViolationError:
            raise StoreError(ErrorCode.USERNAME_TAKEN, f"{user.name!r} is taken") from None
        # no notification: a new user has no session on any node to check again

    async def user_by_name(self, name: str) -> UserRecord | None:
        rows = await self._fetch(_USERS + " WHERE name = $1", name)
        return user_record(tuple(rows[0])) if rows else None

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        rows = await self._fetch(_USERS + " WHERE id = $1", user_id)
        return user_record(tuple(rows[0])) if rows else None

    async def users(self) -> list[UserRecord]:
        return [user_record(tuple(row)) for row in await self._fetch(_USERS + " ORDER BY name")]

    async def update_user(self, user: UserRecord) -> None:
        result = await self._execute(
            "UPDATE users SET password_hash = $2, role = $3, disabled = $4 WHERE id = $1",
            user.id,
            user.password_hash,
            user.role.value,
            user.disabled,
        )
        if result == "UPDATE 0":
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"no user with id {user.id!r}")
        await self._notify_catalog(f"user:{user.id}")

    async def delete_user(self, user_id: str) -> None:
        result = await self._execute("DELETE FROM users WHERE id = $1", user_id)
        if result == "DELETE 0":
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"no user with id {user_id!r}")
        await self._notify_catalog(f"user:{user_id}")

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        await self._execute(
            "INSERT INTO tokens VALUES ($1, $2, $3, $4)",
            token.token_hash,
            token.user_id,
            token.created_at,
            token.expires_at,
        )

    async def token(self, token_hash: str) -> TokenRecord | None:
        rows = await self._fetch(
            "SELECT token_hash, user_id, created_at, expires_at FROM tokens WHERE token_hash = $1",
            token_hash,
        )
        return TokenRecord(*rows[0]) if rows else None

    async def delete_token(self, token_hash: str) -> None:
        await self._execute("DELETE FROM tokens WHERE token_hash = $1", token_hash)
        await self._notify_catalog(f"token:{token_hash}")

    async def delete_expired_tokens(self, now: float) -> int:
        result = await self._execute("DELETE FROM tokens WHERE expires_at <= $1", now)
        return int(result.split()[-1])

    # -- destinations --------------------------------------------------------------------

    async def add_destination(self, record: DestinationRecord) -> None:
        try:
            await self._execute(
                "INSERT INTO destinations VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                *destination_row(record),
            )
        except asyncpg.UniqueViolationError:
            raise StoreError(
                ErrorCode.DESTINATION_EXISTS, f"{record.kind} {record.name!r} exists"
            ) from None
        await self._notify_catalog("destinations")

    async def destination(self, kind: DestinationKind, name: str) -> DestinationRecord | None:
        rows = await self._fetch(_DESTINATIONS + " WHERE kind = $1 AND name = $2", kind.value, name)
        return destination_record(tuple(rows[0])) if rows else None

    async def destinations(self) -> list[DestinationRecord]:
        rows = await self._fetch(_DESTINATIONS + " ORDER BY kind, name")
        return [destination_record(tuple(row)) for row in rows]

    async def update_destination(self, record: DestinationRecord) -> None:
        await self._execute(
            "UPDATE destinations SET key_hash = $2, policy = $3, dead_letter_grant = $4"
            " WHERE id = $1",
            record.id,
            record.key_hash,
            policy_text(record.policy),
            record.dead_letter_grant,
        )
        await self._notify_catalog("destinations")

    async def delete_destination(self, destination_id: str) -> None:
        """Through the write connection: after the message writes submitted before."""

        async def run(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute("DELETE FROM destinations WHERE id = $1", destination_id)
                await db.execute("DELETE FROM messages WHERE queue_id = $1", destination_id)
                await db.execute("DELETE FROM idempotency_keys WHERE queue_id = $1", destination_id)
                await db.execute(
                    "DELETE FROM bindings WHERE channel_id = $1 OR queue_id = $1", destination_id
                )
                await db.execute("SELECT pg_notify($1, 'destinations')", CATALOG_CHANNEL)

        await settled(self._operation(run))

    # -- bindings ------------------------------------------------------------------------

    async def add_binding(self, record: BindingRecord) -> None:
        await self._execute(
            "INSERT INTO bindings VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (channel_id, queue_id, key) DO UPDATE SET owner_id = $4,"
            " created_at = $5, channel_grant = $6, queue_grant = $7",
            *dataclasses.astuple(record),
        )
        await self._notify_catalog("destinations")

    async def bindings(self) -> list[BindingRecord]:
        rows = await self._fetch(
            "SELECT channel_id, queue_id, key, owner_id, created_at, channel_grant, queue_grant"
            " FROM bindings ORDER BY channel_id, queue_id, key"
        )
        return [BindingRecord(*row) for row in rows]

    async def delete_binding(self, channel_id: str, queue_id: str, key: str) -> None:
        await self._execute(
            "DELETE FROM bindings WHERE channel_id = $1 AND queue_id = $2 AND key = $3",
            channel_id,
            queue_id,
            key,
        )
        await self._notify_catalog("destinations")

    # -- durable subscriptions -----------------------------------------------------------

    async def add_durable_subscription(self, record: DurableSubscriptionRecord) -> None:
        try:
            await self._execute(
                "INSERT INTO durable_subscriptions VALUES ($1, $2, $3, $4, $5)",
                record.id,
                record.channel_id,
                record.owner_id,
                record.name,
                record.created_at,
            )
        except asyncpg.UniqueViolationError:
            raise StoreError(
                ErrorCode.DESTINATION_EXISTS, f"durable subscription {record.name!r} exists"
            ) from None
        await self._notify_catalog("destinations")

    async def durable_subscriptions(self) -> list[DurableSubscriptionRecord]:
        rows = await self._fetch(
            "SELECT id, channel_id, owner_id, name, created_at FROM durable_subscriptions"
            " ORDER BY channel_id, owner_id, name"
        )
        return [DurableSubscriptionRecord(*row) for row in rows]

    async def delete_durable_subscription(self, subscription_id: str) -> None:
        async def run(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute("DELETE FROM durable_subscriptions WHERE id = $1", subscription_id)
                await db.execute("DELETE FROM messages WHERE queue_id = $1", subscription_id)
                await db.execute("SELECT pg_notify($1, 'destinations')", CATALOG_CHANNEL)

        await settled(self._operation(run))

    # -- messages: the write connection ---------------------------------------------------

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        """Queue message writes (see :meth:`MessageLog.submit`): they commit with the other
        writes made until the transaction in flight ends."""
        batch = self._pending_batch()
        batch.appends.extend(appends)
        batch.claimed.extend(message.claimed for message in appends)
        batch.removals.extend(removals)
        batch.redelivered.extend(redelivered)
        batch.schedules.extend(schedules)
        batch.keys.extend(keys)
        return batch.ticket

    def spill(self, messages: Sequence[StoredMessage]) -> Ticket:
        """Transient messages go to the same table, marked not persistent."""
        batch = self._pending_batch()
        batch.appends.extend(messages)
        batch.claimed.extend(message.claimed for message in messages)
        return batch.ticket

    def release(self, keys: Sequence[tuple[str, int, bool, int]]) -> Ticket:
        """Give claimed messages back to every node: ``(queue_id, seq, redelivered,
        deliveries)``; they are ready (a node releases only what it held for consumers),
        so a ``deliver_at`` they kept from their schedule is cleared."""
        batch = self._pending_batch()
        batch.releases.extend(keys)
        return batch.ticket

    def feed(self, channel_id: str, message: StoredMessage) -> Ticket:
        """Send a channel message to the subscribers of the other nodes."""
        batch = self._pending_batch()
        batch.feed.append(message)
        return batch.ticket

    def _pending_batch(self) -> _Batch:
        batch = self._batch
        if batch is None:
            if self._worker is None:
                raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is not open")
            batch = self._batch = _Batch()
            self._wake.set()
        return batch

    def _operation(self, run: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Ticket:
        """Run ``run`` on the write connection after everything submitted before it."""
        ticket = Ticket()
        if self._worker is None:
            ticket.resolve(StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store is not open"))
            return ticket
        if self._batch is not None:
            self._jobs.append(self._batch)
            self._batch = None
        self._jobs.append(_Operation(run, ticket))
        self._wake.set()
        return ticket

    async def _work(self) -> None:
        """The writer: batches and operations, one at a time, in order. While one runs,
        the message writes submitted meanwhile grow the next batch (group commit)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                if self._jobs:
                    job = self._jobs.pop(0)
                elif self._batch is not None:
                    job, self._batch = self._batch, None
                else:
                    break
                if isinstance(job, _Batch):
                    job.ticket.resolve(await self._commit(job))
                else:
                    await self._run(job)

    async def _writer(self) -> asyncpg.Connection:
        """The write connection, made again (with back-off) after a failure."""
        connection = self._connection
        if connection is not None and not connection.is_closed():
            return connection
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, "PostgreSQL is unreachable")
        try:
            connection = self._connection = await self._connect()
        except _DRIVER_ERRORS as exc:
            pause = RECONNECT_BACKOFF[min(self._failures, len(RECONNECT_BACKOFF) - 1)]
            self._failures += 1
            self._retry_at = time.monotonic() + pause
            raise unavailable(exc) from None
        if self._failures:
            log.info("connected to PostgreSQL again")
        self._failures = 0
        return connection

    def _lost(self, error: BaseException) -> StoreError:
        """A write failed: drop the connection if it broke; the error its tickets get."""
        connection = self._connection
        if connection is not None and (
            connection.is_closed() or not isinstance(error, asyncpg.PostgresError)
        ):
            connection.terminate()
            self._connection = None
        if self._failures == 0:
            log.warning("a PostgreSQL write failed: %s", error)
        return unavailable(error)

    async def _run(self, job: _Operation) -> None:
        try:
            connection = await self._writer()
            result = await job.run(connection)
        except asyncio.CancelledError:
            job.ticket.resolve(StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store closed"))
            raise
        except (*_DRIVER_ERRORS, StoreError) as exc:
            job.ticket.resolve(self._lost(exc))
            return
        except Exception as exc:  # the writer must outlive anything one job raises
            log.exception("a PostgreSQL operation failed unexpectedly")
            job.ticket.resolve(self._lost(exc))
            return
        job.ticket.resolve(result=result)

    async def _commit(self, batch: _Batch) -> StoreError | None:
        """Write a batch; return why it failed, or None. When the database cannot be
        reached, try again for up to ``OUTAGE_WAIT`` seconds (a restart, a failover)
        before failing the batch: its writers wait instead of getting errors. A retry
        cannot know whether the lost attempt committed, so it skips rows already there."""
        carried, self._carried = self._carried, _Batch()
        batch.removals.extend(carried.removals)
        batch.redelivered.extend(carried.redelivered)
        batch.schedules[:0] = carried.schedules  # older: this batch's own ones win
        batch.releases.extend(carried.releases)
        deadline = time.monotonic() + OUTAGE_WAIT
        retry = False
        while True:
            started = time.perf_counter()
            try:
                connection = await self._writer()
                await _write(connection, batch, self.node_id, retry=retry)
                self.commit_durations.record(time.perf_counter() - started)
                return None
            except asyncio.CancelledError:
                batch.ticket.resolve(StoreError(ErrorCode.STORAGE_UNAVAILABLE, "the store closed"))
                raise
            except Exception as exc:  # a batch's failure, whatever it is, fails that batch
                unexpected = not isinstance(exc, (*_DRIVER_ERRORS, StoreError))
                if unexpected:
                    log.exception("a PostgreSQL write failed unexpectedly")
                error = self._lost(exc)
                if unexpected or _reachable(exc) or time.monotonic() >= deadline or self._closing:
                    kept = self._carried
                    kept.removals.extend(batch.removals)
                    kept.redelivered.extend(batch.redelivered)
                    kept.schedules.extend(batch.schedules)
                    kept.releases.extend(batch.releases)
                    return error
                retry = True
                await asyncio.sleep(max(0.05, self._retry_at - time.monotonic()))

    # -- messages: reads and ranged operations -------------------------------------------

    async def messages(self) -> list[StoredMessage]:
        async def run(db: asyncpg.Connection) -> list[StoredMessage]:
            rows = await db.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE persistent ORDER BY queue_id, seq"
            )
            return [_stored(row) for row in rows]

        result: list[StoredMessage] = await settled(self._operation(run))
        return result

    async def idempotency_keys(self, now: float) -> list[IdempotencyKey]:
        async def run(db: asyncpg.Connection) -> list[IdempotencyKey]:
            rows = await db.fetch(
                "SELECT queue_id, key, message_id, expires_at FROM idempotency_keys"
                " WHERE expires_at > $1 ORDER BY queue_id, expires_at",
                now,
            )
            return [IdempotencyKey(*row) for row in rows]

        result: list[IdempotencyKey] = await settled(self._operation(run))
        return result

    async def prune_idempotency_keys(self, now: float, limit: int) -> int:
        result = await self._execute(
            "DELETE FROM idempotency_keys WHERE (queue_id, key) IN (SELECT queue_id, key"
            " FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
            now,
            limit,
        )
        return int(result.split()[-1])

    async def backlogs(self, limit: int, max_bytes: int) -> list[StoredBacklog]:
        """Each queue's head per priority, and its soonest scheduled messages with the
        first of them; queue ids are found by skipping through the primary key, scheduled
        messages through their own index (and counted there: one aggregate per queue, their
        bodies' sizes, not their bodies)."""

        async def run(db: asyncpg.Connection) -> list[StoredBacklog]:
            found: list[StoredBacklog] = []
            queue_id = ""
            while True:
                queue_id = await db.fetchval(
                    "SELECT queue_id FROM messages WHERE queue_id > $1 ORDER BY queue_id LIMIT 1",
                    queue_id,
                )
                if queue_id is None:
                    return found
                levels = await db.fetch(
                    "SELECT priority, max(seq) FROM messages WHERE queue_id = $1"
                    " GROUP BY priority ORDER BY priority DESC",
                    queue_id,
                )
                first = len(found)
                for priority, high in levels:
                    level, values = _level(priority, 5)
                    rows = await db.fetch(
                        _RANGE.format(level=level), queue_id, -1, high, limit + 1, *values
                    )
                    stored = [_stored(row) for row in rows]
                    head = head_of(stored, limit, max_bytes)
                    more = len(head) < len(stored)
                    found.append(StoredBacklog(queue_id, head, high, more, priority=priority))
                [(count, size)] = await db.fetch(_SCHEDULED_TOTAL, queue_id)
                if count:
                    rows = await db.fetch(_SCHEDULED, queue_id, limit)
                    found[first] = dataclasses.replace(
                        found[first],
                        scheduled=head_of([_stored(row) for row in rows], limit, max_bytes),
                        scheduled_count=count,
                        scheduled_bytes=int(size),
                    )

        result: list[StoredBacklog] = await settled(self._operation(run))
        return result

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
        level, values = _level(priority, 5)

        async def run(db: asyncpg.Connection) -> Page:
            rows = await db.fetch(_RANGE.format(level=level), queue_id, after, upto, limit, *values)
            found = [_stored(row) for row in rows]
            page = head_of(found, limit, max_bytes)
            spilled = [m.seq for m in page if not m.persistent]
            if spilled:
                await db.execute(
                    "DELETE FROM messages WHERE queue_id = $1 AND seq = any($2::bigint[])",
                    queue_id,
                    spilled,
                )
            return Page(page, len(page) == len(found) and len(found) < limit)

        return self._operation(run)

    def count_tail(
        self, queue_id: str, after: int, upto: int, limit: int, *, priority: int | None = None
    ) -> Ticket:
        level, values = _level(priority, 5)

        async def run(db: asyncpg.Connection) -> TailCount:
            row = await db.fetchrow(
                _COUNT.format(level=level), queue_id, after, upto, limit, *values
            )
            count, size, last, first = tuple(row) if row is not None else (0, 0, None, None)
            return TailCount(count, int(size), after if last is None else last, first)

        return self._operation(run)

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
        level, values = _level(priority, 6)
        first_level, _ = _level(priority, 4)

        async def run(db: asyncpg.Connection) -> tuple[list[StoredMessage], float | None]:
            async with db.transaction():
                rows = await db.fetch(
                    _EXPIRE_RANGE.format(level=level), queue_id, now, after, upto, limit, *values
                )
                first = await db.fetchval(
                    _FIRST_EXPIRY.format(level=first_level), queue_id, after, upto, *values
                )
            return sorted((_stored(row) for row in rows), key=lambda m: m.seq), first

        return self._operation(run)

    def purge_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        keep: Sequence[int],
        *,
        priority: int | None = None,
    ) -> Ticket:
        kept = list(keep)
        level, values = _level(priority, 5)

        async def run(db: asyncpg.Connection) -> None:
            await db.execute(
                "DELETE FROM messages WHERE queue_id = $1 AND seq > $2 AND seq <= $3"
                f" AND deliver_at IS NULL AND NOT seq = any($4::bigint[]){level}",
                queue_id,
                after,
                upto,
                kept,
                *values,
            )

        return self._operation(run)

    def read_scheduled(self, queue_id: str, after: tuple[float, int] | None, limit: int) -> Ticket:
        """The scheduled messages of a queue this node holds (see :class:`ClaimLog`), one
        range of their index."""
        node = self.node_id

        async def run(db: asyncpg.Connection) -> list[StoredMessage]:
            if after is None:
                rows = await db.fetch(_HELD_SCHEDULED, queue_id, node, limit)
            else:
                rows = await db.fetch(_HELD_SCHEDULED_AFTER, queue_id, node, *after, limit)
            return [_stored(row) for row in rows]

        return self._operation(run)

    def purge_scheduled(self, queue_id: str, after: tuple[float, int] | None) -> Ticket:
        """Delete scheduled messages of a queue this node holds (never another node's)."""
        node = self.node_id

        async def run(db: asyncpg.Connection) -> None:
            if after is None:
                await db.execute(_PURGE_HELD_SCHEDULED, queue_id, node)
            else:
                await db.execute(_PURGE_HELD_SCHEDULED + _AFTER_PLACE, queue_id, node, *after)

        return self._operation(run)

    # -- claims (see broker/claimed_backlog) ----------------------------------------------

    def claim(self, queue_id: str, limit: int, max_bytes: int) -> Ticket:
        """Claim the oldest unclaimed messages of a queue for this node (at most ``limit``,
        and past the first ``max_bytes`` of bodies); the result is a :class:`Page` whose
        ``exhausted`` says none were left. Expired ones are claimed too: the queue retires
        them (to its dead-letter queue)."""
        node = self.node_id

        async def run(db: asyncpg.Connection) -> Page:
            rows = await db.fetch(_CLAIM, queue_id, limit, node, max_bytes)
            found = sorted((_stored(row) for row in rows), key=lambda m: m.seq)
            return Page(found, len(found) < limit and sum(len(m.body) for m in found) < max_bytes)

        return self._operation(run)

    def claim_scheduled(self, queue_id: str, limit: int) -> Ticket:
        """Claim for this node up to ``limit`` scheduled messages of a queue that no node
        holds (a node that held them died or left), earliest ``deliver_at`` first; the
        result is a :class:`Page` of them, by seq, ``deliver_at`` kept (the node arms a
        timer for each), whose ``exhausted`` says none were left. :meth:`claim` never
        takes a scheduled message."""
        node = self.node_id

        async def run(db: asyncpg.Connection) -> Page:
            rows = await db.fetch(_CLAIM_SCHEDULED, queue_id, limit, node)
            found = sorted((_stored(row) for row in rows), key=lambda m: m.seq)
            return Page(found, len(found) < limit)

        return self._operation(run)

    def expire_unclaimed(self, queue_id: str, now: float, limit: int) -> Ticket:
        """Delete up to ``limit`` unclaimed messages of a queue whose time has come (any node
        may, each row once: SKIP LOCKED); the result is them, oldest first, and the earliest
        ``expires_at`` left unclaimed, as a tuple."""

        async def run(db: asyncpg.Connection) -> tuple[list[StoredMessage], float | None]:
            async with db.transaction():
                rows = await db.fetch(_EXPIRE_UNCLAIMED, queue_id, now, limit)
                first = await db.fetchval(
                    "SELECT min(expires_at) FROM messages WHERE queue_id = $1"
                    " AND claimed_by IS NULL AND expires_at IS NOT NULL AND deliver_at IS NULL",
                    queue_id,
                )
            return sorted((_stored(row) for row in rows), key=lambda m: m.seq), first

        return self._operation(run)

    def purge_unclaimed(self, queue_id: str) -> Ticket:
        """Delete every unclaimed message of a queue; the result is how many."""

        async def run(db: asyncpg.Connection) -> int:
            result: str = await db.execute(
                "DELETE FROM messages WHERE queue_id = $1 AND claimed_by IS NULL"
                " AND deliver_at IS NULL",
                queue_id,
            )
            return int(result.split()[-1])

        return self._operation(run)

    def trim_unclaimed(self, queue_id: str, keep: int) -> Ticket:
        """Under a lock on the queue (nodes trimming at once would each drop the excess),
        drop its oldest unclaimed messages beyond ``keep`` stored ones."""

        async def run(db: asyncpg.Connection) -> list[StoredMessage]:
            async with db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", queue_id)
                rows = await db.fetch(_TRIM_UNCLAIMED, queue_id, keep)
            return sorted((_stored(row) for row in rows), key=lambda m: m.seq)

        return self._operation(run)

    def move(self, old_queue_id: str, new_queue_id: str) -> Ticket:
        """Give a queue's messages to another queue id, after the writes made before (so
        none written under the old id is left behind)."""

        async def run(db: asyncpg.Connection) -> None:
            await db.execute(
                "WITH moved AS (UPDATE messages SET queue_id = $2 WHERE queue_id = $1)"
                " SELECT pg_notify($3, $2)",
                old_queue_id,
                new_queue_id,
                MESSAGES_CHANNEL,
            )

        return self._operation(run)

    async def peek_unclaimed(self, queue_id: str, limit: int, now: float) -> list[StoredMessage]:
        """The next unclaimed, unexpired messages of a queue (highest priority first, then
        oldest), left where they are."""
        rows = await self._fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE queue_id = $1 AND claimed_by IS NULL"
            " AND deliver_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
            " ORDER BY priority DESC, seq LIMIT $3",
            queue_id,
            now,
            limit,
        )
        return [_stored(row) for row in rows]

    async def unclaimed(self) -> dict[str, tuple[int, int, float | None]]:
        """Per queue with unclaimed messages: how many, their body bytes, and the earliest
        ``expires_at`` among them."""
        rows = await self._fetch(
            "SELECT queue_id, count(*), sum(length(body)), min(expires_at) FROM messages"
            " WHERE claimed_by IS NULL AND deliver_at IS NULL GROUP BY queue_id"
        )
        return {row[0]: (row[1], int(row[2]), row[3]) for row in rows}

    async def unheld_scheduled(self) -> set[str]:
        """The queues with scheduled messages no node holds (see :meth:`claim_scheduled`),
        found through an index of those rows alone (empty but for a while after a node
        stops, or after ``buzon migrate``)."""
        rows = await self._fetch(
            "SELECT DISTINCT queue_id FROM messages"
            " WHERE claimed_by IS NULL AND deliver_at IS NOT NULL"
        )
        return {row[0] for row in rows}

    # -- nodes -----------------------------------------------------------------------------

    async def register_node(self, name: str, listeners: Sequence[str]) -> tuple[int, int, int]:
        """Join the cluster: a new run id, a free slot, and the lowest seq this run may use
        (above anything an earlier run in that slot numbered). Returns ``(id, slot, seq)``."""
        try:
            async with self._ready_pool().acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK + 1)
                used = {
                    row[0]
                    for row in await db.fetch("SELECT slot FROM nodes WHERE stopped_at IS NULL")
                }
                slot = next((n for n in range(SLOTS) if n not in used), None)
                if slot is None:
                    raise StoreError(ErrorCode.STORAGE_UNAVAILABLE, f"more than {SLOTS} nodes")
                high = await db.fetchval(
                    "SELECT coalesce(max(seq_high), 0) FROM nodes WHERE slot = $1", slot
                )
                node_id = await db.fetchval(
                    "INSERT INTO nodes (name, slot, listeners) VALUES ($1, $2, $3) RETURNING id",
                    name,
                    slot,
                    json.dumps(list(listeners)),
                )
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None
        self.node_id = node_id
        return node_id, slot, high

    async def heartbeat(self, connections: int, seq_high: int) -> None:
        """Say this node is alive (and how busy); also re-measures the schema's size.

        Raises:
            StoreError: STORAGE_UNAVAILABLE; NODE_STOPPED-like STORAGE_UNAVAILABLE when the
                others declared this node dead (it must drop what it claimed).
        """
        try:
            async with self._ready_pool().acquire() as db:
                alive = await db.fetchval(
                    "UPDATE nodes SET heartbeat_at = now(), connections = $2, seq_high = $3"
                    " WHERE id = $1 AND stopped_at IS NULL RETURNING true",
                    self.node_id,
                    connections,
                    seq_high,
                )
                self._size = await db.fetchval(_SCHEMA_SIZE)
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None
        if not alive:
            raise StoreError(
                ErrorCode.STORAGE_UNAVAILABLE, "the other nodes declared this node dead"
            )

    async def reap(self, silence: float) -> list[int]:
        """Declare dead the nodes silent for ``silence`` seconds and give their claimed
        messages back to every node, marked redelivered; return the dead nodes' ids."""
        try:
            async with self._ready_pool().acquire() as db, db.transaction():
                dead = [
                    row[0]
                    for row in await db.fetch(
                        "UPDATE nodes SET stopped_at = now() WHERE stopped_at IS NULL"
                        " AND heartbeat_at < now() - make_interval(secs => $1) RETURNING id",
                        silence,
                    )
                ]
                # Whether each was delivered there is not known: redelivered, but only
                # deliveries counted at a release count. A scheduled one whose time has
                # not come cannot have been: it keeps its mark and its deliver_at, and
                # waits for that time on the node that takes it (claim_scheduled). Every
                # stopped run's, not only the ones found dead now: a run declared dead may
                # still claim until it learns it (its next heartbeat), and nothing else
                # would ever free those.
                freed = await db.execute(
                    f"UPDATE messages SET {_LET_GO}, redelivered = redelivered"
                    " OR deliver_at IS NULL OR deliver_at <= extract(epoch FROM now())"
                    " WHERE claimed_by IN (SELECT id FROM nodes WHERE stopped_at IS NOT NULL)"
                )
                if dead or freed != "UPDATE 0":
                    await db.execute("SELECT pg_notify($1, '*')", MESSAGES_CHANNEL)
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None
        return dead

    async def leave(self) -> None:
        """A clean stop: give back what this node claimed and say it stopped."""

        async def run(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute(
                    f"UPDATE messages SET {_LET_GO} WHERE claimed_by = $1", self.node_id
                )
                await db.execute("UPDATE nodes SET stopped_at = now() WHERE id = $1", self.node_id)
                await db.execute("SELECT pg_notify($1, '*')", MESSAGES_CHANNEL)

        await settled(self._operation(run))

    async def nodes(self) -> list[NodeRecord]:
        """Every node run that is alive, and those that stopped in the last hour."""
        rows = await self._fetch(
            "SELECT id, name, listeners, extract(epoch FROM started_at),"
            " extract(epoch FROM heartbeat_at), connections, stopped_at IS NULL FROM nodes"
            " WHERE stopped_at IS NULL OR stopped_at > now() - interval '1 hour'"
            " ORDER BY name, id"
        )
        return [
            NodeRecord(
                row[0],
                row[1],
                tuple(json.loads(row[2])),
                float(row[3]),
                float(row[4]),
                row[5],
                row[6],
            )
            for row in rows
        ]

    # -- the channel feed -------------------------------------------------------------------

    async def read_feed(
        self, origin: int | None, first: int, last: int, limit: int
    ) -> list[tuple[int, int, str, StoredMessage]]:
        """Feed rows of node run ``origin`` (None: of any other node) with ids from ``first``
        to ``last``, oldest first, at most ``limit``: ``(id, origin, channel_id, message)``.
        """
        rows = await self._fetch(
            "SELECT id, origin, channel_id, message_id, destination, headers, body, expires_at"
            " FROM channel_feed WHERE id >= $1 AND id <= $2"
            " AND (origin = $3 OR ($3 IS NULL AND origin <> $4)) ORDER BY id LIMIT $5",
            first,
            last,
            origin,
            self.node_id,
            limit,
        )
        return [
            (
                row[0],
                row[1],
                row[2],
                StoredMessage(
                    row[2], 0, row[3], row[4], parse_headers(row[5]), row[6], row[7], False, False
                ),
            )
            for row in rows
        ]

    async def feed_position(self) -> int:
        """The id of the newest feed row (a node starts reading after it)."""
        rows = await self._fetch("SELECT coalesce(max(id), 0) FROM channel_feed")
        position: int = rows[0][0]
        return position

    async def trim_feed(self, age: float) -> None:
        """Forget feed rows older than ``age`` seconds (one node at a time does it: the
        others find the lock taken and skip their turn)."""
        try:
            async with self._ready_pool().acquire() as db, db.transaction():
                if await db.fetchval("SELECT pg_try_advisory_xact_lock($1)", MIGRATION_LOCK + 2):
                    await db.execute(
                        "DELETE FROM channel_feed"
                        " WHERE created_at < now() - make_interval(secs => $1)",
                        age,
                    )
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None

    async def listen(self, callback: Callable[[str, str], None]) -> asyncpg.Connection:
        """A connection that calls ``callback(channel, payload)`` for every notification of
        the cluster's channels (the caller closes it; a broken one is made again by the
        caller)."""
        try:
            connection = await self._connect()
            for channel in (
                MESSAGES_CHANNEL,
                FEED_CHANNEL,
                CATALOG_CHANNEL,
                LEASES_CHANNEL,
                PING_CHANNEL,
            ):
                await connection.add_listener(
                    channel, lambda _c, _p, chan, payload: callback(chan, payload)
                )
        except _DRIVER_ERRORS as exc:
            raise unavailable(exc) from None
        return connection


async def set_password_hash(url: str, name: str, password_hash: str) -> int:
    """Give user ``name`` a new password hash and delete every token of theirs, in one
    transaction, from outside any node (``buzon user set-password --database-url``); the
    nodes are told, and close the connections that logged in with those tokens. Returns
    how many tokens were deleted.

    Raises:
        StoreError: STORAGE_UNAVAILABLE, USER_NOT_FOUND.
    """
    try:
        connection = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, server_settings=_SETTINGS)
    except _DRIVER_ERRORS as exc:
        raise unavailable(exc) from None
    try:
        async with connection.transaction():
            user_id = await connection.fetchval(
                "UPDATE users SET password_hash = $2 WHERE name = $1 RETURNING id",
                name,
                password_hash,
            )
            if user_id is None:
                raise StoreError(ErrorCode.USER_NOT_FOUND, f"no user {name[:64]!r}")
            tokens = await connection.fetch(
                "DELETE FROM tokens WHERE user_id = $1 RETURNING token_hash", user_id
            )
            for (token_hash,) in tokens:
                await connection.execute(
                    "SELECT pg_notify($1, $2)", CATALOG_CHANNEL, f"token:{token_hash}"
                )
            await connection.execute("SELECT pg_notify($1, $2)", CATALOG_CHANNEL, f"user:{user_id}")
    except asyncpg.UndefinedTableError:
        raise StoreError(
            ErrorCode.STORAGE_UNAVAILABLE, "no buzon schema in that database (start a node once)"
        ) from None
    except _DRIVER_ERRORS as exc:
        raise unavailable(exc) from None
    finally:
        await connection.close()
    return len(tokens)


async def _nothing(db: asyncpg.Connection) -> None:
    """An operation that only waits for the ones before it."""


class _Statement:
    """One SQL statement made of data-modifying WITH parts and a final SELECT: a whole
    batch in one round trip, atomic without BEGIN and COMMIT of its own."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._parts: list[str] = []
        self._selects: list[str] = []

    def _names(self, values: Sequence[Any]) -> list[str]:
        names = []
        for value in values:
            self.args.append(value)
            names.append(f"${len(self.args)}")
        return names

    def modify(self, template: str, values: Sequence[Any]) -> str:
        """Add a part: ``template`` with ``{0}``, ``{1}``... for its values; return its name
        (for a part whose ``RETURNING`` rows the final SELECT reads)."""
        name = f"w{len(self._parts)}"
        self._parts.append(f"{name} AS ({template.format(*self._names(values))})")
        return name

    def notify(self, channel: str, payload: str) -> None:
        first, second = self._names((channel, payload))
        self._selects.append(f"pg_notify({first}, {second})")

    def notify_ids(self, channel: str, prefix: str, part: str) -> None:
        """Notify ``prefix:first:last``: the id range of the rows ``part`` inserted."""
        first, second = self._names((channel, prefix))
        self._selects.append(
            f"pg_notify({first}, {second} || ':' || (SELECT min(id) FROM {part})"
            f" || ':' || (SELECT max(id) FROM {part}))"
        )

    @property
    def text(self) -> str:
        head = f"WITH {', '.join(self._parts)} " if self._parts else ""
        return f"{head}SELECT {', '.join(self._selects) or '1'}"


async def _write(
    connection: asyncpg.Connection, batch: _Batch, node: int, *, retry: bool = False
) -> None:
    """One batch as one statement, notifications included (they go out at its commit);
    ``retry``: an earlier attempt may have committed, rows already there are skipped."""
    statement = _Statement()
    notify: set[str] = set()
    # appended and removed in the same batch: neither needs doing
    both = {(m.queue_id, m.seq) for m in batch.appends}.intersection(batch.removals)
    removed = set(batch.removals) - both
    appends = [
        (message, claimed)
        for message, claimed in zip(batch.appends, batch.claimed, strict=True)
        if not both or (message.queue_id, message.seq) not in both
    ]
    # The parts of one statement do not see each other's rows, and a row two parts change
    # gets only one of the changes: each key is written by one part. Removals win (as in
    # the order of submit: a key removed and scheduled in one batch stays removed); a
    # schedule marks too (the last one of a key wins); marks and schedules of messages
    # appended in the same batch go into their rows.
    schedules = {key: at for key, at in batch.schedules if key not in removed}
    marks = set(batch.redelivered).difference(removed, schedules)
    if appends:
        rows = [
            _row(message, node if claimed else None, marks, schedules)
            for message, claimed in appends
        ]
        statement.modify(_INSERT + (" ON CONFLICT DO NOTHING" if retry else ""), _columns(rows, 13))
        notify.update(message.queue_id for message, claimed in appends if not claimed)
        for message, _ in appends:
            key = (message.queue_id, message.seq)
            marks.discard(key)
            schedules.pop(key, None)
    if batch.keys:
        # one row per (queue, key), the latest (ON CONFLICT cannot touch a row twice)
        latest = {(k.queue_id, k.key): k for k in batch.keys}
        rows = [(k.queue_id, k.key, k.message_id, k.expires_at) for k in latest.values()]
        statement.modify(_UPSERT_IDEMPOTENCY_KEYS, _columns(rows, 4))
    if removed:
        statement.modify(_DELETE_KEYS, _columns(sorted(removed), 2))
    if marks:
        statement.modify(_MARK_KEYS, _columns(sorted(marks), 2))
    if schedules:
        rows = [(queue_id, seq, at) for (queue_id, seq), at in sorted(schedules.items())]
        statement.modify(_SCHEDULE_KEYS, _columns(rows, 3))
    if batch.releases:
        statement.modify(_RELEASE_KEYS, [*_columns(batch.releases, 4), node])
        notify.update(queue_id for queue_id, _, _, _ in batch.releases)
    if batch.feed:
        rows = [_feed_row(message, node) for message in batch.feed]
        part = statement.modify(_FEED_INSERT, _columns(rows, 7))
        # the other nodes read exactly these rows: ids of concurrent commits interleave,
        # so "everything after the last id seen" could skip a row committed late
        statement.notify_ids(FEED_CHANNEL, str(node), part)
    if notify:
        payload = ",".join(sorted(notify))
        statement.notify(MESSAGES_CHANNEL, "*" if len(payload) > MAX_NOTIFY else payload)
    await connection.execute(statement.text, *statement.args)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one array per column (what ``unnest`` takes: one statement for them all)."""
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _feed_row(message: StoredMessage, node: int) -> tuple[Any, ...]:
    """A channel message as a feed row; its ``queue_id`` carries the channel id."""
    return (
        node,
        message.queue_id,
        message.message_id,
        message.destination,
        headers_text(message.headers),
        message.body,
        message.expires_at,
    )


def _row(
    message: StoredMessage,
    claimed_by: int | None,
    marks: set[MessageKey],
    schedules: dict[MessageKey, float],
) -> tuple[Any, ...]:
    """The columns of an appended message, with the mark or schedule the same batch gave
    it."""
    key = (message.queue_id, message.seq)
    return (
        message.queue_id,
        message.seq,
        message.message_id,
        message.destination,
        headers_text(message.headers),
        message.body,
        message.expires_at,
        message.redelivered or key in marks or key in schedules,
        message.persistent,
        message.deliveries,
        message.priority,
        schedules.get(key, message.deliver_at),
        claimed_by,
    )


def _stored(row: asyncpg.Record) -> StoredMessage:
    return StoredMessage(
        row[0],
        row[1],
        row[2],
        row[3],
        parse_headers(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        deliveries=row[9],
        priority=row[10],
        deliver_at=row[11],
    )


_SETTINGS = {"search_path": SCHEMA, "application_name": "buzon"}
_USERS = "SELECT id, name, password_hash, role, disabled, created_at FROM users"
_DESTINATIONS = (
    "SELECT id, kind, name, owner_id, key_hash, created_at, policy, dead_letter_grant,"
    " channel_type FROM destinations"
)
_SCHEMA_SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
    f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{SCHEMA}'"
    " AND c.relkind = 'r'"
)
# Parts of a batch's statement (see _Statement): {n} are its values, as arrays.
_INSERT = (
    f"INSERT INTO messages ({_MESSAGE_COLUMNS}, claimed_by)"
    " SELECT * FROM unnest({0}::text[], {1}::bigint[], {2}::text[], {3}::text[], {4}::text[],"
    " {5}::bytea[], {6}::float8[], {7}::bool[], {8}::bool[], {9}::int[], {10}::smallint[],"
    " {11}::float8[], {12}::bigint[])"
)
_UPSERT_IDEMPOTENCY_KEYS = (
    "INSERT INTO idempotency_keys (queue_id, key, message_id, expires_at)"
    " SELECT * FROM unnest({0}::text[], {1}::text[], {2}::text[], {3}::float8[])"
    " ON CONFLICT (queue_id, key) DO UPDATE"
    " SET message_id = excluded.message_id, expires_at = excluded.expires_at"
)
_FEED_INSERT = (
    "INSERT INTO channel_feed"
    " (origin, channel_id, message_id, destination, headers, body, expires_at)"
    " SELECT * FROM unnest({0}::bigint[], {1}::text[], {2}::text[], {3}::text[], {4}::text[],"
    " {5}::bytea[], {6}::float8[]) RETURNING id"
)
_DELETE_KEYS = (
    "DELETE FROM messages m USING unnest({0}::text[], {1}::bigint[]) AS k(queue_id, seq)"
    " WHERE m.queue_id = k.queue_id AND m.seq = k.seq"
)
_MARK_KEYS = (
    "UPDATE messages m SET redelivered = true"
    " FROM unnest({0}::text[], {1}::bigint[]) AS k(queue_id, seq)"
    " WHERE m.queue_id = k.queue_id AND m.seq = k.seq"
)
# A node lets go of messages it claimed (it stopped, or died): the ones whose time has come
# are ready for any node; the others stay scheduled (see PostgresStore.claim_scheduled).
_LET_GO = (
    "claimed_by = NULL,"
    " deliver_at = CASE WHEN deliver_at > extract(epoch FROM now()) THEN deliver_at END"
)
_SCHEDULE_KEYS = (
    "UPDATE messages m SET deliver_at = k.deliver_at, redelivered = true"
    " FROM unnest({0}::text[], {1}::bigint[], {2}::float8[]) AS k(queue_id, seq, deliver_at)"
    " WHERE m.queue_id = k.queue_id AND m.seq = k.seq"
)
_RELEASE_KEYS = (
    "UPDATE messages m SET claimed_by = NULL, deliver_at = NULL,"
    " redelivered = m.redelivered OR k.again,"
    " deliveries = k.deliveries"
    " FROM unnest({0}::text[], {1}::bigint[], {2}::bool[], {3}::int[])"
    " AS k(queue_id, seq, again, deliveries)"
    " WHERE m.queue_id = k.queue_id AND m.seq = k.seq AND m.claimed_by = {4}"
)
# Ranged operations of a paged tail, which scheduled messages are no part of. ``{level}``
# narrows a tail query to one priority: ``AND priority = $n`` (see _level).
_RANGE = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages"
    " WHERE queue_id = $1 AND seq > $2 AND seq <= $3 AND deliver_at IS NULL{level}"
    " ORDER BY seq LIMIT $4"
)
_COUNT = (
    "SELECT count(*), coalesce(sum(length(body)), 0), max(seq), min(expires_at) FROM"
    " (SELECT seq, body, expires_at FROM messages"
    "  WHERE queue_id = $1 AND seq > $2 AND seq <= $3 AND deliver_at IS NULL{level}"
    "  ORDER BY seq LIMIT $4) AS step"
)
_EXPIRE_RANGE = (
    "DELETE FROM messages WHERE queue_id = $1 AND seq IN"
    " (SELECT seq FROM messages WHERE queue_id = $1 AND expires_at <= $2 AND deliver_at IS NULL"
    "  AND seq > $3 AND seq <= $4{level} ORDER BY expires_at LIMIT $5)"
    f" RETURNING {_MESSAGE_COLUMNS}"
)
_FIRST_EXPIRY = (
    "SELECT min(expires_at) FROM messages WHERE queue_id = $1 AND expires_at IS NOT NULL"
    " AND deliver_at IS NULL AND seq > $2 AND seq <= $3{level}"
)
# A queue's scheduled messages, soonest first (one range of their index).
_SCHEDULED = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE queue_id = $1 AND deliver_at IS NOT NULL"
    " ORDER BY deliver_at, seq LIMIT $2"
)
_SCHEDULED_TOTAL = (
    "SELECT count(*), coalesce(sum(length(body)), 0) FROM messages"
    " WHERE queue_id = $1 AND deliver_at IS NOT NULL"
)
# The ones a node holds ($2), from the first or after a place (a row comparison: one range
# of the index, where "deliver_at > x OR (deliver_at = x AND seq > y)" is a filter).
_HELD = "queue_id = $1 AND deliver_at IS NOT NULL AND claimed_by = $2"
_AFTER_PLACE = " AND (deliver_at, seq) > ($3, $4)"
_HELD_SCHEDULED = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {_HELD} ORDER BY deliver_at, seq LIMIT $3"
)
_HELD_SCHEDULED_AFTER = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {_HELD}{_AFTER_PLACE}"
    " ORDER BY deliver_at, seq LIMIT $5"
)
_PURGE_HELD_SCHEDULED = f"DELETE FROM messages WHERE {_HELD}"
# Claims take the highest priority first, oldest first within one. The running sum bounds
# a claim by bytes (the first row always fits).
_CLAIM = (
    "WITH picked AS ("
    "  SELECT seq, sum(length(body)) OVER (ORDER BY priority DESC, seq) AS running,"
    "   row_number() OVER (ORDER BY priority DESC, seq) AS n FROM ("
    "   SELECT seq, body, priority FROM messages WHERE queue_id = $1 AND claimed_by IS NULL"
    "   AND deliver_at IS NULL ORDER BY priority DESC, seq LIMIT $2 FOR UPDATE SKIP LOCKED)"
    "   AS oldest)"
    " UPDATE messages m SET claimed_by = $3 FROM picked"
    " WHERE m.queue_id = $1 AND m.seq = picked.seq"
    " AND (picked.running <= $4 OR picked.n = 1)"
    f" RETURNING m.{_MESSAGE_COLUMNS.replace(', ', ', m.')}"
)


def _level(priority: int | None, number: int) -> tuple[str, tuple[int, ...]]:
    """The condition narrowing a tail query to one priority, as parameter ``$number``,
    and its value; none for None."""
    if priority is None:
        return "", ()
    return f" AND priority = ${number:d}", (priority,)


_TRIM_UNCLAIMED = (
    "DELETE FROM messages m WHERE m.queue_id = $1 AND m.seq IN"
    " (SELECT seq FROM messages WHERE queue_id = $1 AND claimed_by IS NULL"
    "  AND deliver_at IS NULL ORDER BY seq LIMIT greatest(0, (SELECT count(*) FROM messages"
    "  WHERE queue_id = $1 AND deliver_at IS NULL) - $2) FOR UPDATE SKIP LOCKED)"
    f" RETURNING m.{_MESSAGE_COLUMNS.replace(', ', ', m.')}"
)
_EXPIRE_UNCLAIMED = (
    "DELETE FROM messages m WHERE m.queue_id = $1 AND m.seq IN"
    " (SELECT seq FROM messages WHERE queue_id = $1 AND claimed_by IS NULL"
    "  AND deliver_at IS NULL AND expires_at <= $2 ORDER BY expires_at LIMIT $3"
    "  FOR UPDATE SKIP LOCKED)"
    f" RETURNING m.{_MESSAGE_COLUMNS.replace(', ', ', m.')}"
)
_CLAIM_SCHEDULED = (
    "UPDATE messages m SET claimed_by = $3 WHERE m.queue_id = $1 AND m.seq IN"
    " (SELECT seq FROM messages WHERE queue_id = $1 AND deliver_at IS NOT NULL"
    "  AND claimed_by IS NULL ORDER BY deliver_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    f" RETURNING m.{_MESSAGE_COLUMNS.replace(', ', ', m.')}"
)
