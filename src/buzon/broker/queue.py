"""Queue: competing consumers, each message to exactly one of them.

A queue is a dispatcher in front of a backlog (``backlog``): the backlog holds the waiting
messages and says which is next; the queue decides which consumer gets it, applies the
policy (length bounds, expiry, delivery limits, dead letters) and keeps the counters.

Consumers that can take a message right now are in ``_ring``, a deque used round-robin: the
dispatcher takes the consumer at the left, hands it one message and puts it back at the right
if it still has credit. A consumer that lost credit (window full, session not writable) drops
out of the ring and is put back by whatever gives it credit again (ACK, NACK,
``set_writable(True)``), so a publish costs O(1) however many consumers are idle or full.
Removal from the ring is lazy when a session stops being writable (it may happen inside a
delivery, from the sink) and eager on unsubscribe (so the ring never grows with churn).

The dispatcher hands out only *resident* messages (in memory). A paged backlog may hold
waiting messages that are still in the store; it reads them back by itself and calls
:meth:`Queue.backlog_ready` when they arrive.

HTTP consumers pull instead: :meth:`Queue.take` hands waiting messages out in the same
order, in flight until :meth:`Queue.ack_taken` or :meth:`Queue.return_taken`. A puller
waiting for messages registers a one-shot :meth:`Queue.call_when_ready`.

Policy. Every message handed out comes through :meth:`Queue._next`, which retires expired
messages and those delivered ``max_deliveries`` times already (to the dead-letter queue if
one is set). :meth:`Queue.admit` enforces ``max_length`` before a publish is accepted, and
remembers the admitted message until it arrives (``_incoming``: a paged backlog never reads
past a message still being written).

Deleting a queue drops its waiting messages, ends every subscription (the sessions get
DESTINATION_DELETED) and drops in-flight messages as they come back instead of requeueing.

Dispatch is not re-entrant: a sink that acks, publishes or subscribes from inside
``deliver()`` only updates state, and the loop already running picks the new work up. That
keeps the stack flat when a consumer acks every delivery synchronously.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

from buzon.broker.addresses import address
from buzon.broker.backlog import BacklogHost, MemoryBacklog, from_store
from buzon.broker.claimed_backlog import ClaimedBacklog
from buzon.broker.config import DEFAULT_BACKLOG_WINDOW
from buzon.broker.deadlines import AckDeadlines, LapseCounters
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal
from buzon.broker.leveled_backlog import LeveledBacklog
from buzon.broker.lifetimes import Lifetime
from buzon.broker.message import Disposition, Message, Outcome
from buzon.broker.paged_backlog import PagedBacklog, Paging
from buzon.broker.policy import backoff_ms, dead_lettering, over_limit
from buzon.broker.schedule import Schedule
from buzon.broker.stats import QueueStats
from buzon.broker.subscription import Subscription
from buzon.broker.timers import Timers
from buzon.errors import BrokerError, ErrorCode
from buzon.priority import DEFAULT_PRIORITY
from buzon.store import (
    ClaimLog,
    DestinationRecord,
    MessageKey,
    Overflow,
    StoredBacklog,
    StoredMessage,
)

PULL_DEMAND = 100
"""Messages a waiting HTTP puller or an auto-ack subscription counts for when a shared
queue claims (neither has a credit window of its own)."""

DeadLetter = Callable[["Queue", Message, "Retirement"], bool]
"""Moves a retired message to its queue's dead-letter queue (``queue, message, why``);
returns whether it was moved (False: dropped)."""

ERROR_CHARS = 1024
"""The longest NACK ``error`` text kept with a message (longer ones are cut)."""


class Retirement:
    """Why a message leaves its queue undelivered, and its story so far (what the
    dead-letter headers say).

    Attributes:
        reason: ``expired``, ``max-deliveries``, ``rejected``, ``max-length`` or
            ``ack-timeout``.
        deliveries: how often it was delivered.
        error: the last NACK's ``error``, if any.
    """

    __slots__ = ("deliveries", "error", "reason")

    def __init__(self, reason: str, deliveries: int = 0, error: str | None = None) -> None:
        self.reason = reason
        self.deliveries = deliveries
        self.error = error


def _no_dead_letters(queue: Queue, message: Message, why: Retirement) -> bool:
    """Retired messages are simply dropped."""
    return False


class Queue:
    """One ``/queue/<name>`` destination (or a durable subscription's backlog).

    Args:
        record: what the queue is (name, id, owner, key, policy).
        gauge: the broker-wide count of resident bytes, for producer flow control.
        journal: where persistent messages are logged.
        clock: Unix time, for expiry.
        dead_letter: what to do with a retired message when the policy names a
            dead-letter queue.
        expiring: the queues a broker's expiry sweep visits; this queue is in it while it
            has waiting messages that can expire.
        paging: when given and the queue is durable, its backlog pages: a bounded window
            in memory, the rest in the store (the policy may set its own window).
    """

    __slots__ = (
        "_acked",
        "_backlog",
        "_bounded",
        "_bytes",
        "_clock",
        "_dead_letter",
        "_dead_lettered",
        "_delivered",
        "_dispatching",
        "_errors",
        "_in_flight",
        "_incoming",
        "_lapses",
        "_nacks",
        "_paging",
        "_published",
        "_redeliveries",
        "_retired",
        "_retried",
        "_ring",
        "_schedule",
        "_scheduled_total",
        "_shared",
        "_subs",
        "_timers",
        "_waiters",
        "address",
        "dead_letter_refused",
        "dead_lettered_by_reason",
        "deduplicated",
        "deleted",
        "lifetime",
        "name",
        "policy",
        "record",
    )

    def __init__(
        self,
        record: DestinationRecord,
        gauge: QueuedBytes,
        journal: Journal | None = None,
        *,
        clock: Callable[[], float] = time.time,
        dead_letter: DeadLetter = _no_dead_letters,
        expiring: set[BacklogHost] | None = None,
        paging: Paging | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.record = record
        policy = self.policy = record.policy
        self.name = record.name
        self.address = address(record.kind, record.name)
        self.deleted = False
        journal = journal if journal is not None else Journal(None)
        expiring = expiring if expiring is not None else set()
        # admitted, waiting for the journal before they arrive: seqs in admission order
        self._incoming: dict[int, None] = {}
        self._backlog: MemoryBacklog | LeveledBacklog
        self._shared: ClaimedBacklog | None = None
        self._paging: Paging | None = None  # a paged backlog's, for the schedule's pages too
        if paging is not None and paging.shared:
            self._backlog = self._shared = ClaimedBacklog(
                self,
                record.id,
                gauge,
                journal,
                expiring,
                claims=cast(ClaimLog, paging.pager),
                window=policy.backlog_window or paging.window,
                window_bytes=policy.backlog_window_bytes or paging.window_bytes,
                demand=self.demand,
                idle=self._idle,
            )
        elif paging is not None and policy.durable:
            self._paging = Paging(
                paging.pager,
                policy.backlog_window or paging.window,
                policy.backlog_window_bytes or paging.window_bytes,
            )
            self._backlog = PagedBacklog(
                self,
                record.id,
                gauge,
                journal,
                expiring,
                paging=self._paging,
                incoming=self._incoming,
            )
        else:
            self._backlog = MemoryBacklog(self, record.id, gauge, journal, expiring)
        self._bounded = policy.max_length is not None or policy.max_length_bytes is not None
        self._clock = clock
        self._timers = timers if timers is not None else Timers(clock)
        self._schedule: Schedule | None = None  # made when a message is first scheduled
        # per seq, while the message is here: NACKs so far, and the last NACK's error
        self._nacks: dict[int, int] = {}
        self._errors: dict[int, str] = {}
        self._lapses: LapseCounters | None = None  # made when a subscription has deadlines
        self._dead_letter = dead_letter
        self._ring: deque[Subscription] = deque()
        self._subs: set[Subscription] = set()
        self.lifetime: Lifetime | None = None  # ends by itself (see lifetimes)
        self._waiters: list[Callable[[], None]] = []
        self._dispatching = False
        self._in_flight = 0
        self._bytes = 0
        self._published = 0
        self._delivered = 0
        self._acked = 0
        self._redeliveries = 0
        self._retired = 0
        self._dead_lettered = 0
        self._retried = 0
        self._scheduled_total = 0
        self.dead_lettered_by_reason: dict[str, int] = {}
        # retired messages dropped because this queue may no longer publish to its
        # dead-letter queue (counted by the dead-letter mover, see Intake.dead_letter)
        self.dead_letter_refused = 0
        self.deduplicated = 0  # publishes answered by an earlier one's idempotency key

    @property
    def shared(self) -> bool:
        """Whether this queue is shared by the nodes of a cluster (its messages are claimed
        from a shared store, see ``claimed_backlog``)."""
        return self._shared is not None

    @property
    def paged(self) -> bool:
        """Whether this queue's backlog keeps its tail in the store."""
        backlog = self._backlog
        return isinstance(backlog, PagedBacklog) or (
            isinstance(backlog, LeveledBacklog) and backlog.paged
        )

    # -- arriving ------------------------------------------------------------------------

    def admit(self, message: Message) -> bool:
        """Accept a message that will arrive (through :meth:`publish`) once logged.

        Returns:
            whether to write it as claimed by this node (a queue shared by a cluster's
            nodes, whose consumers here can take it: see ``claimed_backlog``).

        Raises:
            BrokerError: QUEUE_FULL when the queue is at its maximum length and its
                overflow policy refuses publishes (scheduled messages count: each will
                be waiting in the queue).
        """
        policy = self.policy
        if self._bounded and policy.overflow is Overflow.REJECT_PUBLISH:
            backlog = self._backlog
            schedule = self._schedule
            later, later_bytes = (0, 0) if schedule is None else (schedule.count, schedule.bytes)
            if over_limit(
                policy,
                backlog.depth + later + len(self._incoming) + 1,
                backlog.waiting_bytes + later_bytes + len(message.body),
            ):
                raise BrokerError(ErrorCode.QUEUE_FULL, f"{self.address} is at its maximum length")
        self._incoming[message.seq] = None
        if self._shared is not None and message.deliver_at is not None:
            return True  # held here, claimed, until its time (see adopt_scheduled)
        return self._shared is not None and self._shared.reserve(message.seq)

    def publish(self, message: Message) -> None:
        """Enqueue an admitted message and hand it out if a consumer can take it."""
        self._arrive(message, logged=message.persistent)

    def fan_in(self, message: Message) -> None:
        """A channel's message for this durable subscription's backlog: admitted (and
        logged, when persistent) before its write, or, for a backlog created since or a
        transient message, admitted now."""
        if message.seq in self._incoming:
            self._arrive(message, logged=message.persistent)
        else:
            self.admit(message)  # a durable backlog drops its oldest: it never refuses
            self._arrive(message, logged=False)

    def withdraw(self, message: Message) -> None:
        """An admitted message will not arrive after all (its journal write failed)."""
        self._incoming.pop(message.seq, None)
        if self._shared is not None and message.deliver_at is None:
            self._shared.unreserve(message.seq)
        self._backlog.resume()

    def restore(self, found: StoredBacklog, cleanly: bool) -> None:
        """Take what the store holds for this queue at start (see ``paged_backlog``):
        the head of its backlog of one priority, and its scheduled messages if ``found``
        carries them."""
        backlog = self._leveled(found.priority)
        before = backlog.waiting_bytes
        backlog.restore_head(found, cleanly)
        self._bytes += backlog.waiting_bytes - before
        if found.scheduled_count:
            now = self._clock()

            def redelivered(item: StoredMessage) -> bool:
                # after a crash, one whose time had come may have been delivered
                due = item.deliver_at is None or item.deliver_at <= now
                return item.redelivered or (not cleanly and due)

            self._later().restore(
                found.scheduled, found.scheduled_count, found.scheduled_bytes, redelivered
            )
            self._bytes += found.scheduled_bytes

    def _arrive(self, message: Message, *, logged: bool) -> None:
        self._incoming.pop(message.seq, None)
        self._published += 1
        self._bytes += len(message.body)
        backlog = self._backlog
        if message.deliver_at is not None and not self.deleted:
            self._scheduled_total += 1
            self._later().add(
                message, message.deliver_at, redelivered=False, kept=self._kept(message)
            )
            backlog.resume()  # reads no longer wait for it
            return
        if message.priority != DEFAULT_PRIORITY:
            backlog = self._leveled(message.priority)
        backlog.add(message, logged=logged)
        if self._ring and backlog.resident:
            self._dispatch()
        if self.policy.overflow is Overflow.DROP_HEAD:
            self._drop_heads()
        if self._waiters and backlog.resident:
            self._wake()

    def _leveled(self, priority: int) -> MemoryBacklog | LeveledBacklog:
        """The backlog, made leveled when a first message of another priority than the
        default comes (a queue shared by a cluster's nodes keeps publish order)."""
        backlog = self._backlog
        if (
            priority != DEFAULT_PRIORITY
            and self._shared is None
            and not isinstance(backlog, LeveledBacklog)
        ):
            backlog = self._backlog = LeveledBacklog(self, backlog)
        return backlog

    # -- BacklogHost: what a paged backlog reports ---------------------------------------

    def rekey(self, record: DestinationRecord) -> None:
        """Take another record of the same destination (another node created it at the
        same time and stored it first): its id, owner, key and policy from now on."""
        self.record = record
        self.policy = record.policy
        self._bounded = record.policy.max_length is not None or (
            record.policy.max_length_bytes is not None
        )
        self._backlog.queue_id = record.id
        if self._schedule is not None:
            self._schedule.queue_id = record.id

    def available(self) -> None:
        """Another node wrote messages any node may claim (a shared queue only)."""
        if self._shared is not None:
            self._shared.available()

    def refresh(self, count: int, size: int, first_expiry: float | None) -> None:
        """The cluster's count of this queue's unclaimed messages (a shared queue only)."""
        if self._shared is not None:
            self._shared.refresh(count, size, first_expiry)
            if self.policy.overflow is Overflow.DROP_HEAD:
                self._drop_heads()

    def waiting_below(self, priority: int) -> bool:
        """Whether messages of a lower priority than ``priority`` wait (handed out after
        every waiting message of ``priority``)."""
        backlog = self._backlog
        return isinstance(backlog, LeveledBacklog) and backlog.waiting_below(priority)

    def adopt_scheduled(self) -> None:
        """Scheduled messages of this shared queue wait in the store held by no node (the
        node that held them stopped or died, or ``buzon migrate`` copied them): claim some,
        and hold them here until their time, as if published here."""
        if self._shared is not None and not self.deleted:
            self._shared.adopt_scheduled(self._adopted)

    def _adopted(self, items: list[StoredMessage]) -> None:
        schedule = self._later()
        for item in items:
            when = item.deliver_at if item.deliver_at is not None else self._clock()
            self._bytes += len(item.body)
            schedule.add(from_store(item), when, redelivered=item.redelivered, kept=False)

    def _trim_shared(self, shared: ClaimedBacklog) -> None:
        """A drop-head bound holds across the cluster: the oldest unclaimed messages go,
        in the store (the size bound is turned into a count by the average size)."""
        policy = self.policy
        depth = shared.depth
        keep = policy.max_length if policy.max_length is not None else depth
        if policy.max_length_bytes is not None and depth:
            keep = min(keep, policy.max_length_bytes * depth // max(shared.waiting_bytes, 1))
        shared.trim(keep)

    def backlog_ready(self) -> None:
        """Messages read back from the store are resident: hand them out."""
        if self._ring:
            self._dispatch()
        if self.policy.overflow is Overflow.DROP_HEAD:
            self._drop_heads()
        if self._waiters and self._backlog.resident:
            self._wake()

    def backlog_expired(self, messages: Sequence[Message]) -> None:
        """Tail messages expired in the store: retire them (they were never in memory)."""
        self._retire_stored(messages, "expired")

    def backlog_dropped(self, messages: Sequence[Message]) -> None:
        """Unclaimed messages dropped from the store's head (a drop-head queue over its
        bounds, across the cluster): retire them."""
        self._retire_stored(messages, "max-length")

    def _retire_stored(self, messages: Sequence[Message], reason: str) -> None:
        for message in messages:
            self._bytes -= len(message.body)
            self._retired += 1
            self._to_dead_letters(message, Retirement(reason))

    # -- Target: what sessions call ------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Add a consumer and hand it the backlog it has room for."""
        self._subs.add(sub)
        if self.lifetime is not None:
            self.lifetime.attached()
        self.resume(sub)

    def detach(self, sub: Subscription) -> None:
        """Remove a consumer; its unacked messages return to the queue, redelivered."""
        self._subs.discard(sub)
        sub.active = False
        if sub.in_ring:
            sub.in_ring = False
            self._ring.remove(sub)
        returned = sub.take_all()
        if returned:
            self._give_back(returned)
        elif self._shared is not None and self._idle():
            self._shared.shed()
        if self.lifetime is not None:
            self.lifetime.detached(len(self._subs))

    def resume(self, sub: Subscription) -> None:
        """Put ``sub`` back in the ring if it can take messages, and dispatch."""
        if not sub.in_ring and sub.can_take:
            sub.in_ring = True
            self._ring.append(sub)
            if self._backlog.resident:
                self._dispatch()
        if self._shared is not None:
            self._shared.resume()  # more credit: claim more

    def ack_deadlines(self, sub: Subscription, timeout_ms: int) -> AckDeadlines:
        """Give ``sub`` (before :meth:`attach`) an ack deadline on each delivery."""
        if self._lapses is None:
            self._lapses = LapseCounters()
        return AckDeadlines(sub, self._timers, self._clock, timeout_ms, self.lapse)

    def lapse(self, sub: Subscription, message: Message) -> None:
        """A delivery to ``sub`` was not settled in time (``sub`` no longer holds it): the
        message comes back, redelivered, preferably to another consumer; or, if that was
        its last delivery (``max_deliveries``), it is dead-lettered at once (``ack-timeout``)."""
        self._count_lapse(message)
        ring = self._ring
        if sub.in_ring and len(ring) > 1:
            ring.remove(sub)  # the others first
            ring.append(sub)
        self._return_lapsed(message)
        self.resume(sub)

    def lease_ran_out(self, message: Message) -> None:
        """A pulled message's lease ran out unsettled: it comes back, redelivered, as a
        lapsed delivery does (counted, and dead-lettered as ``ack-timeout`` if it was its
        last delivery)."""
        self._count_lapse(message)
        self._return_lapsed(message)

    def _return_lapsed(self, message: Message) -> None:
        """A lapsed delivery comes back, or leaves for good when no delivery is left."""
        most = self.policy.max_deliveries
        if most is not None and self._backlog.deliveries(message) >= most and not self.deleted:
            self._in_flight -= 1
            self._retire(message, "ack-timeout")
        else:
            self._give_back([message])

    def _count_lapse(self, message: Message) -> None:
        """Count a delivery that lapsed, remembering its number for the dead-letter reason."""
        lapses = self._lapses
        if lapses is None:
            lapses = self._lapses = LapseCounters()
        lapses.expired += 1
        if self.policy.max_deliveries is not None:
            lapses.ended(message.seq, self._backlog.deliveries(message))

    def late_settle(self) -> None:
        """Count an ACK, NACK or extension of a delivery that had lapsed (a no-op)."""
        if self._lapses is not None:
            self._lapses.late += 1

    def settle(self, sub: Subscription, messages: Sequence[Message], outcome: Outcome) -> None:
        """Settle messages ``sub`` held (see :meth:`conclude`), then refill its window."""
        self.conclude(messages, outcome)
        self.resume(sub)

    def conclude(self, messages: Sequence[Message], outcome: Outcome) -> None:
        """Handed-out messages were settled by their consumer (or lease holder).

        Accepted ones are forgotten for good. Rejected ones are dead-lettered at once
        (reason ``rejected``). Released ones return to their original place (publish order
        within their priority, redelivered) after the outcome's ``delay_ms``, or, without
        one, after the queue's retry back-off for its n-th release (at once when the policy
        has none); one that used its last delivery the policy allows is dead-lettered
        instead (reason ``max-deliveries``: no retry could deliver it).
        """
        if self.deleted:  # whatever the outcome: a deleted queue's messages are gone
            self._give_back(messages)
            return
        disposition = outcome.disposition
        if disposition is Disposition.ACCEPT:
            self.ack_taken(messages)
            return
        if outcome.error is not None:
            error = outcome.error[:ERROR_CHARS]
            for message in messages:
                self._errors[message.seq] = error
        if disposition is Disposition.REJECT:
            self._in_flight -= len(messages)
            for message in messages:
                self._retire(message, "rejected")
        else:
            self._requeue(messages, outcome.delay_ms)

    def _requeue(self, messages: Sequence[Message], delay_ms: int | None) -> None:
        """Released messages go back now or after their wait (see :meth:`conclude`)."""
        nacks = self._nacks
        policy = self.policy
        most = policy.max_deliveries
        now: list[Message] = []
        later: list[tuple[Message, int]] = []
        for message in messages:
            if most is not None and self._backlog.deliveries(message) >= most:
                self._in_flight -= 1
                self._retire(message, "max-deliveries")
                continue
            count = nacks[message.seq] = nacks.get(message.seq, 0) + 1
            wait = delay_ms if delay_ms is not None else backoff_ms(policy, count)
            if wait and not self.deleted:
                later.append((message, wait))
            else:
                now.append(message)
        if now:
            self._give_back(now)
        if later:
            self._retry_later(later)

    def _retry_later(self, later: Sequence[tuple[Message, int]]) -> None:
        """Hold refused messages until their retry time (their store records say when)."""
        self._in_flight -= len(later)
        self._retried += len(later)
        schedule = self._later()
        backlog = self._backlog
        start = self._clock()
        logged = []
        for message, wait in later:
            when = start + wait / 1000
            kept = self._kept(message)
            if kept:
                logged.append(((backlog.queue_id, message.seq), when))
            backlog.set_aside(message)
            schedule.add(message, when, redelivered=True, kept=kept)
        if logged:
            backlog.reschedule(logged)
        if self._shared is not None and self._idle():
            self._shared.shed()

    def _kept(self, message: Message) -> bool:
        """Whether a scheduled message's store record says it is scheduled (so it may
        leave memory until its time): a persistent one, on a queue that is not shared by
        a cluster's nodes (those hold their scheduled retries in memory, claimed)."""
        return message.persistent and self._shared is None and self._backlog.journaling

    def _later(self) -> Schedule:
        """This queue's schedule (made on first use); a paged queue's pages too."""
        schedule = self._schedule
        if schedule is None:
            paging = self._paging
            schedule = self._schedule = Schedule(
                self._timers,
                self._clock,
                self._due,
                queue_id=self._backlog.queue_id,
                pager=None if paging is None else paging.pager,
                window=DEFAULT_BACKLOG_WINDOW if paging is None else paging.window,
            )
        return schedule

    def _due(self, fresh: list[Message], again: list[Message]) -> None:
        """Scheduled messages whose time came join the backlog, in their seq place (the
        first of a priority other than the default makes the backlog leveled)."""
        backlog = self._backlog
        for message in (*fresh, *again):
            if message.priority != DEFAULT_PRIORITY:
                backlog = self._leveled(message.priority)
                break
        if fresh:
            backlog.give_back(fresh, redelivered=False, fresh=True)
        if again:
            backlog.give_back(again, fresh=True)
        if self._ring:
            self._dispatch()
        if self.policy.overflow is Overflow.DROP_HEAD:
            self._drop_heads()  # they count once they wait in the queue
        if self._waiters and backlog.resident:
            self._wake()
        if self._shared is not None and self._idle():
            self._shared.shed()

    # -- scheduled messages (the dashboard's list) ----------------------------------------

    def scheduled(self, limit: int) -> list[tuple[float, Message]]:
        """The first ``limit`` scheduled messages with their times, soonest first."""
        if self._schedule is None:
            return []
        shown: list[tuple[float, Message]] = []
        for pair in self._schedule:
            if len(shown) == limit:
                break
            shown.append(pair)
        return shown

    def deliver_now(self, message_id: str) -> bool:
        """Make a scheduled message ready now; False if none has that id."""
        schedule = self._schedule
        message = None if schedule is None else schedule.find(message_id)
        if schedule is None or message is None:
            return False
        again = schedule.redelivered(message)
        schedule.take(message)
        self._due([] if again else [message], [message] if again else [])
        return True

    def cancel_scheduled(self, message_id: str) -> bool:
        """Drop a scheduled message for good; False if none has that id."""
        schedule = self._schedule
        message = None if schedule is None else schedule.find(message_id)
        if schedule is None or message is None:
            return False
        schedule.take(message)
        self._discard(message)
        return True

    def _discard(self, message: Message) -> None:
        """A scheduled message leaves for good (cancelled)."""
        self._bytes -= len(message.body)
        self._unmark(message)

    def _unmark(self, message: Message) -> None:
        """Forget a scheduled message's marks and store record, its NACK count and error."""
        self._backlog.discard(message)
        if self._nacks or self._errors:
            self._nacks.pop(message.seq, None)
            self._errors.pop(message.seq, None)

    # -- pulling (HTTP consumers) --------------------------------------------------------

    def take(self, limit: int) -> list[tuple[Message, bool]]:
        """Hand out up to ``limit`` resident waiting messages, oldest first, to a puller.

        They stay in flight until :meth:`ack_taken` or :meth:`return_taken`.

        Returns:
            ``(message, redelivered)`` pairs.
        """
        taken: list[tuple[Message, bool]] = []
        while len(taken) < limit:
            message = self._next()
            if message is None:
                break
            taken.append((message, self._count_delivery(message)))
        self._in_flight += len(taken)
        if self._shared is not None and self._idle():
            self._shared.shed()  # claimed for this pull beyond what it took
        return taken

    def peek(self, limit: int) -> list[tuple[Message, bool]]:
        """The first ``limit`` resident waiting messages, oldest first, left where they are.

        Messages the next hand-out would retire instead (expired, delivered
        ``max_deliveries`` times) are skipped, so a consumer gets what was shown.

        Returns:
            ``(message, redelivered)`` pairs.
        """
        now = self._clock()
        most = self.policy.max_deliveries
        backlog = self._backlog
        shown: list[tuple[Message, bool]] = []
        for message in backlog.waiting():
            if len(shown) == limit:
                break
            if (message.expires_at is not None and message.expires_at <= now) or (
                most is not None and backlog.deliveries(message) >= most
            ):
                continue
            shown.append((message, backlog.is_redelivered(message)))
        return shown

    def ack_taken(self, messages: Sequence[Message]) -> None:
        """Handed-out messages were handled: forget them."""
        self._in_flight -= len(messages)
        self._acked += len(messages)
        for message in messages:
            self._release(message)

    def return_taken(self, messages: Sequence[Message]) -> None:
        """Handed-out messages come back at once, marked redelivered (a lease ran out,
        its holder was disabled; a NACK goes through :meth:`refuse`)."""
        self._give_back(messages)

    def _idle(self) -> bool:
        """No consumer here: no subscription, no waiting puller."""
        return not self._subs and not self._waiters

    def demand(self) -> int:
        """How many messages this node's consumers could take now: the free credit of its
        subscriptions (a page's worth for auto-ack ones) and of its waiting pullers."""
        wanted = PULL_DEMAND * len(self._waiters)
        for sub in self._subs:
            if sub.active and sub.consumer.writable:
                wanted += PULL_DEMAND if sub.auto else sub.window - len(sub.unacked)
        return wanted

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when a message waits in memory, ready to hand out (or
        the queue is deleted).

        Runs it now if that is already so. It must not raise.
        """
        if self._backlog.resident or self.deleted:
            callback()
        else:
            self._waiters.append(callback)
            if self._shared is not None:
                self._shared.resume()

    def cancel_call(self, callback: Callable[[], None]) -> None:
        """Forget a callback given to :meth:`call_when_ready` that has not run."""
        if callback in self._waiters:
            self._waiters.remove(callback)
            if self._shared is not None and self._idle():
                self._shared.shed()  # the puller gave up: what was claimed for it goes

    # -- maintenance ---------------------------------------------------------------------

    def purge(self) -> int:
        """Drop every waiting message, scheduled ones included (not those in flight);
        return how many."""
        dropped, size = self._backlog.purge()
        self._bytes -= size
        schedule = self._schedule
        if schedule is not None:
            dropped += schedule.count
            self._bytes -= schedule.bytes
            for message in schedule.take_all():
                self._unmark(message)
        if not self._in_flight:  # nothing is left that a NACK count or an error is about
            self._nacks.clear()
            self._errors.clear()
        return dropped

    def expire(self, now: float) -> int:
        """Retire waiting messages whose time has come; return how many (those of a paged
        backlog's tail leave later, through :meth:`backlog_expired`).

        Costs the messages that are due, whatever the backlog.
        """
        due = self._backlog.expire(now)
        for message in due:
            self._retire(message, "expired")
        return len(due)

    def redelivered_keys(self) -> list[MessageKey]:
        """Log keys of waiting persistent messages that were delivered before (to mark them
        at a clean shutdown, so they come back marked after the restart)."""
        return self._backlog.redelivered_keys()

    def delete(self) -> None:
        """The queue is deleted: drop waiting messages and end every subscription."""
        self.deleted = True
        self._bytes -= self._backlog.waiting_bytes
        if self._schedule is not None:
            self._bytes -= self._schedule.bytes
            self._schedule.clear()  # the store drops the deleted queue's records itself
        self._backlog.delete()
        self._wake()
        for sub in list(self._subs):
            sub.consumer.cancel(sub, ErrorCode.DESTINATION_DELETED, f"{self.address} was deleted")

    @property
    def depth(self) -> int:
        """How many messages wait ready for a consumer (not scheduled, not in flight)."""
        return self._backlog.depth

    def ready(self) -> int:
        """:attr:`depth` once the messages whose time has come are retired (what a count
        shown to a client right after publishing, such as AMQP's declare-ok, must not
        include)."""
        self.expire(self._clock())
        return self._backlog.depth

    @property
    def consumers(self) -> int:
        """How many subscriptions consume from it now."""
        return len(self._subs)

    # -- internals -----------------------------------------------------------------------

    def _next(self) -> Message | None:
        """The oldest resident waiting message that may still be delivered, or None.

        Expired messages and those delivered ``max_deliveries`` times are retired on the way.
        """
        policy = self.policy
        backlog = self._backlog
        while True:
            message = backlog.pop()
            if message is None:
                return None
            if message.expires_at is not None and message.expires_at <= self._clock():
                self._retire(message, "expired")
            elif (
                policy.max_deliveries is not None
                and backlog.deliveries(message) >= policy.max_deliveries
            ):
                lapses = self._lapses
                lapsed = lapses is not None and lapses.by_timeout(
                    message.seq, backlog.deliveries(message)
                )
                self._retire(message, "ack-timeout" if lapsed else "max-deliveries")
            else:
                return message

    def _count_delivery(self, message: Message) -> bool:
        """Count one more delivery of ``message``; return whether it is a redelivery."""
        self._delivered += 1
        backlog = self._backlog
        policy = self.policy
        if policy.max_deliveries is not None or dead_lettering(policy):
            backlog.count_delivery(message)  # a limit, or an x-delivery-count to tell
        again = backlog.is_redelivered(message)
        if again:
            self._redeliveries += 1
        return again

    def _drop_heads(self) -> None:
        backlog = self._backlog
        while backlog.depth and over_limit(self.policy, backlog.depth, backlog.waiting_bytes):
            message = backlog.pop_least()
            if message is None:
                if self._shared is not None:
                    self._trim_shared(self._shared)  # the head waits in the store
                return  # the head is still being read from the store
            self._retire(message, "max-length")

    def _retire(self, message: Message, reason: str) -> None:
        """``message`` leaves without being delivered (expired, over its limits, refused)."""
        self._retired += 1
        why = Retirement(reason, self._backlog.deliveries(message), self._errors.get(message.seq))
        self._release(message)
        self._to_dead_letters(message, why)

    def _to_dead_letters(self, message: Message, why: Retirement) -> None:
        if dead_lettering(self.policy) and self._dead_letter(self, message, why):
            self._dead_lettered += 1
            by_reason = self.dead_lettered_by_reason
            by_reason[why.reason] = by_reason.get(why.reason, 0) + 1

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def _release(self, message: Message) -> None:
        """Forget ``message`` (settled or retired): bytes, bookkeeping, its log record."""
        self._bytes -= len(message.body)
        self._backlog.forget(message)
        if self._nacks or self._errors:
            self._nacks.pop(message.seq, None)
            self._errors.pop(message.seq, None)
        if self._lapses is not None:
            self._lapses.forget(message.seq)

    def _give_back(self, messages: Sequence[Message]) -> None:
        self._in_flight -= len(messages)
        backlog = self._backlog
        if self.deleted:
            for message in messages:
                self._bytes -= len(message.body)
                backlog.drop(message)
            return
        backlog.give_back(messages)
        if self._ring:
            self._dispatch()
        if self._waiters and backlog.resident:
            self._wake()
        if self._shared is not None and self._idle():
            self._shared.shed()  # nobody here takes them: let another node's consumers

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # the loop further up the stack sees the new state
        self._dispatching = True
        ring = self._ring
        backlog = self._backlog
        try:
            while backlog.resident and ring:
                sub = ring.popleft()
                sub.in_ring = False
                if not sub.can_take:
                    continue  # lost credit since it joined; resume() brings it back
                message = self._next()
                if message is None:
                    sub.in_ring = True
                    ring.appendleft(sub)
                    break
                again = self._count_delivery(message)
                if sub.auto:
                    self._acked += 1
                    self._release(message)
                else:
                    self._in_flight += 1
                sub.deliver(message, again)
                # The sink may have acked (and so re-queued sub) or unsubscribed it.
                if not sub.in_ring and sub.can_take:
                    sub.in_ring = True
                    ring.append(sub)
        finally:
            self._dispatching = False

    def statistics(self) -> QueueStats:
        """A snapshot of this queue's counters."""
        return QueueStats(
            name=self.name,
            depth=self._backlog.depth,
            in_flight=self._in_flight,
            consumers=len(self._subs),
            published=self._published,
            delivered=self._delivered,
            acked=self._acked,
            redelivered=self._redeliveries,
            # a shared queue's waiting bytes are mostly counted in the store
            bytes=self._bytes if self._shared is None else self._backlog.waiting_bytes,
            retired=self._retired,
            dead_lettered=self._dead_lettered,
            dead_letter_refused=self.dead_letter_refused,
            scheduled=0 if self._schedule is None else self._schedule.count,
            scheduled_total=self._scheduled_total,
            retried=self._retried,
            dead_lettered_by_reason=tuple(sorted(self.dead_lettered_by_reason.items())),
            lease_expired=0 if self._lapses is None else self._lapses.expired,
            late_settles=0 if self._lapses is None else self._lapses.late,
            deduplicated=self.deduplicated,
        )
