"""How a published message gets into its queue or channel.

Three steps, so that nothing is delivered before it is safe:

1. :meth:`Intake.prepare` numbers the message and applies its destination's policy
   (persistent or not, when it expires);
2. :meth:`Intake.accept` admits it (a full queue may refuse) and, if persistent, writes it
   to the journal, returning the write's ticket;
3. the message arrives in its destination only once that ticket is done; a failed write
   withdraws it, so a publish answered with an error is never delivered.

Sessions keep their own publishes in order while tickets are pending (``session``). Also
here: moving retired messages to dead-letter queues, and restoring logged messages at
start.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from buzon.broker.addresses import keyed, split_address
from buzon.broker.channel import Channel
from buzon.broker.config import DEFAULT_DEDUP_MAX_KEYS, MAX_DELAY_MS
from buzon.broker.dedup import Dedup, check_key
from buzon.broker.destinations import Destinations, new_record
from buzon.broker.journal import Journal, stored
from buzon.broker.message import NO_OPTIONS, Headers, Message, PublishOptions
from buzon.broker.policy import ORIGIN_HEADER, dead_letter_headers, expiry, may_feed, scheduled_at
from buzon.broker.queue import Queue, Retirement
from buzon.errors import BrokerError, ErrorCode
from buzon.priority import DEFAULT_PRIORITY
from buzon.store import DestinationKind, IdempotencyKey, StoredBacklog, Ticket

Target = Queue | Channel


class Publication(NamedTuple):
    """What a publish outside a session did.

    Attributes:
        message_id: the new message's id, or for a duplicate the original's.
        ticket: the write to wait for before confirming (None: nothing to wait for).
        duplicate: its idempotency key was seen within the queue's window: nothing was
            enqueued.
    """

    message_id: str
    ticket: Ticket | None
    duplicate: bool = False


class Intake:
    """Numbers messages and brings them into destinations, durably when asked.

    Args:
        destinations: the registry.
        journal: where persistent messages are logged.
        clock: Unix time, for expiry and schedules.
        max_delay_ms: the furthest ahead a message may be scheduled.
        dedup_max_keys: most idempotency keys held in memory (see ``dedup``).
    """

    __slots__ = (
        "_clock",
        "_destinations",
        "_id_prefix",
        "_max_delay_ms",
        "_seq",
        "_stride",
        "dedup",
        "feed",
        "journal",
    )

    def __init__(
        self,
        destinations: Destinations,
        journal: Journal,
        clock: Callable[[], float] = time.time,
        max_delay_ms: int = MAX_DELAY_MS,
        dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS,
    ) -> None:
        self._destinations = destinations
        self._max_delay_ms = max_delay_ms
        self.journal = journal
        self._clock = clock
        self.dedup = Dedup(clock, dedup_max_keys)
        # Message ids must not repeat across broker restarts that clients may straddle.
        self._id_prefix = secrets.token_hex(4)
        self._seq = 0
        self._stride = 1
        # a cluster's channel feed: sends each channel message published here to the
        # other nodes' subscribers
        self.feed: Callable[[Channel, Message], None] | None = None
        destinations.dead_letter = self.dead_letter

    @property
    def seq(self) -> int:
        """The last seq given."""
        return self._seq

    def number(self, floor: int, stride: int) -> None:
        """Give seqs above ``floor`` from now on, ``stride`` apart (the nodes of a cluster
        each keep their own residue, so their seqs never collide)."""
        if floor > self._seq:
            self._seq = floor
        self._stride = stride

    def prepare(
        self,
        target: Target,
        headers: Headers,
        body: bytes,
        options: PublishOptions = NO_OPTIONS,
        routing_key: str = "",
    ) -> Message:
        """A new message for ``target``, numbered, with its persistence and expiry, and
        the ``routing_key`` a channel routes it by.

        Raises:
            BrokerError: BAD_HEADER_VALUE for a delay or time further ahead than the
                broker's ``max_delay_ms``, or a time given for a channel.
        """
        policy = target.record.policy
        persistent = options.persistent
        if isinstance(target, Queue):
            persistent = persistent and policy.durable
        expires_at = options.expires_at
        if expires_at is not None or policy.message_ttl_ms is not None:
            expires_at = expiry(expires_at, policy, self._clock())
        when = None
        if options.delay_ms is not None or options.deliver_at is not None:
            when = self._when(target, options)
        self._seq += self._stride
        seq = self._seq
        return Message(
            f"{self._id_prefix}-{seq}",
            keyed(target.address, routing_key),
            headers,
            body,
            seq,
            persistent,
            expires_at,
            when,
            priority=options.priority,
            routing_key=routing_key,
        )

    def _when(self, target: Target, options: PublishOptions) -> float | None:
        """When a message with a delay or time may be delivered (None: now)."""
        when = scheduled_at(options, self._clock(), self._max_delay_ms)
        if when is None:
            return None
        if not isinstance(target, Queue):
            raise BrokerError(
                ErrorCode.BAD_HEADER_VALUE,
                "delay and deliver-at are for queues (/queue/): a channel delivers at once",
            )
        return when

    def accept(
        self, target: Target, message: Message, *, moved: bool = False, key: str | None = None
    ) -> Ticket | None:
        """Admit ``message`` and log it if it is persistent; return the log's ticket.

        Args:
            target: where it goes.
            message: from :meth:`prepare`.
            moved: the broker moves it from one queue to another (a dead letter): the disk
                floor, which stops publishers, does not stop it (the move frees what it
                writes, and refusing it would lose the message).
            key: its idempotency key, from :meth:`key_for`: remembered, and written with
                the message.

        Raises:
            BrokerError: QUEUE_FULL, STORAGE_FULL (nothing was logged).
        """
        if (
            message.persistent
            and not moved
            and self._destinations.gauge.storage_full
            and (isinstance(target, Queue) or target.stores)
        ):
            raise _storage_full()  # it would be written, and the disk is under its floor
        if isinstance(target, Queue):
            claimed = target.admit(message)
            # a delayed message of a cluster's queue is written (claimed) even when
            # transient: the node holds it until its time, the others adopt it if it stops
            logged = message.persistent or (claimed and message.deliver_at is not None)
            if key is not None:
                return self._accept_keyed(target, message, key, claimed, logged)
            if logged:
                return self.journal.append(
                    target.record.id, message, claimed=claimed, deliver_at=message.deliver_at
                )
        elif message.persistent and target.stores:
            # one log record per durable subscription's backlog and bound durable queue,
            # written together; each expects it (a paged one reads nothing beyond it until
            # it arrives)
            appends = [
                stored(key, routed, claimed=claimed)
                for key, claimed, routed in target.admit(message)
            ]
            if appends:
                return self.journal.write(appends=appends)
        return None

    def arrive(self, target: Target, message: Message, ticket: Ticket | None) -> bool:
        """Hand an accepted message to its destination; False if its write failed (or the
        destination was deleted meanwhile), in which case it is never delivered."""
        failed = ticket is not None and ticket.error is not None
        if failed or target.deleted:
            self.withdraw(target, message)
            return not failed
        target.publish(message)
        if self.feed is not None and not isinstance(target, Queue):
            self.feed(target, message)
        return True

    def withdraw(self, target: Target, message: Message, key: str | None = None) -> None:
        """An accepted message will not arrive after all (its write failed, or the commit
        it belongs to failed): what admitted it forgets it, and its idempotency ``key``
        (as accepted with it) publishes again."""
        if isinstance(target, Queue):
            target.withdraw(message)
            if key is not None:
                self.dedup.withdraw(target.record.id, key, message.id)
        elif message.persistent:
            target.withdraw(message)

    def key_for(self, target: Target, options: PublishOptions) -> str | None:
        """The idempotency key of a publish to ``target``, if ``target`` is a queue that
        remembers keys (its ``dedup_window_ms`` is not 0); else None.

        Raises:
            BrokerError: BAD_HEADER_VALUE for an empty or oversized key (to any target).
        """
        key = options.idempotency_key
        if key is None:
            return None
        check_key(key)
        if not isinstance(target, Queue) or not target.policy.dedup_window_ms:
            return None
        return key

    def duplicate(self, target: Target, key: str) -> str | None:
        """If ``target`` saw ``key`` within its window, the id of the message it published
        (nothing is to be enqueued, and the command depends on that message's write if still
        pending); else None."""
        found = self._original(target, key)
        if found is None:
            return None
        message_id, ticket = found
        if ticket is not None:
            self.journal.depend(ticket)
        return message_id

    def _original(self, target: Target, key: str) -> tuple[str, Ticket | None] | None:
        """The message and pending write of an earlier publish of ``key``, counted as a
        deduplicated publish of ``target``; None when this publish is new."""
        entry = self.dedup.find(target.record.id, key)
        if entry is None or not isinstance(target, Queue):
            return None
        target.deduplicated += 1
        return entry[0], entry[2]

    def publish(
        self,
        target: Target,
        headers: Headers,
        body: bytes,
        options: PublishOptions = NO_OPTIONS,
        routing_key: str = "",
    ) -> Publication:
        """Prepare, accept and deliver once durable; for callers without a session (HTTP).

        Returns:
            the message id, and the ticket of its write (None when nothing was written);
            for a duplicate, the original's id and pending write.

        Raises:
            BrokerError: BAD_HEADER_VALUE, QUEUE_FULL.
        """
        key = self.key_for(target, options)
        original = None if key is None else self._original(target, key)
        if original is not None:
            return Publication(*original, duplicate=True)
        message = self.prepare(target, headers, body, options, routing_key)
        ticket = self.accept(target, message, key=key)
        if ticket is None or ticket.done:
            self.arrive(target, message, ticket)
        else:
            ticket.add_callback(lambda done: self.arrive(target, message, done))
        return Publication(message.id, ticket)

    def _accept_keyed(
        self, queue: Queue, message: Message, key: str, claimed: bool, logged: bool
    ) -> Ticket | None:
        """Log an admitted message with its idempotency key (one write), and remember the
        key until the queue's window ends."""
        queue_id = queue.record.id
        expires_at = self._clock() + queue.policy.dedup_window_ms / 1000
        ticket = None
        if logged:
            record = IdempotencyKey(queue_id, key, message.id, expires_at)
            ticket = self.journal.append(
                queue_id, message, claimed=claimed, deliver_at=message.deliver_at, key=record
            )
        self.dedup.remember(queue_id, key, message.id, expires_at, ticket)
        return ticket

    def dead_letter(self, queue: Queue, message: Message, why: Retirement) -> bool:
        """Move a retired message to its queue's dead-letter queue (created if missing,
        owned by the same user) or dead-letter channel (with the policy's routing key, else
        its own); drop it if the target refuses it or is missing (a channel), or if
        ``queue`` may no longer publish there (counted by ``queue``). Return whether it
        moved."""
        route = self._dead_letter_route(queue, message)
        if route is None or (why.reason != "rejected" and _looped(queue, message, route[0])):
            return False
        target, routing_key = route
        headers = dead_letter_headers(
            message.headers,
            reason=why.reason,
            # the queue: the destination of a message a channel routed here is the channel's
            origin=queue.address,
            published=message.destination,
            message_id=message.id,
            deliveries=why.deliveries,
            error=why.error,
            at=self._clock(),
        )
        moved = self.prepare(
            target, headers, message.body, _moved_options(queue, message), routing_key
        )
        try:
            ticket = self.accept(target, moved, moved=True)
        except BrokerError:
            return False  # the dead-letter queue is full and refuses: the message is dropped
        if ticket is None or ticket.done:
            self.arrive(target, moved, ticket)
        else:
            ticket.add_callback(lambda done: self.arrive(target, moved, done))
        return True

    def _dead_letter_route(self, queue: Queue, message: Message) -> tuple[Target, str] | None:
        """Where ``queue``'s dead letters go and with which routing key, or None."""
        policy = queue.policy
        destinations = self._destinations
        if policy.dead_letter_exchange is not None:
            channel = destinations.channels.get(policy.dead_letter_exchange)
            if channel is None:
                return None
            if not may_feed(queue.record, channel.record):
                queue.dead_letter_refused += 1
                return None
            key = policy.dead_letter_routing_key
            return channel, key if key is not None else message.routing_key or queue.name
        name = policy.dead_letter_queue
        if name is None or name == queue.name:
            return None
        target = destinations.queues.get(name)
        if target is not None and not may_feed(queue.record, target.record):
            queue.dead_letter_refused += 1
            return None
        if target is None:
            owner = queue.record.owner_id
            record = new_record(DestinationKind.QUEUE, name, owner, None, self._clock())
            added = destinations.add(record)
            destinations.created(record)
            if not isinstance(added, Queue):
                return None
            target = added
        return target, ""

    def restore(self, found: Iterable[StoredBacklog], cleanly: bool) -> int:
        """Give each queue the head of what the store holds for it at start (the rest of a
        paged backlog is counted in the background); numbering continues after the highest
        stored seq, and what belongs to no queue any more is removed from the store.

        Returns:
            how many messages were restored into memory.
        """
        by_id = self._by_id()
        restored = 0
        orphans: list[StoredBacklog] = []
        for item in found:
            self._seq = max(self._seq, item.high_seq)
            queue = by_id.get(item.queue_id)
            if queue is None:
                orphans.append(item)
                continue
            queue.restore(item, cleanly)
            restored += len(item.head)
        for orphan in orphans:
            self._forget_stored(orphan)
        return restored

    def _forget_stored(self, orphan: StoredBacklog) -> None:
        """Remove from the store the messages of a queue that no longer exists (one
        priority's of them, and its scheduled ones when ``orphan`` carries them)."""
        pager = self._destinations.paging
        if pager is not None:
            pager.pager.purge_tail(
                orphan.queue_id, -1, orphan.high_seq, (), priority=orphan.priority
            )
            if orphan.scheduled_count:  # never part of a tail; the start-up read has a window
                pager.pager.purge_scheduled(orphan.queue_id, None)
            return
        self.journal.write(removals=[(orphan.queue_id, m.seq) for m in orphan.head])
        if orphan.scheduled:
            self.journal.write(removals=[(orphan.queue_id, m.seq) for m in orphan.scheduled])

    def _by_id(self) -> dict[str, Queue]:
        """Every queue and durable subscription backlog, by the id its messages carry."""
        destinations = self._destinations
        by_id = {queue.record.id: queue for queue in destinations.queues.values()}
        for channel in destinations.channels.values():
            by_id.update(channel.durables)
        return by_id

    def mark_redelivered(self) -> Ticket:
        """At a clean shutdown: log which waiting messages were delivered before, and retry
        the removals that failed."""
        destinations = self._destinations
        queues = [*destinations.queues.values()]
        for channel in destinations.channels.values():
            queues.extend(channel.durables.values())
        keys = [key for queue in queues for key in queue.redelivered_keys()]
        self.journal.retry_removals()
        return self.journal.write(redelivered=keys)


def _moved_options(queue: Queue, message: Message) -> PublishOptions:
    """What a message moved out of ``queue`` asks of its new queue: its priority, no expiry
    nor schedule of its own, and to be stored unless its publisher said not to (a
    non-persistent message of a durable queue; one of a non-durable queue asked nothing
    the queue could keep, so it is stored where it can be)."""
    persistent = message.persistent or not queue.policy.durable
    if persistent and message.priority == DEFAULT_PRIORITY:
        return NO_OPTIONS
    return PublishOptions(persistent=persistent, priority=message.priority)


def _storage_full() -> BrokerError:
    return BrokerError(
        ErrorCode.STORAGE_FULL,
        "the broker's disk is below its free-space floor: persistent messages are refused"
        " until space is freed",
    )


def _looped(queue: Queue, message: Message, target: Target) -> bool:
    """Whether ``message`` came into ``queue`` through the dead-letter channel ``target``
    after dying in ``queue`` (its last death): without a consumer's rejection in the loop
    it would go round forever (expiry, length). A redrive publishes to the queue itself,
    so a redriven message may die and be dead-lettered again."""
    if not isinstance(target, Channel):
        return False
    kind, name, _ = split_address(message.destination)
    if kind is not DestinationKind.CHANNEL or name != target.name:
        return False
    return any(key == ORIGIN_HEADER and value == queue.address for key, value in message.headers)
