"""A queue's backlog: the messages it holds, apart from deciding who gets them.

A :class:`~buzon.broker.queue.Queue` is a dispatcher (which consumer gets the next message)
in front of a backlog (which message is next). The backlog admits arriving messages, hands
out the oldest one, takes back returned ones (keeping their place and marking them
redelivered), and settles, peeks, purges, expires, counts and measures. Two kinds exist:

- :class:`MemoryBacklog` keeps every waiting message in memory (``--storage memory`` and
  queues created non-durable);
- :class:`~buzon.broker.paged_backlog.PagedBacklog` keeps a bounded head window in memory
  and leaves the rest in the store (durable queues on SQLite).

Both hand out in the same order; only what is *resident* (in memory, ready to hand out now)
differs. A paged backlog may have waiting messages none of which is resident yet: it reads
them from the store and tells its host (:class:`BacklogHost`) when they arrive.

Strategy of the in-memory part. Waiting messages sit in ``_ready``, a deque in arrival
order (publish order, but for a transient message that overtakes a persistent one still
being written). Messages that come back (consumer gone, NACK) go back to its left end when
they are all older than its head (the usual case), otherwise into ``_back``, a heap by
sequence; :meth:`MemoryBacklog.pop` hands out whichever head is older, so returned messages
keep their original order without the backlog being copied.

Expiry. Every waiting message that can expire is in ``_expiring`` (by sequence) and has an
``(expires_at, seq)`` entry in the heap ``_expiry``. Entries are not removed when their
message leaves: the sweep skips entries whose message is no longer in ``_expiring``, and the
heap is rebuilt from ``_expiring`` when dead entries make up most of it. A sweep touches
only the messages whose time has come, and only backlogs with something that can expire
are swept (``expiring``, shared by a broker's queues). A message that expires at the head
leaves at once; one further back leaves the count at once and the structure when the
hand-out reaches it (its sequence is in ``_gone``).

Persistent messages are removed from the journal when they leave (settled, retired,
purged); they entered it before the backlog saw them.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Protocol

from buzon.broker.addresses import routing_key_of
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal
from buzon.broker.message import Message
from buzon.store import MessageKey, StoredBacklog, StoredMessage

_by_seq = attrgetter("seq")
# Dead entries the expiry heap may hold beyond twice the living ones before it is rebuilt.
_DEAD_ENTRIES = 64


def from_store(item: StoredMessage) -> Message:
    """The message a stored record describes."""
    return Message(
        item.message_id,
        item.destination,
        item.headers,
        item.body,
        item.seq,
        item.persistent,
        item.expires_at,
        priority=item.priority,
        routing_key=routing_key_of(item.destination),
    )


class BacklogHost(Protocol):
    """The queue a backlog serves: what the backlog tells it (only a paged backlog, which
    completes work later, calls these), and what the broker's expiry sweep calls."""

    def expire(self, now: float) -> int:
        """Retire waiting messages whose time has come; return how many."""

    def backlog_ready(self) -> None:
        """Waiting messages became resident: hand them out."""

    def backlog_expired(self, messages: Sequence[Message]) -> None:
        """Messages that were never resident expired and left the backlog (and the store):
        retire them (count them, dead-letter them)."""

    def backlog_dropped(self, messages: Sequence[Message]) -> None:
        """Messages that were never resident were dropped from the store's head to bring a
        drop-head queue under its bounds: retire them (reason ``max-length``)."""


class MemoryBacklog:
    """Every waiting message of one queue, in memory.

    Args:
        host: the queue it serves (also what ``expiring`` holds).
        queue_id: the queue's id (its messages' log key).
        gauge: the broker-wide count of resident bytes, for producer flow control.
        journal: where persistent messages are logged.
        expiring: the queues a broker's expiry sweep visits; the host is in it while this
            backlog holds messages that can expire.

    Attributes:
        resident: waiting messages held in memory (all of them, here).
        resident_bytes: their body bytes.
    """

    __slots__ = (
        "_back",
        "_deliveries",
        "_expiring",
        "_expiry",
        "_gauge",
        "_gone",
        "_host",
        "_journal",
        "_journaling",
        "_queues_expiring",
        "_ready",
        "_redelivered",
        "deleted",
        "queue_id",
        "resident",
        "resident_bytes",
    )

    def __init__(
        self,
        host: BacklogHost,
        queue_id: str,
        gauge: QueuedBytes,
        journal: Journal,
        expiring: set[BacklogHost],
    ) -> None:
        self._host = host
        self.queue_id = queue_id
        self._gauge = gauge
        self._journal = journal
        self._journaling = journal.enabled
        self._queues_expiring = expiring
        self._ready: deque[Message] = deque()
        self._back: list[tuple[int, Message]] = []  # returned behind the head, by seq
        self._gone: set[int] = set()  # seqs expired in place, still in _ready or _back
        self.resident = 0  # waiting messages: those in _ready and _back, minus _gone
        self.resident_bytes = 0
        self._expiring: dict[int, Message] = {}  # seq -> waiting message that can expire
        self._expiry: list[tuple[float, int]] = []  # (expires_at, seq), dead entries too
        # seqs of messages handed out before and given back; checked at delivery
        self._redelivered: set[int] = set()
        # deliveries so far, per seq (kept only when the policy limits them)
        self._deliveries: dict[int, int] = {}
        self.deleted = False

    # -- what the queue reads ------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Waiting messages (resident or not)."""
        return self.resident

    @property
    def waiting_bytes(self) -> int:
        """Body bytes of the waiting messages (resident or not)."""
        return self.resident_bytes

    @property
    def journaling(self) -> bool:
        """Whether persistent messages have store records (the broker has a store)."""
        return self._journaling

    @property
    def has_tail(self) -> bool:
        """Whether waiting messages are (or may be) only in the store: never, here."""
        return False

    def is_redelivered(self, message: Message) -> bool:
        """Whether ``message`` was handed out before."""
        return bool(self._redelivered) and message.seq in self._redelivered

    def deliveries(self, message: Message) -> int:
        """How often ``message`` was handed out (counted only with :meth:`count_delivery`)."""
        return self._deliveries.get(message.seq, 0)

    # -- levels (see ``leveled_backlog``) -------------------------------------------------

    def sibling(self, priority: int, expiring: set[BacklogHost]) -> MemoryBacklog:
        """A new, empty backlog of the same kind for the same queue, for the messages of
        another ``priority``, reporting to the sweep set ``expiring``."""
        return MemoryBacklog(self._host, self.queue_id, self._gauge, self._journal, expiring)

    @property
    def sweep(self) -> set[BacklogHost]:
        """The set of the expiry sweep this backlog reports to."""
        return self._queues_expiring

    def join_sweep(self, expiring: set[BacklogHost]) -> None:
        """Report to the sweep set ``expiring`` from now on (this backlog became one level
        of a leveled one); the next sweep visits it in any case."""
        self._queues_expiring = expiring
        expiring.add(self._host)

    # -- arriving ------------------------------------------------------------------------

    def add(self, message: Message, *, logged: bool) -> None:
        """A new message arrives (``logged``: its record is in the store already)."""
        self._enqueue(message)

    def restore(self, message: Message, redelivered: bool) -> None:
        """Put back a logged message at start, oldest first."""
        self._enqueue(message)
        if redelivered:
            self._redelivered.add(message.seq)

    def restore_head(self, found: StoredBacklog, cleanly: bool) -> None:
        """Take what the store holds for this queue at start (an in-memory backlog is only
        given whole backlogs). After a crash (not ``cleanly``) every message found counts
        as delivered before, since it may have been."""
        for item in found.head:
            self.restore(from_store(item), item.redelivered or not cleanly)

    def resume(self) -> None:
        """Something that held work back went away; nothing is ever held back here."""

    def _enqueue(self, message: Message) -> None:
        size = len(message.body)
        self.resident_bytes += size
        self._gauge.add(size)
        self.resident += 1
        self._ready.append(message)
        if message.expires_at is not None:
            self._watch(message, message.expires_at)

    # -- handing out and settling --------------------------------------------------------

    def pop(self) -> Message | None:
        """Remove and return the oldest resident waiting message, or None if none is."""
        if not self.resident:
            return None
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
        self.resident -= 1
        self.resident_bytes -= len(message.body)
        if message.expires_at is not None:
            del self._expiring[message.seq]
        return message

    def pop_least(self) -> Message | None:
        """Remove and return the message a queue over its bounds drops first (drop-head):
        the oldest resident one here, where every message has one priority."""
        return self.pop()

    def count_delivery(self, message: Message) -> None:
        """Count one more delivery of ``message`` (when the policy limits deliveries)."""
        self._deliveries[message.seq] = self._deliveries.get(message.seq, 0) + 1

    def forget(self, message: Message) -> None:
        """A message handed out (or popped) leaves for good: settled or retired."""
        self._gauge.remove(len(message.body))
        self.discard(message)

    def _unlog(self, message: Message) -> None:
        """A message left for good: remove its store record, if it has one."""
        if self._journaling and message.persistent and not self.deleted:
            self._journal.remove(self.queue_id, message.seq)

    def drop(self, message: Message) -> None:
        """A message handed out comes back after the queue was deleted: let it go."""
        self._gauge.remove(len(message.body))

    def set_aside(self, message: Message) -> None:
        """A message handed out waits outside the backlog (scheduled for a retry): its
        bytes leave the gauge until it comes back (:meth:`give_back` with ``fresh``)."""
        self._gauge.remove(len(message.body))

    def discard(self, message: Message) -> None:
        """A scheduled message leaves for good (cancelled, purged): its marks and its
        store record go (its bytes were never in the gauge)."""
        seq = message.seq
        if self._redelivered:
            self._redelivered.discard(seq)
        if self._deliveries:
            self._deliveries.pop(seq, None)
        self._unlog(message)

    def reschedule(self, keys: Sequence[tuple[MessageKey, float]]) -> None:
        """Persistent messages handed out wait for a retry: their records say until when
        (and that they were delivered), so a restart keeps them waiting."""
        if self._journaling and not self.deleted:
            self._journal.write(schedules=keys)

    def give_back(
        self, messages: Sequence[Message], *, redelivered: bool = True, fresh: bool = False
    ) -> None:
        """Handed-out messages return to their place, marked redelivered. Scheduled ones
        whose time came join the same way (``fresh``: their bytes enter the gauge), marked
        redelivered only when they were handed out before."""
        returned = sorted(messages, key=_by_seq)
        if redelivered:
            self._redelivered.update(message.seq for message in returned)
        if fresh:
            self._gauge.add(sum(len(message.body) for message in returned))
        self.resident_bytes += sum(len(message.body) for message in returned)
        self.resident += len(returned)
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

    # -- looking and maintenance ---------------------------------------------------------

    def waiting(self) -> Iterator[Message]:
        """The resident waiting messages, oldest first."""
        gone = self._gone
        returned = [message for _, message in sorted(self._back)]
        for message in heapq.merge(self._ready, returned, key=_by_seq):
            if not gone or message.seq not in gone:
                yield message

    def purge(self) -> tuple[int, int]:
        """Drop every waiting message (not those handed out); return how many, and bytes."""
        dropped = self.resident
        size = self.resident_bytes
        while self.resident:
            message = self.pop()
            if message is not None:
                self.forget(message)
        return dropped, size

    def expire(self, now: float) -> list[Message]:
        """Take out the resident waiting messages whose time has come and return them (the
        queue retires them). Costs the heap entries that are due, whatever the backlog."""
        expiry = self._expiry
        expiring = self._expiring
        due = []
        while expiry and expiry[0][0] <= now:
            message = expiring.pop(heapq.heappop(expiry)[1], None)
            if message is None:
                continue  # handed out, settled or retired since
            self._take_out(message)
            due.append(message)
        if not expiring:  # only dead entries left, if any
            expiry.clear()
            self._queues_expiring.discard(self._host)
        return due

    def redelivered_keys(self) -> list[MessageKey]:
        """Log keys of resident waiting persistent messages that were delivered before (to
        mark them at a clean shutdown, so they come back marked after the restart)."""
        return [
            (self.queue_id, m.seq)
            for m in self.waiting()
            if m.persistent and m.seq in self._redelivered
        ]

    def delete(self) -> None:
        """The queue is deleted: drop every waiting message (the store drops its own)."""
        self.deleted = True
        for message in self.waiting():
            self._gauge.remove(len(message.body))
        self._ready.clear()
        self._back.clear()
        self._gone.clear()
        self.resident = 0
        self.resident_bytes = 0
        self._expiring.clear()
        self._expiry.clear()
        self._queues_expiring.discard(self._host)
        self._redelivered.clear()

    # -- internals -----------------------------------------------------------------------

    def _take_out(self, message: Message) -> None:
        """Remove a waiting message that is leaving from anywhere in the backlog: at once
        from a head, otherwise by marking it for :meth:`pop` to skip."""
        ready = self._ready
        back = self._back
        if ready and ready[0] is message:
            ready.popleft()
        elif back and back[0][1] is message:
            heapq.heappop(back)
        else:
            self._gone.add(message.seq)
        self.resident -= 1
        self.resident_bytes -= len(message.body)
        if not self.resident:  # only marked messages left: let them go now
            ready.clear()
            back.clear()
            self._gone.clear()

    def _watch(self, message: Message, expires_at: float) -> None:
        """Put a waiting message that can expire under the expiry sweep's eye."""
        expiring = self._expiring
        expiring[message.seq] = message
        expiry = self._expiry
        if not expiry:
            self._queues_expiring.add(self._host)
        heapq.heappush(expiry, (expires_at, message.seq))
        if len(expiry) > 2 * len(expiring) + _DEAD_ENTRIES:
            # Most entries are of messages gone since: rebuild from the living.
            expiry[:] = [
                (at, seq) for seq, m in expiring.items() if (at := m.expires_at) is not None
            ]
            heapq.heapify(expiry)
