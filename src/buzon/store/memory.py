"""MemoryStore: the reference Store, kept in dicts; nothing survives the process.

Used by tests, the in-process broker for users' own test suites, and ``buzon serve`` until
the SQLite store arrives. Every method completes without awaiting, so each call is atomic
on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from buzon.errors import ErrorCode, StoreError
from buzon.priority import DEFAULT_PRIORITY
from buzon.store.base import MessageKey, head_of
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
from buzon.store.tickets import DONE, Ticket, resolved


class MemoryStore:
    """A :class:`~buzon.store.base.Store` in memory."""

    durable = False
    commit_durations = None

    def __init__(self) -> None:
        self.opened_cleanly = True
        self._users: dict[str, UserRecord] = {}  # by id
        self._user_ids: dict[str, str] = {}  # name -> id
        self._tokens: dict[str, TokenRecord] = {}  # by hash
        self._destinations: dict[tuple[DestinationKind, str], DestinationRecord] = {}
        self._bindings: dict[tuple[str, str, str], BindingRecord] = {}
        self._durables: dict[str, DurableSubscriptionRecord] = {}
        self._messages: dict[MessageKey, StoredMessage] = {}
        self._spilled: dict[MessageKey, StoredMessage] = {}
        self._keys: dict[tuple[str, str], IdempotencyKey] = {}  # by (queue_id, key)

    async def open(self) -> None:
        """Forget spilled transient messages, as every store does at start (a memory store
        opened again within one process, as tests do, behaves like a restarted one)."""
        self._spilled.clear()

    async def close(self) -> None:
        """Nothing to release."""

    def size_on_disk(self) -> int | None:
        """Nothing is on disk."""
        return None

    # -- users ---------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        if user.name in self._user_ids:
            raise StoreError(ErrorCode.USERNAME_TAKEN, f"user {user.name!r} exists")
        self._users[user.id] = user
        self._user_ids[user.name] = user.id

    async def user_by_name(self, name: str) -> UserRecord | None:
        user_id = self._user_ids.get(name)
        return None if user_id is None else self._users[user_id]

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return self._users.get(user_id)

    async def users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda user: user.name)

    async def update_user(self, user: UserRecord) -> None:
        old = self._users.get(user.id)
        if old is None:
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user.id!r}")
        self._users[user.id] = dataclasses.replace(user, name=old.name)

    async def delete_user(self, user_id: str) -> None:
        user = self._users.pop(user_id, None)
        if user is None:
            raise StoreError(ErrorCode.USER_NOT_FOUND, f"user id {user_id!r}")
        del self._user_ids[user.name]
        for token_hash in [h for h, t in self._tokens.items() if t.user_id == user_id]:
            del self._tokens[token_hash]

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        self._tokens[token.token_hash] = token

    async def token(self, token_hash: str) -> TokenRecord | None:
        return self._tokens.get(token_hash)

    async def delete_token(self, token_hash: str) -> None:
        self._tokens.pop(token_hash, None)

    async def delete_expired_tokens(self, now: float) -> int:
        expired = [h for h, t in self._tokens.items() if t.expires_at <= now]
        for token_hash in expired:
            del self._tokens[token_hash]
        return len(expired)

    # -- destinations --------------------------------------------------------------------

    async def add_destination(self, record: DestinationRecord) -> None:
        key = (record.kind, record.name)
        if key in self._destinations:
            raise StoreError(ErrorCode.DESTINATION_EXISTS, f"{record.kind} {record.name!r}")
        self._destinations[key] = record

    async def destination(self, kind: DestinationKind, name: str) -> DestinationRecord | None:
        return self._destinations.get((kind, name))

    async def destinations(self) -> list[DestinationRecord]:
        return [self._destinations[key] for key in sorted(self._destinations)]

    async def update_destination(self, record: DestinationRecord) -> None:
        key = (record.kind, record.name)
        stored = self._destinations.get(key)
        if stored is not None and stored.id == record.id:
            self._destinations[key] = record

    async def delete_destination(self, destination_id: str) -> None:
        for key, record in list(self._destinations.items()):
            if record.id == destination_id:
                del self._destinations[key]
        self._forget_messages(destination_id)
        for name in [name for name in self._keys if name[0] == destination_id]:
            del self._keys[name]
        for bound in [bound for bound in self._bindings if destination_id in bound[:2]]:
            del self._bindings[bound]

    # -- bindings ------------------------------------------------------------------------

    async def add_binding(self, record: BindingRecord) -> None:
        self._bindings[record.channel_id, record.queue_id, record.key] = record

    async def bindings(self) -> list[BindingRecord]:
        return [self._bindings[key] for key in sorted(self._bindings)]

    async def delete_binding(self, channel_id: str, queue_id: str, key: str) -> None:
        self._bindings.pop((channel_id, queue_id, key), None)

    # -- durable subscriptions -----------------------------------------------------------

    async def add_durable_subscription(self, record: DurableSubscriptionRecord) -> None:
        for other in self._durables.values():
            if (other.channel_id, other.owner_id, other.name) == (
                record.channel_id,
                record.owner_id,
                record.name,
            ):
                raise StoreError(ErrorCode.DESTINATION_EXISTS, f"subscription {record.name!r}")
        self._durables[record.id] = record

    async def durable_subscriptions(self) -> list[DurableSubscriptionRecord]:
        return sorted(self._durables.values(), key=lambda r: (r.channel_id, r.owner_id, r.name))

    async def delete_durable_subscription(self, subscription_id: str) -> None:
        self._durables.pop(subscription_id, None)
        self._forget_messages(subscription_id)

    # -- messages ------------------------------------------------------------------------

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        for new in keys:
            self._keys[(new.queue_id, new.key)] = new
        stored = self._messages
        for appended in appends:
            stored[(appended.queue_id, appended.seq)] = appended
        for key in removals:
            stored.pop(key, None)
        for key in redelivered:
            if key in stored:
                stored[key] = dataclasses.replace(stored[key], redelivered=True)
        for key, deliver_at in schedules:
            if key in stored:
                stored[key] = dataclasses.replace(
                    stored[key], redelivered=True, deliver_at=deliver_at
                )
        return DONE

    async def messages(self) -> list[StoredMessage]:
        return [self._messages[key] for key in sorted(self._messages)]

    async def backlogs(self, limit: int, max_bytes: int) -> list[StoredBacklog]:
        found: dict[tuple[str, int], list[StoredMessage]] = {}
        scheduled: dict[str, list[StoredMessage]] = {}
        for key in sorted(self._messages):
            message = self._messages[key]
            if message.deliver_at is None:
                found.setdefault((key[0], -message.priority), []).append(message)
            else:
                scheduled.setdefault(key[0], []).append(message)
        for queue_id in scheduled:
            if not any(owner == queue_id for owner, _ in found):
                found[(queue_id, -DEFAULT_PRIORITY)] = []
        heads = []
        for (queue_id, level), ready in sorted(found.items()):
            head = head_of(ready, limit, max_bytes)
            # the first (highest) priority of a queue carries its scheduled messages
            later = sorted(scheduled.pop(queue_id, []), key=_when)
            heads.append(
                StoredBacklog(
                    queue_id,
                    head,
                    max(m.seq for m in (*ready, *later)),
                    len(head) < len(ready),
                    head_of(later, limit, max_bytes),
                    len(later),
                    sum(len(m.body) for m in later),
                    priority=-level,
                )
            )
        return heads

    async def idempotency_keys(self, now: float) -> list[IdempotencyKey]:
        live = [key for key in self._keys.values() if key.expires_at > now]
        return sorted(live, key=lambda key: (key.queue_id, key.expires_at))

    async def prune_idempotency_keys(self, now: float, limit: int) -> int:
        due = [(key.expires_at, name) for name, key in self._keys.items() if key.expires_at <= now]
        expired = [name for _, name in sorted(due)[:limit]]
        for name in expired:
            del self._keys[name]
        return len(expired)

    def free_space(self) -> tuple[int, int] | None:
        """Nothing is on disk."""
        return None

    # -- paged backlogs (see PagedLog) ---------------------------------------------------

    def spill(self, messages: Sequence[StoredMessage]) -> Ticket:
        for message in messages:
            self._spilled[(message.queue_id, message.seq)] = message
        return DONE

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
        in_range = self._range(queue_id, after, upto, priority)
        page = head_of(in_range, limit, max_bytes)
        for message in page:
            self._spilled.pop((queue_id, message.seq), None)
        return resolved(Page(page, len(page) == len(in_range)))

    def count_tail(
        self, queue_id: str, after: int, upto: int, limit: int, *, priority: int | None = None
    ) -> Ticket:
        counted = self._range(queue_id, after, upto, priority)[:limit]
        expiries = [m.expires_at for m in counted if m.expires_at is not None]
        return resolved(
            TailCount(
                len(counted),
                sum(len(m.body) for m in counted),
                counted[-1].seq if counted else after,
                min(expiries) if expiries else None,
            )
        )

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
        in_range = self._range(queue_id, after, upto, priority)
        due = sorted(
            (m for m in in_range if m.expires_at is not None and m.expires_at <= now),
            key=lambda m: (m.expires_at, m.seq),
        )[:limit]
        due.sort(key=lambda m: m.seq)
        for message in due:
            self._forget((queue_id, message.seq))
        left = self._range(queue_id, after, upto, priority)
        later = [m.expires_at for m in left if m.expires_at]
        return resolved((due, min(later) if later else None))

    def purge_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        keep: Sequence[int],
        *,
        priority: int | None = None,
    ) -> Ticket:
        kept = set(keep)
        for message in self._range(queue_id, after, upto, priority):
            if message.seq not in kept:
                self._forget((queue_id, message.seq))
        return DONE

    def read_scheduled(self, queue_id: str, after: tuple[float, int] | None, limit: int) -> Ticket:
        return resolved(self._scheduled(queue_id, after)[:limit])

    def purge_scheduled(self, queue_id: str, after: tuple[float, int] | None) -> Ticket:
        for message in self._scheduled(queue_id, after):
            self._forget((queue_id, message.seq))
        return DONE

    def _scheduled(self, queue_id: str, after: tuple[float, int] | None) -> list[StoredMessage]:
        found = sorted(
            (
                m
                for (owner, _), m in self._messages.items()
                if owner == queue_id and m.deliver_at is not None
            ),
            key=_when,
        )
        return found if after is None else [m for m in found if _when(m) > after]

    def _range(
        self, queue_id: str, after: int, upto: int, priority: int | None
    ) -> list[StoredMessage]:
        found = [
            m
            for stored in (self._messages, self._spilled)
            for (owner, seq), m in stored.items()
            if owner == queue_id
            and after < seq <= upto
            and m.deliver_at is None
            and priority in (None, m.priority)
        ]
        return sorted(found, key=lambda m: m.seq)

    def _forget(self, key: MessageKey) -> None:
        self._messages.pop(key, None)
        self._spilled.pop(key, None)

    def _forget_messages(self, queue_id: str) -> None:
        for stored in (self._messages, self._spilled):
            for key in [key for key in stored if key[0] == queue_id]:
                del stored[key]


def _when(message: StoredMessage) -> tuple[float, int]:
    """A scheduled message's place: its time, then its seq."""
    return (message.deliver_at or 0.0, message.seq)
