"""Broker: owns the destinations, the queued-bytes gauge and the open sessions.

The engine is synchronous and single-threaded by design: the server calls it from its event
loop, every command runs to completion, and deliveries are handed to each session's sink.
Besides the standard library and broker/ it imports only :mod:`buzon.errors`,
:mod:`buzon.auth.access` (the access decision) and :mod:`buzon.store` for its records,
tickets and the ``MessageLog`` protocol it writes messages through without awaiting: no
sockets, no STOMP text, no store implementation. So the same engine serves STOMP over TCP,
STOMP over WebSocket, HTTP and in-process tests.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeVar

from buzon.auth.access import Action, Principal
from buzon.broker.addresses import address, key_in
from buzon.broker.channel import Binding, Channel
from buzon.broker.config import BrokerConfig
from buzon.broker.destinations import Destinations
from buzon.broker.flow import QueuedBytes
from buzon.broker.intake import Intake, Publication
from buzon.broker.journal import Journal
from buzon.broker.leases import Lease, Leases
from buzon.broker.message import (
    NO_OPTIONS,
    DeliverySink,
    Headers,
    Message,
    Outcome,
    PublishOptions,
)
from buzon.broker.paged_backlog import Paging
from buzon.broker.queue import Queue
from buzon.broker.session import Session
from buzon.broker.stats import BrokerStats
from buzon.broker.timers import Timers
from buzon.errors import BrokerError, ErrorCode, LocalProtocolError
from buzon.store import (
    BindingRecord,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    IdempotencyKey,
    MessageLog,
    PagedLog,
    StoredBacklog,
)

DEFAULT_CONFIG = BrokerConfig()
_T = TypeVar("_T", Queue, Channel)


class Broker:
    """The message engine.

    Args:
        config: limits and defaults; see :class:`BrokerConfig`.
        clock: Unix time, for destinations created on first use and for expiry.
        log: where persistent messages are written (the store); None keeps nothing.
        pager: the store again, when durable queues should page (keep a bounded window
            in memory and the rest there, see ``paged_backlog``); None keeps every waiting
            message in memory.
        shared: the store is shared by the nodes of a cluster (``pager`` is a
            ``ClaimLog``): every queue lives there and this node claims what its consumers
            take (see ``claimed_backlog``).

    Attributes:
        journal: the engine's writes to ``log``; ``journal.last`` is the ticket a front
            end waits for before it confirms anything.
        timers: the engine's deadlines (delayed messages, retries, ack deadlines); the
            server sets ``timers.wake`` and calls ``timers.fire()`` when one is due.
    """

    def __init__(
        self,
        config: BrokerConfig = DEFAULT_CONFIG,
        *,
        clock: Callable[[], float] = time.time,
        log: MessageLog | None = None,
        pager: PagedLog | None = None,
        shared: bool = False,
    ) -> None:
        self.config = config
        self._gauge = QueuedBytes(config.queue_high_water_bytes, config.queue_low_water_bytes)
        self.journal = Journal(log)
        paging = None
        if pager is not None:
            paging = Paging(pager, config.backlog_window, config.backlog_window_bytes, shared)
        self.timers = Timers(clock)
        self._destinations = Destinations(
            config, self._gauge, clock, self.journal, paging, self.timers
        )
        self._intake = Intake(
            self._destinations, self.journal, clock, config.max_delay_ms, config.dedup_max_keys
        )
        self._destinations.on_deleted.append(self._forget_destination)
        self.leases = Leases()
        self._sessions: dict[str, Session] = {}
        self._tokens: dict[str, str] = {}  # session id -> hash of the token it logged in with
        self._last_session = 0
        self._closed = False

    @property
    def on_created(self) -> list[Callable[[DestinationRecord], None]]:
        """Called with the record of each destination created on first use (to store it)."""
        return self._destinations.on_created

    @property
    def on_durable(self) -> list[Callable[[DurableSubscriptionRecord, bool], None]]:
        """Called when a durable subscription is created (True) or dropped (to store it)."""
        return self._destinations.on_durable

    @property
    def on_deleted(self) -> list[Callable[[DestinationRecord, str], None]]:
        """Called with the record of each queue the engine deleted by itself (exclusive
        to a connection that closed, auto-delete, expired) and the reason (to forget it)."""
        return self._destinations.on_deleted

    def restore_durables(self, records: Iterable[DurableSubscriptionRecord]) -> int:
        """Recreate stored durable subscriptions at start (before :meth:`recover`).

        Returns:
            how many were restored; those of channels that no longer exist are skipped.
        """
        by_id = {channel.record.id: channel for channel in self._destinations.channels.values()}
        restored = 0
        for record in records:
            channel = by_id.get(record.channel_id)
            if channel is not None:
                self._destinations.restore_durable(channel, record)
                restored += 1
        return restored

    def durable_subscriptions(self, channel: str) -> list[tuple[DurableSubscriptionRecord, Queue]]:
        """The durable subscriptions of a channel with their backlogs, by name."""
        target = self._destinations.channels.get(channel)
        if target is None:
            return []
        records = self._destinations.durable_records
        pairs = [(records[key], backlog) for key, backlog in target.durables.items()]
        return sorted(pairs, key=lambda pair: pair[0].name)

    def open_session(
        self,
        sink: DeliverySink,
        principal: Principal,
        *,
        token: str | None = None,
        connection: str | None = None,
    ) -> Session:
        """Start a session for an authenticated client.

        Args:
            sink: receives the session's deliveries (and the engine's request to end it).
            principal: who logged in.
            token: the hash of the bearer token it logged in with, if any: revoking that
                token ends the session (:meth:`close_sessions_with_token`).
            connection: the client connection it belongs to, when a connection holds
                several sessions (queues exclusive to a connection are consumed by its
                sessions only); None: the session is its own connection.

        Returns:
            the new session, writable.

        Raises:
            BrokerError: ``SERVER_SHUTDOWN`` after :meth:`close`.
        """
        if self._closed:
            raise BrokerError(ErrorCode.SERVER_SHUTDOWN)
        self._last_session += 1
        session = Session(
            f"session-{self._last_session}",
            principal,
            sink,
            self._destinations,
            self._intake,
            self.config,
            self._forget,
            connection,
        )
        self._sessions[session.id] = session
        if token is not None:
            self._tokens[session.id] = token
        return session

    def sessions(self) -> list[Session]:
        """The open sessions, oldest first."""
        return list(self._sessions.values())

    def close_sessions_of(self, user_id: str, code: ErrorCode, detail: str) -> int:
        """End every session of a user whose rights shrank (disabled, deleted, demoted)
        and give back the messages they hold by lease; return how many sessions ended.

        Each sink is told why (``close_session``) before its session closes.
        """
        doomed = [s for s in self._sessions.values() if s.principal.id == user_id]
        for session in doomed:
            session.end(code, detail)
        self.leases.release(user_id)
        return len(doomed)

    def close_sessions_with_token(self, token: str, code: ErrorCode, detail: str) -> int:
        """End every session that logged in with a bearer token now revoked (by its hash);
        return how many ended."""
        doomed = [self._sessions[sid] for sid, used in self._tokens.items() if used == token]
        for session in doomed:
            session.end(code, detail)
        return len(doomed)

    # -- destinations as resources -------------------------------------------------------

    def add_destination(
        self,
        record: DestinationRecord,
        *,
        restored: bool = False,
        exclusive_to: str | None = None,
    ) -> Queue | Channel:
        """Create a queue or channel from its record (explicit creation, or start-up with
        ``restored``, when the stored name is not checked again); ``exclusive_to`` makes a
        queue only that connection consumes from, deleted when it closes.

        Raises:
            BrokerError: ``DESTINATION_EXISTS``, ``BAD_DESTINATION``.
        """
        return self._destinations.add(record, restored=restored, exclusive_to=exclusive_to)

    def connection_closed(self, connection: str) -> int:
        """A client connection closed: delete the queues exclusive to it (announced
        through :attr:`on_deleted`); return how many."""
        return self._destinations.lifetimes.connection_closed(connection)

    def delete_destination(self, kind: DestinationKind, name: str) -> DestinationRecord:
        """Delete a queue or channel: its messages are dropped and its subscribers' sessions
        end with ``DESTINATION_DELETED``; access-key grants to it are forgotten (one of the
        same name created later is another destination). Who may delete is the caller's to
        check.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``.
        """
        record = self._destinations.remove(kind, name).record
        self._forget_destination(record)
        return record

    def update_destination(self, record: DestinationRecord) -> int:
        """Replace the record of a live destination (same id): a new access key or
        dead-letter grant. Who may change it is the caller's to check.

        A new key (not a removed one, which only widens access) takes effect on open
        sessions at once: their grants to it are forgotten, and each session that is not
        the owner's or an admin's and was granted it or reads from it ends with
        ``PERMISSIONS_CHANGED`` (its subscriptions were allowed by the old key); messages
        of a queue leased by anyone but its owner go back to it.

        Returns:
            how many sessions ended.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND`` (also when that name is now another
                destination).
        """
        target = self.destination(record.kind, record.name)
        if target is None or target.record.id != record.id:
            raise BrokerError(
                ErrorCode.DESTINATION_NOT_FOUND, f"{address(record.kind, record.name)[:80]}"
            )
        old = target.record
        target.record = record
        self._destinations.refresh_bindings(record)
        if record.key_hash is None or record.key_hash == old.key_hash:
            return 0
        doomed = [
            session
            for session in self._sessions.values()
            if not (session.principal.is_admin or session.principal.id == record.owner_id)
            and (session.granted(record.id) or session.uses(target.address))
        ]
        for session in self._sessions.values():
            session.revoke(record.id)
        detail = f"the access key of {target.address} changed: log in again with the new key"
        for session in doomed:
            session.end(ErrorCode.PERMISSIONS_CHANGED, detail)
        if isinstance(target, Queue):
            self.leases.release_from(target, record.owner_id)
        return len(doomed)

    # -- queue bindings ------------------------------------------------------------------

    def bind(self, record: BindingRecord) -> Binding:
        """Bind a queue to a channel (both by id), replacing a binding with the same key.
        Who may is the caller's to check; the grants ``record`` carries are its proof.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND`` for a missing channel or queue.
        """
        destinations = self._destinations
        channel = self._by_id(destinations.channels.values(), record.channel_id)
        queue = self._by_id(destinations.queues.values(), record.queue_id)
        if channel is None or queue is None:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, "the channel or queue is gone")
        return destinations.bind(channel, queue, record)

    def unbind(self, channel: str, queue: str, key: str) -> BindingRecord:
        """Remove the binding of queue ``queue`` to channel ``channel`` with ``key``.

        Raises:
            BrokerError: ``NOT_FOUND`` when there is no such binding (or either is missing).
        """
        target = self._destinations.channels.get(channel)
        bound = self._destinations.queues.get(queue)
        binding = None
        if target is not None and bound is not None:
            binding = target.unbind(bound.record.id, key)
        if binding is None:
            raise BrokerError(
                ErrorCode.NOT_FOUND,
                f"/queue/{queue} is not bound to /topic/{channel} with key {key[:80]!r}",
            )
        return binding.record

    def bindings(self, channel: str) -> list[Binding]:
        """A channel's queue bindings, by queue name then key (none for a missing one)."""
        target = self._destinations.channels.get(channel)
        if target is None:
            return []
        return sorted(target.bindings.values(), key=lambda b: (b.queue.name, b.record.key))

    def restore_bindings(self, records: Iterable[BindingRecord]) -> int:
        """Recreate stored bindings at start; return how many (those of a destination
        that no longer exists are skipped)."""
        restored = 0
        for record in records:
            try:
                self.bind(record)
            except BrokerError:
                continue
            restored += 1
        return restored

    @staticmethod
    def _by_id(targets: Iterable[_T], target_id: str) -> _T | None:
        return next((target for target in targets if target.record.id == target_id), None)

    def routes(self, kind: DestinationKind, name: str, key: str = "") -> bool:
        """Whether a message published now to the queue ``name`` (it exists), or to the
        channel ``name`` with routing key ``key``, reaches anyone (AMQP's mandatory flag
        returns it otherwise)."""
        if kind is DestinationKind.QUEUE:
            return name in self._destinations.queues
        channel = self._destinations.channels.get(name)
        return channel is not None and channel.routes(key)

    def destination(self, kind: DestinationKind, name: str) -> Queue | Channel | None:
        """The live queue or channel, or None."""
        destinations = self._destinations
        if kind is DestinationKind.QUEUE:
            return destinations.queues.get(name)
        return destinations.channels.get(name)

    def destinations(self, kind: DestinationKind) -> list[Queue] | list[Channel]:
        """Every live queue, or every live channel, sorted by name."""
        destinations = self._destinations
        if kind is DestinationKind.QUEUE:
            return [destinations.queues[name] for name in sorted(destinations.queues)]
        return [destinations.channels[name] for name in sorted(destinations.channels)]

    def publish(
        self,
        principal: Principal,
        destination: str,
        headers: Headers,
        body: bytes,
        grants: Collection[str] = (),
        options: PublishOptions = NO_OPTIONS,
    ) -> Publication:
        """Publish outside any session (HTTP); the destination must exist.

        The message arrives once its write is durable; wait for the returned ticket
        before confirming (a failed ticket means it was never delivered).

        Returns:
            the message id and the ticket of its write (None when nothing was written);
            for a duplicate (its idempotency key was seen by the queue within its
            window), the first message's id, marked ``duplicate``.

        Raises:
            BrokerError: ``BAD_DESTINATION``, ``DESTINATION_NOT_FOUND``, ``QUEUE_FULL``,
                ``BAD_HEADER_VALUE``.
            AccessDenied: as :meth:`Session.publish`.
        """
        target = self._destinations.resolve(
            destination, principal, Action.PUBLISH, grants, create=False
        )
        routing_key = key_in(destination, target.address)
        return self._intake.publish(target, headers, body, options, routing_key)

    def check_publish(
        self, principal: Principal, destination: str, grants: Collection[str] = ()
    ) -> None:
        """Raise what :meth:`publish` would raise for a missing destination or a refused
        publisher, publishing nothing (a caller that will publish later checks first).

        Raises:
            BrokerError: ``BAD_DESTINATION``, ``DESTINATION_NOT_FOUND``.
            AccessDenied: as :meth:`Session.publish`.
        """
        self._destinations.check(destination, principal, Action.PUBLISH, grants, create=False)

    def purge(self, queue: str) -> int:
        """Drop the waiting messages of a queue (not those in flight); return how many.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``.
        """
        target = self._destinations.queues.get(queue)
        if target is None:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"queue {queue[:80]!r}")
        return target.purge()

    def expire_messages(self, now: float) -> int:
        """Retire expired waiting messages (of queues and durable subscriptions' backlogs);
        return how many. Only queues holding messages that can expire are visited."""
        return sum(queue.expire(now) for queue in list(self._destinations.expiring))

    def restore(self, found: Iterable[StoredBacklog], cleanly: bool) -> int:
        """Give queues the heads of their stored backlogs at start (see :class:`Intake`);
        return how many messages are now in memory."""
        return self._intake.restore(found, cleanly)

    def restore_idempotency_keys(self, found: Iterable[IdempotencyKey]) -> int:
        """Hold the idempotency keys the store kept (at start, oldest first per queue);
        return how many."""
        return self._intake.dedup.restore(found)

    def prune_idempotency_keys(self) -> int:
        """Forget the idempotency keys whose window ended; return how many."""
        return self._intake.dedup.prune()

    @property
    def storage_full(self) -> bool:
        """Whether persistent publishes are refused with STORAGE_FULL (the server sets it
        while the store's volume is below its free-space floor)."""
        return self._gauge.storage_full

    @storage_full.setter
    def storage_full(self, full: bool) -> None:
        self._gauge.storage_full = full

    # -- pulling with leases (HTTP consumers) ----------------------------------------------

    def pull(
        self,
        principal: Principal,
        queue: str,
        limit: int,
        lease_seconds: float,
        now: float,
        grants: Collection[str] = (),
    ) -> list[Lease]:
        """Lease up to ``limit`` waiting messages of a queue (maybe none).

        Args:
            principal: who pulls.
            queue: the queue name.
            limit: most messages to take.
            lease_seconds: how long each stays leased.
            now: the current time (the clock :meth:`expire_leases` is given).
            grants: destination ids whose access key was presented and checked.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``, ``LIMIT_EXCEEDED``.
            AccessDenied: as :meth:`Session.subscribe`.
        """
        target = self._pullable(principal, queue, grants)
        if target.lifetime is not None:
            target.lifetime.touched()
        return self.leases.take(target, principal.id, limit, lease_seconds, now)

    def peek(
        self, principal: Principal, queue: str, limit: int, grants: Collection[str] = ()
    ) -> list[tuple[Message, bool]]:
        """The first ``limit`` waiting messages of a queue, without consuming them.

        Reading a message is a consumer's privilege, so the access check is :meth:`pull`'s.

        Returns:
            ``(message, redelivered)`` pairs, oldest first.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``.
            AccessDenied: as :meth:`Session.subscribe`.
        """
        return self._pullable(principal, queue, grants).peek(limit)

    def scheduled(
        self, principal: Principal, queue: str, limit: int, grants: Collection[str] = ()
    ) -> list[tuple[float, Message]]:
        """The first ``limit`` scheduled messages of a queue with their times, soonest
        first; the access check is :meth:`peek`'s (it shows the bodies).

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``.
            AccessDenied: as :meth:`Session.subscribe`.
        """
        return self._pullable(principal, queue, grants).scheduled(limit)

    def settle(
        self,
        principal: Principal,
        queue: str,
        receipts: Sequence[str],
        outcome: Outcome,
    ) -> None:
        """Settle pulled messages by receipt as ``outcome`` says; all or none.

        No access check: a receipt only ever settles a lease of the principal who pulled
        it, and pulling was checked.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``, ``UNKNOWN_RECEIPT``.
        """
        self.settle_held(principal.id, queue, receipts, outcome)

    def settle_held(
        self,
        holder: str,
        queue: str,
        receipts: Sequence[str],
        outcome: Outcome,
    ) -> None:
        """:meth:`settle` for the user ``holder`` (asked by another node of a cluster).

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``, ``UNKNOWN_RECEIPT``.
        """
        target = self._destinations.queues.get(queue)
        if target is None:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"queue {queue[:80]!r}")
        self.leases.settle(target, holder, receipts, outcome)

    def expire_leases(self, now: float) -> int:
        """Return messages whose lease ran out to their queues; return how many."""
        return self.leases.expire(now)

    def _pullable(self, principal: Principal, queue: str, grants: Collection[str]) -> Queue:
        target = self._destinations.resolve(
            address(DestinationKind.QUEUE, queue), principal, Action.CONSUME, grants, create=False
        )
        if not isinstance(target, Queue):
            raise LocalProtocolError(detail="a /queue/ address resolved to a channel")
        return target

    @property
    def over_high_water(self) -> bool:
        """True while the queues hold more body bytes than ``queue_high_water_bytes``:
        the server should stop reading from publishers."""
        return self._gauge.over_high_water

    def call_when_below_low_water(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the queued bytes fall under ``queue_low_water_bytes``.

        Args:
            callback: called synchronously from the engine command that settles enough
                messages, or right away if the total is already under the mark. It must
                not raise.
        """
        self._gauge.call_when_below_low_water(callback)

    def statistics(self) -> BrokerStats:
        """A snapshot of every queue, channel and session, and the broker-wide totals."""
        destinations = self._destinations
        queues = tuple(
            destinations.queues[name].statistics() for name in sorted(destinations.queues)
        )
        channels = tuple(
            destinations.channels[name].statistics() for name in sorted(destinations.channels)
        )
        return BrokerStats(
            queues=queues,
            channels=channels,
            sessions=tuple(session.statistics() for session in self._sessions.values()),
            queued_bytes=self._gauge.total,
            messages_published=destinations.retired_published
            + sum(q.published for q in queues)
            + sum(c.published for c in channels),
            messages_delivered=destinations.retired_delivered
            + sum(q.delivered for q in queues)
            + sum(c.delivered for c in channels),
            idempotency_keys=self._intake.dedup.size,
            idempotency_keys_evicted=self._intake.dedup.evicted,
        )

    # -- a cluster: several nodes on one shared store --------------------------------------

    def number_messages(self, floor: int, stride: int) -> None:
        """Number messages above ``floor``, ``stride`` apart (see :meth:`Intake.number`)."""
        self._intake.number(floor, stride)

    @property
    def last_seq(self) -> int:
        """The seq of the last message numbered here."""
        return self._intake.seq

    def feed_channels(self, feed: Callable[[Channel, Message], None]) -> None:
        """Hand every channel message published here to ``feed`` too (once delivered here),
        for the other nodes' subscribers."""
        self._intake.feed = feed

    def deliver_remote(self, channel_id: str, message: Message) -> None:
        """A channel message another node published: to this node's live subscribers."""
        for channel in self._destinations.channels.values():
            if channel.record.id == channel_id:
                channel.publish(message, local=True)
                return

    def shared_queues(self) -> list[Queue]:
        """Every queue and durable subscription backlog."""
        destinations = self._destinations
        queues = list(destinations.queues.values())
        for channel in destinations.channels.values():
            queues.extend(channel.durables.values())
        return queues

    def messages_available(self, queue_ids: Collection[str] | None) -> None:
        """Other nodes wrote messages any node may claim to these queues (None: any)."""
        for queue in self.shared_queues():
            if queue_ids is None or queue.record.id in queue_ids:
                queue.available()

    def adopt_scheduled(self, queue_ids: Collection[str]) -> None:
        """These queues have scheduled messages no node holds: claim them, to wait here."""
        for queue in self.shared_queues():
            if queue.record.id in queue_ids:
                queue.adopt_scheduled()

    def refresh_unclaimed(self, counts: Mapping[str, tuple[int, int, float | None]]) -> None:
        """The cluster's count of unclaimed messages per queue id (absent: none)."""
        for queue in self.shared_queues():
            queue.refresh(*counts.get(queue.record.id, (0, 0, None)))

    def adopt(self, record: DestinationRecord) -> str | None:
        """Take the stored record of a destination this node created at the same time as
        another node did (the other one was stored first): same subscribers, the stored
        id from now on, and a changed key applied as :meth:`update_destination` does.
        Returns the id it had (None when it is gone)."""
        target = self._destinations.get(address(record.kind, record.name))
        if target is None:
            return None
        old = target.record
        # the stored id with the key this node knew, then the stored key as a key change
        known = dataclasses.replace(record, key_hash=old.key_hash)
        if isinstance(target, Queue):
            target.rekey(known)
        else:
            target.record = known
        self.update_destination(record)
        return old.id

    def durable_ids(self) -> set[str]:
        """The ids of every durable subscription."""
        return set(self._destinations.durable_records)

    def drop_durable(self, durable_id: str) -> None:
        """A durable subscription was deleted elsewhere (another node): drop it here."""
        self._destinations.drop_durable(durable_id, announce=False)

    def restore_durable(self, record: DurableSubscriptionRecord) -> bool:
        """A durable subscription created elsewhere: give it its backlog here (False when
        its channel is not known here)."""
        return self.restore_durables([record]) == 1

    def close(self) -> None:
        """Close every session without calling any sink; later sessions are refused."""
        self._closed = True
        sessions = list(self._sessions.values())
        # Not writable first, so messages returned by one closing session are not
        # delivered to another that is about to close too.
        for session in sessions:
            session.set_writable(False)
        for session in sessions:
            session.close()
        self.leases.release_all()  # pulled, not settled: they come back redelivered
        self._intake.mark_redelivered()

    def _forget_destination(self, record: DestinationRecord, _: str = "") -> None:
        """A destination was deleted: grants to it and its idempotency keys go."""
        for session in self._sessions.values():
            session.revoke(record.id)
        self._intake.dedup.drop(record.id)  # its keys must not hold others' room

    def _forget(self, session: Session) -> None:
        del self._sessions[session.id]
        self._tokens.pop(session.id, None)
