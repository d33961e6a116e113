"""Destination addresses, the registry of queues and channels, and who may use which.

A destination is addressed ``/queue/<name>`` or ``/topic/<name>``; the name is 1 to 200
ASCII letters, digits, ``-``, ``_``, ``.`` or ``:``, and not only dots (it is a path segment
of the HTTP API, where ``.`` and ``..`` cannot be carried). Each queue and channel carries its
:class:`DestinationRecord` (id, owner, access-key hash). :meth:`Destinations.resolve` is
the one place that finds a destination for a command: it creates it on first use when
asked to, and applies :func:`buzon.auth.access.decide`, so no front end can skip the check.

The registry is keyed by the full address, so a publish to an existing destination is one
dict lookup; names are parsed and checked only on a miss.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Container

from buzon.auth.access import Action, Decision, Principal, decide
from buzon.broker.addresses import Address, address, check_name, parse_address
from buzon.broker.backlog import BacklogHost
from buzon.broker.channel import Binding, Channel
from buzon.broker.config import BrokerConfig
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal
from buzon.broker.lifetimes import Lifetimes
from buzon.broker.message import Message
from buzon.broker.paged_backlog import Paging
from buzon.broker.policy import binding_holds
from buzon.broker.queue import DeadLetter, Queue, Retirement
from buzon.broker.timers import Timers
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.store import (
    BindingRecord,
    DestinationKind,
    DestinationRecord,
    DurableSubscriptionRecord,
    Overflow,
    QueuePolicy,
)


def new_record(
    kind: DestinationKind, name: str, owner_id: str, key_hash: str | None, now: float
) -> DestinationRecord:
    """A record for a destination created now, with a fresh id."""
    return DestinationRecord(uuid.uuid4().hex, kind, name, owner_id, key_hash, now)


class Destinations:
    """Every queue and channel of one broker.

    Args:
        config: passed to new channels (pending bounds, slow-consumer policy).
        gauge: passed to new queues (producer flow control).
        clock: Unix time, for records of destinations created on first use and expiry.
        journal: where queues log the removal of persistent messages.
        paging: how durable queues and durable subscriptions page (None: they keep every
            waiting message in memory).

    Attributes:
        dead_letter: what queues do with retired messages (set by the intake).
        on_created: called with the record of every destination created on first use.
        on_durable: called when a durable subscription is created or dropped.
        durable_records: every durable subscription, by id.
    """

    __slots__ = (
        "_clock",
        "_config",
        "_journal",
        "_targets",
        "channels",
        "dead_letter",
        "durable_records",
        "expiring",
        "gauge",
        "lifetimes",
        "on_created",
        "on_deleted",
        "on_durable",
        "paging",
        "queues",
        "retired_delivered",
        "retired_published",
        "timers",
    )

    def __init__(
        self,
        config: BrokerConfig,
        gauge: QueuedBytes,
        clock: Callable[[], float] = time.time,
        journal: Journal | None = None,
        paging: Paging | None = None,
        timers: Timers | None = None,
    ) -> None:
        self._config = config
        self.timers = timers if timers is not None else Timers(clock)
        self.gauge = gauge
        self.paging = paging
        self._clock = clock
        self._journal = journal if journal is not None else Journal(None)
        self._targets: dict[str, Queue | Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.channels: dict[str, Channel] = {}
        self.on_created: list[Callable[[DestinationRecord], None]] = []
        # called with a durable subscription's record when it is created (True) or dropped
        self.on_durable: list[Callable[[DurableSubscriptionRecord, bool], None]] = []
        self.durable_records: dict[str, DurableSubscriptionRecord] = {}
        # called with the record of every queue the engine deleted by itself (exclusive,
        # auto-delete, expired) and why, so the store forgets it too
        self.on_deleted: list[Callable[[DestinationRecord, str], None]] = []
        self.lifetimes = Lifetimes(self.timers, self._ended)
        # the queues and backlogs holding waiting messages that can expire
        self.expiring: set[BacklogHost] = set()
        self.dead_letter: DeadLetter = _drop
        # counters of deleted destinations, so broker-wide totals never go back
        self.retired_published = 0
        self.retired_delivered = 0

    def get(self, destination: str) -> Queue | Channel | None:
        """The queue or channel at ``destination``, or None."""
        return self._targets.get(destination)

    def add(
        self,
        record: DestinationRecord,
        *,
        restored: bool = False,
        exclusive_to: str | None = None,
    ) -> Queue | Channel:
        """Create the queue or channel a record describes.

        Args:
            record: the destination.
            restored: it was stored before (at start): its name is not checked again, so
                a name that an earlier version allowed stays usable.
            exclusive_to: a queue only that connection may consume from, deleted when it
                closes (see ``lifetimes``).

        Raises:
            BrokerError: ``DESTINATION_EXISTS``; ``BAD_DESTINATION`` for an invalid name.
        """
        if not restored:
            check_name(record.name)
        key = address(record.kind, record.name)
        if key in self._targets:
            raise BrokerError(ErrorCode.DESTINATION_EXISTS, key)
        target: Queue | Channel
        if record.kind is DestinationKind.QUEUE:
            target = self.queues[record.name] = Queue(
                record,
                self.gauge,
                self._journal,
                clock=self._clock,
                dead_letter=lambda queue, message, why: self.dead_letter(queue, message, why),
                expiring=self.expiring,
                paging=self.paging,
                timers=self.timers,
            )
            self.lifetimes.watch(target, exclusive_to)
        else:
            target = self.channels[record.name] = Channel(record, self._config, self._clock)
        self._targets[key] = target
        return target

    def durable(self, channel: Channel, owner_id: str, name: str) -> Queue:
        """The backlog of ``owner_id``'s durable subscription ``name`` on ``channel``.

        Created (and announced through ``on_durable``) when it does not exist yet; it then
        receives the channel's messages from now on.
        """
        for durable_id, record in self.durable_records.items():
            if (record.channel_id, record.owner_id, record.name) == (
                channel.record.id,
                owner_id,
                name,
            ):
                return channel.durables[durable_id]
        record = DurableSubscriptionRecord(
            uuid.uuid4().hex, channel.record.id, owner_id, name, self._clock()
        )
        backlog = self.restore_durable(channel, record)
        for callback in self.on_durable:
            callback(record, True)
        return backlog

    def restore_durable(self, channel: Channel, record: DurableSubscriptionRecord) -> Queue:
        """Give a durable subscription its backlog on ``channel`` (at start, or when new)."""
        policy = QueuePolicy(
            max_length=self._config.durable_backlog_max, overflow=Overflow.DROP_HEAD
        )
        backlog = Queue(
            DestinationRecord(
                record.id,
                DestinationKind.CHANNEL,
                channel.name,
                record.owner_id,
                None,
                record.created_at,
                policy,
            ),
            self.gauge,
            self._journal,
            clock=self._clock,
            expiring=self.expiring,
            paging=self.paging,
            timers=self.timers,
        )
        channel.add_durable(record.id, backlog)
        self.durable_records[record.id] = record
        return backlog

    def drop_durable(self, durable_id: str, *, announce: bool = True) -> None:
        """Delete a durable subscription: its backlog goes, its consumers get an ERROR
        (``announce``: tell ``on_durable``, so the store forgets it too)."""
        record = self.durable_records.pop(durable_id, None)
        if record is None:
            return
        for channel in self.channels.values():
            backlog = channel.remove_durable(durable_id)
            if backlog is not None:
                backlog.delete()
        if announce:
            for callback in self.on_durable:
                callback(record, False)

    def created(self, record: DestinationRecord) -> None:
        """Tell ``on_created`` about a destination the engine made by itself."""
        for callback in self.on_created:
            callback(record)

    def remove(self, kind: DestinationKind, name: str) -> Queue | Channel:
        """Delete a queue or channel: its messages go, its subscribers get an ERROR.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``.
        """
        key = address(kind, name)
        target = self._targets.pop(key, None)
        if target is None:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"{key[:80]} does not exist")
        if isinstance(target, Channel):
            del self.channels[name]
            for durable_id in target.durables:  # their store records go with the channel
                self.durable_records.pop(durable_id, None)
        else:
            del self.queues[name]
            self.lifetimes.forget(target)
            self._unbind_queue(target.record.id)
        target.delete()
        stats = target.statistics()
        self.retired_published += stats.published
        self.retired_delivered += stats.delivered
        return target

    def resolve(
        self,
        destination: str,
        principal: Principal,
        action: Action,
        grants: Container[str],
        *,
        create: bool,
        connection: str | None = None,
    ) -> Queue | Channel:
        """Find the destination a command names, and check the principal may use it.

        Args:
            destination: the address, e.g. ``/queue/jobs``.
            principal: who acts.
            action: what they do.
            grants: ids of destinations whose access key they presented and we checked.
            create: create a missing destination, owned by ``principal``, without a key.
            connection: the client connection that acts (None: none, e.g. HTTP).

        Raises:
            BrokerError: ``BAD_DESTINATION``; ``DESTINATION_NOT_FOUND`` when missing and
                not ``create``.
            AccessDenied: ``ACCESS_KEY_REQUIRED`` (a key protects it and none was checked),
                ``ACCESS_DENIED``, or ``RESOURCE_LOCKED`` (consuming from a queue exclusive
                to another connection).
        """
        target = self._targets.get(destination)
        if target is None:
            found = self._find(destination, create=create)
            if isinstance(found, Address):
                record = new_record(found.kind, found.name, principal.id, None, self._clock())
                found = self.add(record)
                self.created(record)
            target = found
        self._authorize(target, principal, action, grants)
        if action is Action.CONSUME and isinstance(target, Queue):
            lifetime = target.lifetime
            if lifetime is not None and lifetime.exclusive_to not in (None, connection):
                raise AccessDenied(
                    ErrorCode.RESOURCE_LOCKED,
                    f"{target.address} is exclusive to another connection",
                )
        return target

    def check(
        self,
        destination: str,
        principal: Principal,
        action: Action,
        grants: Container[str],
        *,
        create: bool,
    ) -> None:
        """Raise what :meth:`resolve` would raise, without creating anything."""
        found = self._targets.get(destination)
        target = self._find(destination, create=create) if found is None else found
        if not isinstance(target, Address):
            self._authorize(target, principal, action, grants)

    def _find(self, destination: str, *, create: bool) -> Queue | Channel | Address:
        """The destination an address with a key names, or (``create``) the parsed address
        of a missing one.

        Raises:
            BrokerError: ``BAD_DESTINATION``; ``DESTINATION_NOT_FOUND``.
        """
        parsed = parse_address(destination)
        target = self._targets.get(parsed.base)
        if target is not None:
            return target
        if not create:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"{parsed.base} does not exist")
        return parsed

    # -- queue bindings ------------------------------------------------------------------

    def bind(self, channel: Channel, queue: Queue, record: BindingRecord) -> Binding:
        """Bind ``queue`` to ``channel`` as ``record`` says (replacing the binding with
        the same key); it routes while the grants it was made with hold."""
        binding = Binding(record, queue, binding_holds(record, channel.record, queue.record))
        channel.bind(binding)
        return binding

    def refresh_bindings(self, record: DestinationRecord) -> None:
        """A destination's record changed (its access key): the bindings of it whose
        grant no longer holds stop routing, those whose grant holds again resume."""
        for channel in self.channels.values():
            for binding in list(channel.bindings.values()):
                if record.id in (channel.record.id, binding.record.queue_id):
                    active = binding_holds(binding.record, channel.record, binding.queue.record)
                    if active is not binding.active:
                        channel.bind(Binding(binding.record, binding.queue, active))

    def _unbind_queue(self, queue_id: str) -> None:
        """A queue is deleted: every binding of it goes."""
        for channel in self.channels.values():
            for queue_key, key in [k for k in channel.bindings if k[0] == queue_id]:
                channel.unbind(queue_key, key)

    def _authorize(
        self, target: Queue | Channel, principal: Principal, action: Action, grants: Container[str]
    ) -> None:
        record = target.record
        if record.owner_id == principal.id or (
            record.key_hash is None and action is not Action.DELETE
        ):
            return  # the common cases, decided as decide() would, without the call
        decision = decide(principal, action, record)
        if decision is Decision.ALLOW or (decision is Decision.NEED_KEY and record.id in grants):
            return
        if decision is Decision.NEED_KEY:
            raise AccessDenied(
                ErrorCode.ACCESS_KEY_REQUIRED, f"{target.address} is protected by an access key"
            )
        raise AccessDenied(ErrorCode.ACCESS_DENIED, f"{target.address}: owner or admin only")

    def _ended(self, queue: Queue, reason: str) -> None:
        """A queue ended by itself (see ``lifetimes``): delete it and tell ``on_deleted``."""
        self.remove(DestinationKind.QUEUE, queue.name)
        for callback in self.on_deleted:
            callback(queue.record, reason)


def _drop(queue: Queue, message: Message, why: Retirement) -> bool:
    """No dead-letter handling configured: retired messages are dropped."""
    return False
