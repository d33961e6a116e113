"""Queues and channels as owned resources: create, delete, list and inspect.

The one implementation behind the HTTP API (and so the CLI and the dashboard). The engine
holds the live destinations; the store keeps their records so they outlive the process
once a persistent store is configured. Creation claims the name in the engine first (a
synchronous step, so two creators cannot both win), then stores the record; a failed store
write undoes the claim.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from buzon.auth import AccessKeys, Action, Decision, Principal, decide
from buzon.broker import Broker, Channel, Queue, QueueStats, address
from buzon.broker.addresses import check_name
from buzon.broker.destinations import new_record
from buzon.broker.policy import feed_grant
from buzon.errors import AccessDenied, BrokerError, ErrorCode, RequestError, StoreError
from buzon.server.bindings import Bindings
from buzon.server.durable import until_durable
from buzon.store import (
    DEFAULT_POLICY,
    ChannelType,
    ClaimLog,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    QueuePolicy,
    Store,
)

log = logging.getLogger("buzon.server")


@dataclass(frozen=True, slots=True)
class DestinationView:
    """What listing or inspecting a queue or channel shows.

    Attributes:
        id: stable id.
        kind: queue or channel.
        name: the name.
        address: the STOMP destination.
        owner: the owner's user name (None once that user is deleted).
        protected: whether an access key protects it.
        created_at: Unix time.
        depth: messages waiting (queues; 0 for channels).
        in_flight: delivered and not yet acknowledged (queues; 0 for channels).
        consumers: subscriptions now (consumers of a queue, subscribers of a channel).
        published: messages published to it since the broker started.
        delivered: deliveries made since the broker started.
        policy: the queue's policy (the default for channels).
        durables: a channel's durable subscriptions: (name, owner, backlog depth).
        queue: a queue's own counters (scheduled, retried, dead-lettered by reason, lapsed
            leases); None
            for channels.
        channel_type: how a channel routes.
        bindings: a channel's queue bindings (how many).
    """

    id: str
    kind: DestinationKind
    name: str
    address: str
    owner: str | None
    protected: bool
    created_at: float
    depth: int
    in_flight: int
    consumers: int
    published: int
    delivered: int
    policy: QueuePolicy = DEFAULT_POLICY
    durables: tuple[tuple[str, str | None, int], ...] = ()
    queue: QueueStats | None = None
    channel_type: ChannelType = ChannelType.FANOUT
    bindings: int = 0


class Resources:
    """Destinations as owned resources.

    Args:
        store: keeps the records (and the users, to show owners by name).
        broker: the engine with the live destinations.
        keys: hashes access keys.
        claims: the store again when it is shared by the nodes of a cluster (a
            destination two nodes create at once is settled there).

    Attributes:
        bindings: the channels' queue bindings (see ``server/bindings``).
    """

    def __init__(
        self, store: Store, broker: Broker, keys: AccessKeys, claims: ClaimLog | None = None
    ) -> None:
        self._store = store
        self._broker = broker
        self._keys = keys
        self._writes: set[asyncio.Task[None]] = set()
        # ids of destinations and durable subscriptions made here and not stored yet
        self._pending: set[str] = set()
        # destinations created on first use, until stored
        self._created: dict[str, DestinationRecord] = {}
        self._claims = claims
        # record changes apply one at a time, each to the record as it is then
        self._updating = asyncio.Lock()
        # exclusive queues: they live as long as their connection, so are never stored
        self._unstored: set[str] = set()
        broker.on_created.append(self._store_later)
        broker.on_durable.append(self._store_durable_later)
        broker.on_deleted.append(self._forget_later)
        self.bindings = Bindings(store, broker, self)

    async def restore(self) -> int:
        """Recreate every stored destination and durable subscription in the engine (at
        start, before the messages are recovered); return how many destinations."""
        records = await self._store.destinations()
        for record in records:
            self._broker.add_destination(record, restored=True)
        self._broker.restore_durables(await self._store.durable_subscriptions())
        self._broker.restore_bindings(await self._store.bindings())
        return len(records)

    async def sync(self) -> None:
        """Make the engine hold what the store holds: in a cluster another node created,
        changed or deleted destinations or durable subscriptions. A changed access key
        ends the sessions it no longer backs, as a change made here does; a deletion ends
        the subscriptions. What this node made and has not stored yet is left alone."""
        broker = self._broker
        # What this node knew before reading: only those may be found gone. One made here
        # while the store was read is not in what was read, and must stay.
        known_before = {
            target.record.id
            for kind in DestinationKind
            for target in broker.destinations(kind)
            if target.record.id not in self._pending
        }
        held_before = broker.durable_ids() - self._pending
        records = await self._store.destinations()
        durables = await self._store.durable_subscriptions()
        for record in records:
            self._apply(record)
        stored = {record.id for record in records}
        live: list[Queue | Channel] = [
            *broker.destinations(DestinationKind.QUEUE),
            *broker.destinations(DestinationKind.CHANNEL),
        ]
        for target in live:
            known = target.record
            if known.id in known_before and known.id not in stored:
                broker.delete_destination(known.kind, known.name)
        held = broker.durable_ids()
        for durable in durables:
            if durable.id not in held:
                broker.restore_durable(durable)
        for durable_id in held_before - {durable.id for durable in durables}:
            broker.drop_durable(durable_id)
        await self.bindings.sync()

    def _apply(self, record: DestinationRecord) -> None:
        """One stored record into the engine: new, replaced (deleted and made again
        elsewhere), or changed (its key or policy)."""
        broker = self._broker
        live = broker.destination(record.kind, record.name)
        if live is None:
            broker.add_destination(record, restored=True)
        elif live.record.id != record.id:
            if live.record.id in self._pending:
                return  # made here at the same time: the store decides, then this
            broker.delete_destination(record.kind, record.name)
            broker.add_destination(record, restored=True)
        elif live.record != record:
            broker.update_destination(record)

    async def create(
        self,
        principal: Principal,
        kind: DestinationKind,
        name: str,
        access_key: str | None,
        policy: QueuePolicy = DEFAULT_POLICY,
        dead_letter_key: str | None = None,
        *,
        channel_type: ChannelType = ChannelType.FANOUT,
        client_address: str = "?",
        exclusive_to: str | None = None,
    ) -> DestinationView:
        """Create a queue or channel owned by ``principal``.

        Args:
            principal: the owner.
            kind: queue or channel.
            name: its name.
            access_key: others must present it to publish or consume.
            policy: for a queue, how it treats messages (ignored for channels).
            dead_letter_key: the access key of the policy's dead-letter queue, when that is
                someone else's protected queue (see :meth:`_dead_letter_grant`).
            channel_type: how a channel routes (fixed from now on; queues ignore it).
            client_address: the client's IP, for the limits on wrong access keys.
            exclusive_to: a queue exclusive to that client connection (see
                :meth:`Broker.add_destination`); it is not stored.

        Raises:
            BrokerError: BAD_DESTINATION (also for a bad dead-letter queue name),
                DESTINATION_EXISTS (naming both types for a channel of another type);
                DESTINATION_NOT_FOUND for a dead-letter key given for a queue that does not
                exist.
            AuthError: WEAK_PASSWORD for an access key out of bounds; ACCESS_KEY_REQUIRED,
                ACCESS_KEY_WRONG or TOO_MANY_ATTEMPTS when the owner may not publish to the
                dead-letter queue.
            RequestError: a dead-letter key without a dead-letter queue.
        """
        check_name(name)
        if kind is DestinationKind.CHANNEL:
            policy = DEFAULT_POLICY
        else:
            channel_type = ChannelType.FANOUT
            for target_name in (policy.dead_letter_queue, policy.dead_letter_exchange):
                if target_name is not None:
                    check_name(target_name)
        self._refuse_existing(kind, name, channel_type)
        grant = await self._dead_letter_grant(
            principal, principal.id, policy.dead_letter_queue, dead_letter_key, client_address
        )
        key_hash = None if access_key is None else await self._keys.hash(access_key)
        record = dataclasses.replace(
            new_record(kind, name, principal.id, key_hash, time.time()),
            policy=policy,
            dead_letter_grant=grant,
            channel_type=channel_type,
        )
        # raises if it appeared meanwhile
        target = self._broker.add_destination(record, exclusive_to=exclusive_to)
        if exclusive_to is not None:
            self._unstored.add(record.id)
            return self._view(target, {principal.id: principal.name})
        self._pending.add(record.id)
        try:
            await self._store.add_destination(record)
        except BaseException:
            self._broker.delete_destination(kind, name)
            raise
        finally:
            self._pending.discard(record.id)
        return self._view(target, {principal.id: principal.name})

    async def update(
        self,
        principal: Principal,
        kind: DestinationKind,
        name: str,
        *,
        access_key: str | None = None,
        remove_key: bool = False,
        dead_letter_key: str | None = None,
        client_address: str = "?",
    ) -> DestinationView:
        """Change a destination's access key, or present its dead-letter queue's key again
        (after that key changed); only its owner or an admin may.

        A new key ends the open connections that used the old one (see
        :meth:`Broker.update_destination`); removing the key ends none.

        Args:
            principal: who asks.
            kind: queue or channel.
            name: its name.
            access_key: the new access key.
            remove_key: make it public (no key).
            dead_letter_key: the dead-letter queue's current access key (queues only).
            client_address: the client's IP, for the limits on wrong access keys.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
            AccessDenied: ACCESS_DENIED (not the owner or an admin), and as :meth:`create`
                for the dead-letter key.
            AuthError: WEAK_PASSWORD for an access key out of bounds.
            RequestError: nothing to change, or a dead-letter key for a channel.
        """
        record = self.target(kind, name).record
        if decide(principal, Action.DELETE, record) is Decision.DENY:
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED,
                f"only the owner or an admin may change {address(kind, name)}",
            )
        if access_key is None and not remove_key and dead_letter_key is None:
            raise RequestError(ErrorCode.BAD_REQUEST, "nothing to change")
        if dead_letter_key is not None and kind is DestinationKind.CHANNEL:
            raise RequestError(ErrorCode.BAD_REQUEST, "channels have no dead-letter queue")
        fields: dict[str, str | None] = {}
        if dead_letter_key is not None:
            fields["dead_letter_grant"] = await self._dead_letter_grant(
                principal,
                record.owner_id,
                record.policy.dead_letter_queue,
                dead_letter_key,
                client_address,
            )
        if access_key is not None or remove_key:
            fields["key_hash"] = None if access_key is None else await self._keys.hash(access_key)
        async with self._updating:
            # Only this request's fields, on the record as it is now: another change made
            # during the checks above (a new key, say) is kept, not written back over.
            live = self.target(kind, name).record
            if live.id != record.id:
                raise BrokerError(
                    ErrorCode.DESTINATION_NOT_FOUND, f"{address(kind, name)[:80]} was replaced"
                )
            changed = dataclasses.replace(live, **fields)  # type: ignore[arg-type]
            await self._store.update_destination(changed)
            self._broker.update_destination(changed)
        return await self.describe(kind, name)

    async def check_key(
        self, principal: Principal, record: DestinationRecord, key: str, address: str
    ) -> None:
        """Check an access key presented for ``record`` (see :meth:`AccessKeys.check`), and
        that the key is still the one checked: it may change during the slow check, and a
        grant given for the old key would outlive the change that was meant to end it.

        Raises:
            AccessDenied: ACCESS_KEY_WRONG (wrong, or changed meanwhile).
            AuthenticationFailed: TOO_MANY_ATTEMPTS.
        """
        await self._keys.check(principal, record, key, address)
        live = self._broker.destination(record.kind, record.name)
        if live is None or live.record.id != record.id or live.record.key_hash != record.key_hash:
            raise AccessDenied(
                ErrorCode.ACCESS_KEY_WRONG,
                f"the access key of {record.kind} {record.name!r} changed while it was checked",
            )

    async def _dead_letter_grant(
        self,
        principal: Principal,
        owner_id: str,
        name: str | None,
        key: str | None,
        client_address: str,
    ) -> str | None:
        """Check that a queue owned by ``owner_id``, set up by ``principal``, may
        dead-letter into the queue ``name``; return the grant its record keeps, if one is
        needed.

        Dead-lettering publishes to that queue, so it needs the right to publish there:
        the queue is public, or has the same owner, or ``principal`` is an admin, or
        ``key`` is its access key (checked with argon2id, never stored). The two last
        rights are kept as a grant bound to that queue's id and key (:func:`feed_grant`);
        a queue that does not exist yet is created by the first dead letter, owned by
        ``owner_id``.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND for a key given for a missing queue.
            AccessDenied: ACCESS_KEY_REQUIRED, ACCESS_KEY_WRONG.
            AuthenticationFailed: TOO_MANY_ATTEMPTS.
            RequestError: a key without a dead-letter queue.
        """
        if name is None:
            if key is not None:
                raise RequestError(
                    ErrorCode.BAD_REQUEST, "dead_letter_access_key needs a dead_letter_queue"
                )
            return None
        target = self._broker.destination(DestinationKind.QUEUE, name)
        if target is None:
            if key is not None:
                raise BrokerError(
                    ErrorCode.DESTINATION_NOT_FOUND,
                    f"/queue/{name} does not exist (a dead-letter access key was given for it)",
                )
            return None
        record = target.record
        if record.key_hash is None or record.owner_id == owner_id:
            return None
        if not principal.is_admin:
            if key is None:
                raise AccessDenied(
                    ErrorCode.ACCESS_KEY_REQUIRED,
                    f"dead-lettering into /queue/{name} needs the right to publish there:"
                    " its owner, an admin, or its access key (dead_letter_access_key)",
                )
            await self._keys.check(principal, record, key, client_address)
        return feed_grant(record)

    async def delete(self, principal: Principal, kind: DestinationKind, name: str) -> None:
        """Delete a queue or channel: only its owner or an admin may.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
            AccessDenied: ACCESS_DENIED.
        """
        record = self.target(kind, name).record
        if decide(principal, Action.DELETE, record) is Decision.DENY:
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED,
                f"only the owner or an admin may delete {address(kind, name)}",
            )
        durables = [durable.id for durable, _ in self._broker.durable_subscriptions(name)]
        self._broker.delete_destination(kind, name)
        if record.id in self._unstored:
            self._unstored.discard(record.id)
            return
        await self._store.delete_destination(record.id)
        if kind is DestinationKind.CHANNEL:
            for durable_id in durables:
                await self._store.delete_durable_subscription(durable_id)

    async def purge(self, principal: Principal, name: str) -> int:
        """Drop a queue's waiting messages (owner or admin); return how many, once their
        removal is durable.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
            AccessDenied: ACCESS_DENIED.
        """
        record = self.target(DestinationKind.QUEUE, name).record
        if decide(principal, Action.DELETE, record) is Decision.DENY:
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED, f"only the owner or an admin may purge /queue/{name}"
            )
        purged = self._broker.purge(name)
        await until_durable(self._broker.journal.last)
        return purged

    async def settle_scheduled(
        self, principal: Principal, name: str, message_id: str, *, deliver: bool
    ) -> None:
        """Deliver a queue's scheduled message now (``deliver``) or cancel it for good
        (owner or admin, as for a purge), once that is durable.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND; NOT_FOUND naming the id when no message
                with it is scheduled there (delivered, cancelled, or never scheduled).
            AccessDenied: ACCESS_DENIED.
        """
        queue = self.target(DestinationKind.QUEUE, name)
        what = "deliver" if deliver else "cancel"
        if decide(principal, Action.DELETE, queue.record) is Decision.DENY:
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED,
                f"only the owner or an admin may {what} scheduled messages of /queue/{name}",
            )
        assert isinstance(queue, Queue)
        done = queue.deliver_now(message_id) if deliver else queue.cancel_scheduled(message_id)
        if not done:
            raise BrokerError(
                ErrorCode.NOT_FOUND,
                f"message {message_id[:80]!r} is not scheduled on /queue/{name}",
            )
        await until_durable(self._broker.journal.last)

    def target(self, kind: DestinationKind, name: str) -> Queue | Channel:
        """The live queue or channel.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
        """
        target = self._broker.destination(kind, name)
        if target is None:
            raise BrokerError(
                ErrorCode.DESTINATION_NOT_FOUND, f"{address(kind, name)[:80]} does not exist"
            )
        return target

    def target_or_none(self, kind: DestinationKind, name: str) -> Queue | Channel | None:
        """The live queue or channel, or None."""
        return self._broker.destination(kind, name)

    async def describe(self, kind: DestinationKind, name: str) -> DestinationView:
        """One queue or channel with its current numbers.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND.
        """
        target = self.target(kind, name)
        owners = {user.id: user.name for user in await self._store.users()}
        return self._view(target, owners)

    async def list(self, kind: DestinationKind) -> list[DestinationView]:
        """Every queue or every channel, by name."""
        owners = {user.id: user.name for user in await self._store.users()}
        return [self._view(target, owners) for target in self._broker.destinations(kind)]

    def _refuse_existing(
        self, kind: DestinationKind, name: str, channel_type: ChannelType = ChannelType.FANOUT
    ) -> None:
        live = self._broker.destination(kind, name)
        if live is None:
            return
        existing = live.record.channel_type
        if kind is DestinationKind.CHANNEL and existing is not channel_type:
            raise BrokerError(
                ErrorCode.DESTINATION_EXISTS,
                f"{address(kind, name)} exists as a {existing} channel, not {channel_type}:"
                " a channel's type is fixed when it is created",
            )
        raise BrokerError(ErrorCode.DESTINATION_EXISTS, f"{address(kind, name)} exists")

    def _view(self, target: Queue | Channel, owners: dict[str, str]) -> DestinationView:
        record = target.record
        durables: tuple[tuple[str, str | None, int], ...] = ()
        q: QueueStats | None = None
        bound = 0
        if isinstance(target, Queue):
            q = target.statistics()
            numbers = (q.depth, q.in_flight, q.consumers, q.published, q.delivered)
        else:
            c = target.statistics()
            numbers = (0, 0, c.subscribers, c.published, c.delivered)
            durables = tuple(
                (durable.name, owners.get(durable.owner_id), backlog.statistics().depth)
                for durable, backlog in self._broker.durable_subscriptions(record.name)
            )
            bound = len(target.bindings)
        return DestinationView(
            record.id,
            record.kind,
            record.name,
            target.address,
            owners.get(record.owner_id),
            record.key_hash is not None,
            record.created_at,
            *numbers,
            policy=record.policy,
            durables=durables,
            queue=q,
            channel_type=record.channel_type,
            bindings=bound,
        )

    def _store_later(self, record: DestinationRecord) -> None:
        """Store the record of a destination created on first use (the engine is sync)."""
        self._created[record.id] = record
        self._later(self._store.add_destination(record), record.id)

    def _forget_later(self, record: DestinationRecord, reason: str) -> None:
        """Forget the record of a queue the engine deleted by itself (see ``lifetimes``)."""
        log.info("deleted queue %r (%s)", record.name, reason)
        if record.id in self._unstored:
            self._unstored.discard(record.id)
        else:
            self._later(self._store.delete_destination(record.id), record.id)

    async def _adopt(self, lost: DestinationRecord) -> None:
        """Another node stored the same destination first: take its record, and move
        what this node wrote under its own id over to it."""
        stored = await self._store.destination(lost.kind, lost.name)
        if stored is None or self._claims is None:
            return
        old = self._broker.adopt(stored)
        if old is not None and old != stored.id:
            self._claims.move(old, stored.id)
            log.info(
                "%s was created by another node at the same time: adopted its record",
                address(lost.kind, lost.name),
            )

    def _store_durable_later(self, record: DurableSubscriptionRecord, created: bool) -> None:
        """Store (or forget) a durable subscription the engine created (or dropped)."""
        if created:
            self._later(self._store.add_durable_subscription(record), record.id)
        else:
            self._later(self._store.delete_durable_subscription(record.id), record.id)

    def _later(self, write: Coroutine[Any, Any, None], record_id: str) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._writes.add(task)
        self._pending.add(record_id)
        task.add_done_callback(functools.partial(self._stored, record_id))

    def _stored(self, record_id: str, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, StoreError) and error.code is ErrorCode.DESTINATION_EXISTS:
            lost = self._created.pop(record_id, None)
            if lost is not None:
                # another node created it at the same time and stored it first
                self._later(self._adopt(lost), record_id)
                return
        self._pending.discard(record_id)
        self._created.pop(record_id, None)
        if error is not None:
            log.error("storing a destination or subscription failed: %r", task.exception())

    async def flush(self) -> None:
        """Wait for pending record writes (before the store closes)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
