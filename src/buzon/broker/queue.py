"""Queue: competing consumers, each message to exactly one of them.

Strategy. Waiting messages sit in ``_ready``, a deque kept sorted by publish sequence: new
messages have the highest sequence and go to the right end. Messages that come back
(consumer gone, NACK) go back to its left end when they are all older than its head (the
usual case), otherwise into ``_back``, a heap by sequence; the queue hands out whichever of
the two heads is older, so it always hands out the oldest message first and returned
messages keep their original order, without the backlog being copied.

Expiry. Every waiting message that can expire is in ``_expiring`` (by sequence) and has an
``(expires_at, seq)`` entry in the heap ``_expiry``. Entries are not removed when their
message leaves (handed out, settled, retired): the sweep skips entries whose message is no
longer in ``_expiring``, and the heap is rebuilt from ``_expiring`` when dead entries make up
most of it. A sweep touches only the messages whose time has come, and only queues with
something that can expire are swept (``expiring``, shared by a broker's queues). A message
that expires at the head leaves at once; one further back leaves the count at once and the
structure when the hand-out reaches it (its sequence is in ``_gone``).

Consumers that can take a message right now are in ``_ring``, a deque used round-robin: the
dispatcher takes the consumer at the left, hands it one message and puts it back at the right
if it still has credit. A consumer that lost credit (window full, session not writable) drops
out of the ring and is put back by whatever gives it credit again (ACK, NACK,
``set_writable(True)``), so a publish costs O(1) however many consumers are idle or full.
Removal from the ring is lazy when a session stops being writable (it may happen inside a
delivery, from the sink) and eager on unsubscribe (so the ring never grows with churn).

HTTP consumers pull instead: :meth:`Queue.take` hands waiting messages out in the same
order, in flight until :meth:`Queue.ack_taken` or :meth:`Queue.return_taken`. A puller
waiting for messages registers a one-shot :meth:`Queue.call_when_ready`.

Policy. Every message handed out comes through :meth:`Queue._next`, which retires expired
messages and those delivered ``max_deliveries`` times already (to the dead-letter queue if
one is set). :meth:`Queue.admit` enforces ``max_length`` before a publish is accepted.
Persistent messages are removed from the journal when they leave (settled, retired,
purged); they entered it before the queue saw them.

Deleting a queue drops its waiting messages, ends every subscription (the sessions get
DESTINATION_DELETED) and drops in-flight messages as they come back instead of requeueing.

Dispatch is not re-entrant: a sink that acks, publishes or subscribes from inside
``deliver()`` only updates state, and the loop already running picks the new work up. That
keeps the stack flat when a consumer acks every delivery synchronously.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter

from buzon.broker.addresses import address
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal
from buzon.broker.message import Message
from buzon.broker.policy import over_limit
from buzon.broker.stats import QueueStats
from buzon.broker.subscription import Subscription
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationRecord, MessageKey, Overflow

_by_seq = attrgetter("seq")
# Dead entries the expiry heap may hold beyond twice the living ones before it is rebuilt.
_DEAD_ENTRIES = 64

DeadLetter = Callable[["Queue", Message, str], bool]
"""Moves a retired message to its queue's dead-letter queue (``queue, message, reason``);
returns whether it was moved (False: dropped)."""


def _no_dead_letters(queue: Queue, message: Message, reason: str) -> bool:
    """Retired messages are simply dropped."""
    return False


class Queue:
    """One ``/queue/<name>`` destination (or a durable subscription's backlog).

    Args:
        record: what the queue is (name, id, owner, key, policy).
        gauge: the broker-wide count of queued bytes, for producer flow control.
        journal: where persistent messages are logged.
        clock: Unix time, for expiry.
        dead_letter: what to do with a retired message when the policy names a
            dead-letter queue.
        expiring: the queues a broker's expiry sweep visits; this queue is in it while it
            has waiting messages that can expire.
    """

    __slots__ = (
        "_acked",
        "_back",
        "_bounded",
        "_bytes",
        "_clock",
        "_dead_letter",
        "_dead_lettered",
        "_delivered",
        "_deliveries",
        "_depth",
        "_dispatching",
        "_expiring",
        "_expiry",
        "_gauge",
        "_gone",
        "_in_flight",
        "_incoming",
        "_journal",
        "_journaling",
        "_published",
        "_queues_expiring",
        "_ready",
        "_ready_bytes",
        "_redelivered",
        "_redeliveries",
        "_retired",
        "_ring",
        "_subs",
        "_waiters",
        "address",
        "dead_letter_refused",
        "deleted",
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
        expiring: set[Queue] | None = None,
    ) -> None:
        self.record = record
        self.policy = record.policy
        self.name = record.name
        self.address = address(record.kind, record.name)
        self.deleted = False
        self._gauge = gauge
        self._journal = journal if journal is not None else Journal(None)
        self._journaling = self._journal.enabled
        self._bounded = record.policy.max_length is not None or (
            record.policy.max_length_bytes is not None
        )
        self._clock = clock
        self._dead_letter = dead_letter
        self._ready: deque[Message] = deque()
        self._back: list[tuple[int, Message]] = []  # returned behind the head, by seq
        self._gone: set[int] = set()  # seqs expired in place, still in _ready or _back
        self._depth = 0  # waiting messages: those in _ready and _back, minus _gone
        self._ready_bytes = 0
        self._expiring: dict[int, Message] = {}  # seq -> waiting message that can expire
        self._expiry: list[tuple[float, int]] = []  # (expires_at, seq), dead entries too
        self._queues_expiring = expiring if expiring is not None else set()
        self._incoming = 0  # admitted, waiting for the journal before they arrive
        self._ring: deque[Subscription] = deque()
        self._subs: set[Subscription] = set()
        self._waiters: list[Callable[[], None]] = []
        # seqs of messages handed out before and given back; checked at delivery
        self._redelivered: set[int] = set()
        # deliveries so far, per seq (kept only when the policy limits them)
        self._deliveries: dict[int, int] = {}
        self._dispatching = False
        self._in_flight = 0
        self._bytes = 0
        self._published = 0
        self._delivered = 0
        self._acked = 0
        self._redeliveries = 0
        self._retired = 0
        self._dead_lettered = 0
        # retired messages dropped because this queue may no longer publish to its
        # dead-letter queue (counted by the dead-letter mover, see Intake.dead_letter)
        self.dead_letter_refused = 0

    # -- arriving ------------------------------------------------------------------------

    def admit(self, message: Message) -> None:
        """Accept a message that will arrive (through :meth:`publish`) once logged.

        Raises:
            BrokerError: QUEUE_FULL when the queue is at its maximum length and its
                overflow policy refuses publishes.
        """
        policy = self.policy
        if not self._bounded:
            self._incoming += 1
            return
        if policy.overflow is Overflow.REJECT_PUBLISH and over_limit(
            policy,
            self._depth + self._incoming + 1,
            self._ready_bytes + len(message.body),
        ):
            raise BrokerError(ErrorCode.QUEUE_FULL, f"{self.address} is at its maximum length")
        self._incoming += 1

    def publish(self, message: Message) -> None:
        """Enqueue an admitted message and hand it out if a consumer can take it."""
        self._incoming -= 1
        self._published += 1
        self._enqueue(message)
        if self._ring:
            self._dispatch()
        if self.policy.overflow is Overflow.DROP_HEAD:
            self._drop_heads()
        if self._waiters and self._depth:
            self._wake()

    def withdraw(self) -> None:
        """An admitted message will not arrive after all (its journal write failed)."""
        self._incoming -= 1

    def recover(self, messages: Iterable[tuple[Message, bool]]) -> None:
        """Restore logged messages at start, oldest first; ``True`` marks redelivered ones."""
        for message, redelivered in messages:
            self._enqueue(message)
            if redelivered:
                self._redelivered.add(message.seq)

    def _enqueue(self, message: Message) -> None:
        size = len(message.body)
        self._bytes += size
        self._ready_bytes += size
        self._gauge.add(size)
        self._depth += 1
        self._ready.append(message)
        if message.expires_at is not None:
            self._watch(message, message.expires_at)

    # -- Target: what sessions call ------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Add a consumer and hand it the backlog it has room for."""
        self._subs.add(sub)
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

    def resume(self, sub: Subscription) -> None:
        """Put ``sub`` back in the ring if it can take messages, and dispatch."""
        if not sub.in_ring and sub.can_take:
            sub.in_ring = True
            self._ring.append(sub)
            if self._depth:
                self._dispatch()

    def settle(self, sub: Subscription, messages: Sequence[Message]) -> None:
        """Forget acknowledged messages for good, then refill ``sub``'s window."""
        self.ack_taken(messages)
        self.resume(sub)

    def reject(self, sub: Subscription, messages: Sequence[Message]) -> None:
        """NACKed messages return to the queue (original order, redelivered)."""
        self._give_back(messages)
        self.resume(sub)

    # -- pulling (HTTP consumers) --------------------------------------------------------

    def take(self, limit: int) -> list[tuple[Message, bool]]:
        """Hand out up to ``limit`` waiting messages, oldest first, to a puller.

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
        return taken

    def peek(self, limit: int) -> list[tuple[Message, bool]]:
        """The first ``limit`` waiting messages, oldest first, left where they are.

        Messages the next hand-out would retire instead (expired, delivered
        ``max_deliveries`` times) are skipped, so a consumer gets what was shown.

        Returns:
            ``(message, redelivered)`` pairs.
        """
        now = self._clock()
        most = self.policy.max_deliveries
        shown: list[tuple[Message, bool]] = []
        for message in self._waiting():
            if len(shown) == limit:
                break
            if (message.expires_at is not None and message.expires_at <= now) or (
                most is not None and self._deliveries.get(message.seq, 0) >= most
            ):
                continue
            shown.append((message, message.seq in self._redelivered))
        return shown

    def ack_taken(self, messages: Sequence[Message]) -> None:
        """Handed-out messages were handled: forget them."""
        self._in_flight -= len(messages)
        self._acked += len(messages)
        for message in messages:
            self._release(message)

    def return_taken(self, messages: Sequence[Message]) -> None:
        """Handed-out messages come back (NACK, lease expired), marked redelivered."""
        self._give_back(messages)

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when a message waits undelivered (or the queue is deleted).

        Runs it now if that is already so. It must not raise.
        """
        if self._depth or self.deleted:
            callback()
        else:
            self._waiters.append(callback)

    def cancel_call(self, callback: Callable[[], None]) -> None:
        """Forget a callback given to :meth:`call_when_ready` that has not run."""
        if callback in self._waiters:
            self._waiters.remove(callback)

    # -- maintenance ---------------------------------------------------------------------

    def purge(self) -> int:
        """Drop every waiting message (not those in flight); return how many."""
        dropped = self._depth
        while self._depth:
            self._release(self._pop())
        return dropped

    def expire(self, now: float) -> int:
        """Retire waiting messages whose time has come; return how many.

        Costs the heap entries that are due (and their messages), whatever the backlog.
        """
        expiry = self._expiry
        expiring = self._expiring
        expired = 0
        while expiry and expiry[0][0] <= now:
            message = expiring.pop(heapq.heappop(expiry)[1], None)
            if message is None:
                continue  # handed out, settled or retired since
            self._take_out(message)
            self._retire(message, "expired")
            expired += 1
        if not expiring:  # only dead entries left, if any
            expiry.clear()
            self._queues_expiring.discard(self)
        return expired

    def redelivered_keys(self) -> list[MessageKey]:
        """Log keys of waiting persistent messages that were delivered before (to mark them
        at a clean shutdown, so they come back marked after the restart)."""
        return [
            (self.record.id, m.seq)
            for m in self._waiting()
            if m.persistent and m.seq in self._redelivered
        ]

    def delete(self) -> None:
        """The queue is deleted: drop waiting messages and end every subscription."""
        self.deleted = True
        for message in list(self._waiting()):
            self._drop(message)
        self._ready.clear()
        self._back.clear()
        self._gone.clear()
        self._depth = 0
        self._ready_bytes = 0
        self._expiring.clear()
        self._expiry.clear()
        self._queues_expiring.discard(self)
        self._redelivered.clear()
        self._wake()
        for sub in list(self._subs):
            sub.consumer.kill(ErrorCode.DESTINATION_DELETED, f"{self.address} was deleted")

    # -- internals -----------------------------------------------------------------------

    def _pop(self) -> Message:
        """Remove and return the oldest waiting message (the caller checked there is one)."""
        ready = self._ready
        back = self._back
        gone = self._gone
        while True:
            if back and (not ready or back[0][0] < ready[0].seq):
                message = heapq.heappop(back)[1]
            else:
                message = ready.popleft()
            if not gone or message.seq not in gone:
                break
            gone.discard(message.seq)  # expired in place: already counted out
        self._depth -= 1
        self._ready_bytes -= len(message.body)
        if message.expires_at is not None:
            del self._expiring[message.seq]
        return message

    def _take_out(self, message: Message) -> None:
        """Remove a waiting message that is leaving from anywhere in the backlog: at once
        from a head, otherwise by marking it for :meth:`_pop` to skip."""
        ready = self._ready
        back = self._back
        if ready and ready[0] is message:
            ready.popleft()
        elif back and back[0][1] is message:
            heapq.heappop(back)
        else:
            self._gone.add(message.seq)
        self._depth -= 1
        self._ready_bytes -= len(message.body)
        if not self._depth:  # only marked messages left: let them go now
            ready.clear()
            back.clear()
            self._gone.clear()

    def _waiting(self) -> Iterator[Message]:
        """The waiting messages, oldest first."""
        gone = self._gone
        returned = [message for _, message in sorted(self._back)]
        for message in heapq.merge(self._ready, returned, key=_by_seq):
            if not gone or message.seq not in gone:
                yield message

    def _watch(self, message: Message, expires_at: float) -> None:
        """Put a waiting message that can expire under the expiry sweep's eye."""
        expiring = self._expiring
        expiring[message.seq] = message
        expiry = self._expiry
        if not expiry:
            self._queues_expiring.add(self)
        heapq.heappush(expiry, (expires_at, message.seq))
        if len(expiry) > 2 * len(expiring) + _DEAD_ENTRIES:
            # Most entries are of messages gone since: rebuild from the living.
            expiry[:] = [
                (at, seq) for seq, m in expiring.items() if (at := m.expires_at) is not None
            ]
            heapq.heapify(expiry)

    def _next(self) -> Message | None:
        """The oldest waiting message that may still be delivered, or None.

        Expired messages and those delivered ``max_deliveries`` times are retired on the way.
        """
        policy = self.policy
        while self._depth:
            message = self._pop()
            if message.expires_at is not None and message.expires_at <= self._clock():
                self._retire(message, "expired")
            elif (
                policy.max_deliveries is not None
                and self._deliveries.get(message.seq, 0) >= policy.max_deliveries
            ):
                self._retire(message, "max-deliveries")
            else:
                return message
        return None

    def _count_delivery(self, message: Message) -> bool:
        """Count one more delivery of ``message``; return whether it is a redelivery."""
        self._delivered += 1
        if self.policy.max_deliveries is not None:
            self._deliveries[message.seq] = self._deliveries.get(message.seq, 0) + 1
        again = bool(self._redelivered) and message.seq in self._redelivered
        if again:
            self._redeliveries += 1
        return again

    def _drop_heads(self) -> None:
        while self._depth and over_limit(self.policy, self._depth, self._ready_bytes):
            self._retire(self._pop(), "max-length")

    def _retire(self, message: Message, reason: str) -> None:
        """``message`` leaves without being delivered (expired, over its limits)."""
        self._retired += 1
        self._release(message)
        if self.policy.dead_letter_queue is not None and self._dead_letter(self, message, reason):
            self._dead_lettered += 1

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def _drop(self, message: Message) -> None:
        size = len(message.body)
        self._bytes -= size
        self._gauge.remove(size)

    def _release(self, message: Message) -> None:
        """Forget ``message`` (settled or retired): bytes, bookkeeping, its log record."""
        self._drop(message)
        seq = message.seq
        if self._redelivered:
            self._redelivered.discard(seq)
        if self._deliveries:
            self._deliveries.pop(seq, None)
        if self._journaling and message.persistent and not self.deleted:
            self._journal.remove(self.record.id, seq)

    def _give_back(self, messages: Sequence[Message]) -> None:
        self._in_flight -= len(messages)
        if self.deleted:
            for message in messages:
                self._drop(message)
            return
        returned = sorted(messages, key=_by_seq)
        self._redelivered.update(message.seq for message in returned)
        self._ready_bytes += sum(len(message.body) for message in returned)
        self._depth += len(returned)
        ready = self._ready
        if not ready or returned[-1].seq < ready[0].seq:
            ready.extendleft(reversed(returned))
        else:
            back = self._back
            for message in returned:
                heapq.heappush(back, (message.seq, message))
        for message in returned:
            if message.expires_at is not None:
                self._watch(message, message.expires_at)
        if self._ring:
            self._dispatch()
        if self._waiters and self._depth:
            self._wake()

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # the loop further up the stack sees the new state
        self._dispatching = True
        ring = self._ring
        try:
            while self._depth and ring:
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
            depth=self._depth,
            in_flight=self._in_flight,
            consumers=len(self._subs),
            published=self._published,
            delivered=self._delivered,
            acked=self._acked,
            redelivered=self._redeliveries,
            bytes=self._bytes,
            retired=self._retired,
            dead_lettered=self._dead_lettered,
            dead_letter_refused=self.dead_letter_refused,
        )
