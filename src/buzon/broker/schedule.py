"""A queue's scheduled messages: not ready yet, each waiting for its time.

Two things schedule a message: a publish with ``delay`` or ``deliver-at``, and a NACK whose
redelivery waits (``requeue-delay``, or the queue's retry back-off). A scheduled message is
not waiting for a consumer yet: the queue's ``depth`` leaves it out and ``scheduled``
counts it. When its time comes it joins the queue's backlog in memory, in its seq place, so
it is handed out ahead of newer messages (a time is a lower bound, never a promise of
order among messages scheduled for different times).

Timing. Messages are ordered by their *place* ``(when, seq)`` in a heap; the schedule keeps
one engine timer (:class:`~buzon.broker.timers.Timers`), at its earliest time. A waiting
message costs a heap entry and no CPU.

Paging. Persistent scheduled messages are in the store with their ``deliver_at`` anyway
(the store leaves them out of the paged tail). With a store to page to, memory holds only
the soonest ``window`` of them: the rest, the *beyond*, are only in the store, and every
one of them has a later place than every persistent message in memory (``_after`` is the
latest place in memory; the beyond is after it). A message scheduled after ``_after`` goes
to the beyond; when memory holds more than the window, its latest persistent messages go
there; when memory runs below half the window, the next places are read back in order.
Transient messages are never in the store and always stay in memory. One read at a time:
messages sent to the beyond while it runs are kept aside with the read, and those that fall
at or before the last place it returns join memory when it completes (the read may have
seen them too: they are counted once, by seq). A purge or clear bumps ``_epoch`` so that
a read still on its way is ignored.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol

from buzon.broker.backlog import from_store
from buzon.broker.message import Message
from buzon.broker.timers import Timer, Timers
from buzon.store import StoredMessage, Ticket

log = logging.getLogger("buzon.broker")

_DEAD_ENTRIES = 64
"""Dead places the latest-first heap may hold beyond twice its live ones."""

Place = tuple[float, int]
"""Where a scheduled message stands: its time, then its seq."""

Due = Callable[[list[Message], list[Message]], None]
"""Called with the messages whose time came: first-time deliveries (delayed publishes),
then redeliveries (retries), each oldest first."""


class SchedulePager(Protocol):
    """The store's reads of scheduled messages (see ``store.base.PagedLog``)."""

    def read_scheduled(self, queue_id: str, after: Place | None, limit: int) -> Ticket: ...

    def purge_scheduled(self, queue_id: str, after: Place | None) -> Ticket: ...


class Schedule:
    """The scheduled messages of one queue.

    Args:
        timers: the engine's deadlines.
        clock: the engine's Unix time.
        due: takes the messages whose time came.
        queue_id: the queue's id in the store.
        pager: the store, when persistent scheduled messages may stay there only.
        window: most persistent scheduled messages held in memory (with a pager).

    Attributes:
        count: messages scheduled (in memory or only in the store).
        bytes: their body bytes.
    """

    __slots__ = (
        "_after",
        "_aside",
        "_beyond",
        "_beyond_bytes",
        "_clock",
        "_due",
        "_epoch",
        "_heap",
        "_kept",
        "_latest",
        "_pager",
        "_reading",
        "_redelivered",
        "_timer",
        "_timers",
        "_waiting",
        "_window",
        "bytes",
        "count",
        "queue_id",
    )

    def __init__(
        self,
        timers: Timers,
        clock: Callable[[], float],
        due: Due,
        *,
        queue_id: str = "",
        pager: SchedulePager | None = None,
        window: int = 10_000,
    ) -> None:
        self._timers = timers
        self._clock = clock
        self._due = due
        self.queue_id = queue_id
        self._pager = pager
        self._window = window
        self._heap: list[Place] = []  # every place in memory, dead ones too
        self._waiting: dict[int, tuple[float, Message]] = {}  # seq -> (when, message)
        self._redelivered: set[int] = set()
        self._kept: set[int] = set()  # seqs in memory that are also in the store
        self._latest: list[tuple[float, int]] = []  # (-when, -seq) of those: a max-heap
        self._after: Place | None = None  # None: nothing scheduled is only in the store
        self._beyond = 0
        self._beyond_bytes = 0
        self._reading = False
        self._aside: list[tuple[Place, Message, bool]] = []  # sent beyond during a read
        self._epoch = 0
        self._timer: Timer | None = None
        self.count = 0
        self.bytes = 0

    # -- adding ----------------------------------------------------------------------------

    def add(self, message: Message, when: float, *, redelivered: bool, kept: bool) -> None:
        """Hold ``message`` until ``when``.

        Args:
            message: the message.
            when: its time.
            redelivered: it was handed out before.
            kept: its store record says so too (it may leave memory until its time).
        """
        self.count += 1
        self.bytes += len(message.body)
        place = (when, message.seq)
        if not self._beyond and not self._reading:
            self._after = None  # nothing is only in the store
        if kept and self._after is not None and place > self._after:
            self._beyond += 1
            self._beyond_bytes += len(message.body)
            if self._reading:
                self._aside.append((place, message, redelivered))
            self._refill()  # memory may hold none before it
            return
        self._hold(place, message, redelivered, kept)
        if kept and len(self._kept) > self._window and self._pager is not None:
            self._shed()
        self._arm()

    def restore(
        self,
        first: list[StoredMessage],
        count: int,
        size: int,
        redelivered: Callable[[StoredMessage], bool],
    ) -> None:
        """Take the soonest of a queue's stored scheduled messages at start (``first``)
        and the count and bytes of all of them."""
        for item in first:
            when = item.deliver_at if item.deliver_at is not None else 0.0
            self._hold((when, item.seq), from_store(item), redelivered(item), True)
        held = len(first)
        self.count += count
        self.bytes += size
        if count > held:
            last = first[-1] if first else None
            self._after = (
                (last.deliver_at or 0.0, last.seq) if last is not None else (float("-inf"), 0)
            )
            self._beyond = count - held
            self._beyond_bytes = size - sum(len(item.body) for item in first)
        self._arm()

    # -- looking and taking out ----------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[float, Message]]:
        """``(when, message)`` of every scheduled message in memory, soonest first."""
        return iter(sorted(self._waiting.values(), key=lambda pair: (pair[0], pair[1].seq)))

    def find(self, message_id: str) -> Message | None:
        """The scheduled message in memory with that id, or None."""
        for _, message in self._waiting.values():
            if message.id == message_id:
                return message
        return None

    def redelivered(self, message: Message) -> bool:
        """Whether a scheduled message was handed out before."""
        return message.seq in self._redelivered

    def take(self, message: Message) -> bool:
        """Remove a scheduled message in memory (delivered now, cancelled); False if it
        is not there."""
        if not self._release(message.seq):
            return False
        self._refill()
        return True

    def take_all(self) -> list[Message]:
        """Remove every scheduled message and return those in memory, by seq (a purge or
        deletion; the caller removes their records, this the records of the beyond)."""
        taken = sorted((message for _, message in self._waiting.values()), key=lambda m: m.seq)
        if self._beyond and self._pager is not None:
            self._pager.purge_scheduled(self.queue_id, self._after)
        self.clear()
        return taken

    def clear(self) -> None:
        """Forget everything and stop the timer."""
        self._waiting.clear()
        self._redelivered.clear()
        self._heap.clear()
        self._kept.clear()
        self._latest.clear()
        self._after = None
        self._beyond = 0
        self._beyond_bytes = 0
        self._aside.clear()
        self._reading = False
        self._epoch += 1
        self.count = 0
        self.bytes = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- internals -----------------------------------------------------------------------

    def _hold(self, place: Place, message: Message, redelivered: bool, kept: bool) -> None:
        seq = message.seq
        self._waiting[seq] = (place[0], message)
        if redelivered:
            self._redelivered.add(seq)
        heapq.heappush(self._heap, place)
        if kept:
            self._kept.add(seq)
            if self._pager is not None:  # only a pager sheds the latest
                heapq.heappush(self._latest, (-place[0], -seq))

    def _release(self, seq: int) -> bool:
        """Take ``seq`` out of memory (and of the counts); False if it is not there."""
        entry = self._waiting.pop(seq, None)
        if entry is None:
            return False
        self._redelivered.discard(seq)
        self._kept.discard(seq)
        self.count -= 1
        self.bytes -= len(entry[1].body)
        if len(self._latest) > 2 * len(self._kept) + _DEAD_ENTRIES:
            # mostly places of messages gone: keep those of the ones still kept
            waiting, latest = self._waiting, self._latest
            latest[:] = [(-waiting[kept][0], -kept) for kept in self._kept]  # in place: a
            heapq.heapify(latest)  # shed in progress holds this list
        return True

    def _shed(self) -> None:
        """Memory holds more persistent scheduled messages than the window: the latest
        leave it (their records stay in the store, read back when their turn comes)."""
        latest = self._latest
        kept = self._kept
        while len(kept) > self._window and latest:
            when, seq = -latest[0][0], -latest[0][1]
            heapq.heappop(latest)
            entry = self._waiting.get(seq)
            if seq not in kept or entry is None or entry[0] != when:
                continue  # gone, or scheduled again since
            redelivered = seq in self._redelivered
            self._release(seq)
            self.count += 1  # still scheduled, only no longer in memory
            self.bytes += len(entry[1].body)
            self._beyond += 1
            self._beyond_bytes += len(entry[1].body)
            self._after = self._latest_kept()
            if self._reading:  # the read in flight starts after it: it comes back with it
                self._aside.append(((when, seq), entry[1], redelivered))

    def _latest_kept(self) -> Place:
        """The latest place of a persistent message in memory (the beyond comes after)."""
        latest = self._latest
        while latest:
            when, seq = -latest[0][0], -latest[0][1]
            entry = self._waiting.get(seq)
            if seq in self._kept and entry is not None and entry[0] == when:
                return (when, seq)
            heapq.heappop(latest)
        return (float("-inf"), 0)

    def _refill(self) -> None:
        """Read the next places from the store when memory runs below half the window."""
        pager = self._pager
        if pager is None or self._reading or not self._beyond:
            return
        if len(self._kept) >= max(1, self._window // 2):
            return
        self._reading = True
        limit = self._window - len(self._kept)
        ticket = pager.read_scheduled(self.queue_id, self._after, limit)
        ticket.add_callback(partial(self._read, self._epoch, limit))

    def _read(self, epoch: int, limit: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        self._reading = False
        aside, self._aside = self._aside, []
        if ticket.error is not None:
            log.warning("reading the scheduled of %s failed: %s", self.queue_id, ticket.error)
            return  # the next change tries again; until then they wait in the store
        items: list[StoredMessage] = ticket.result
        exhausted = len(items) < limit
        joined = self._join(
            [
                ((item.deliver_at or 0.0, item.seq), from_store(item), item.redelivered)
                for item in items
            ]
        )
        last = (items[-1].deliver_at or 0.0, items[-1].seq) if items else None
        self._join(
            [entry for entry in aside if exhausted or (last is not None and entry[0] <= last)]
        )
        if exhausted:
            self._after = None
            self._beyond = 0
            self._beyond_bytes = 0
        elif last is not None:
            self._after = last
        if len(self._kept) > self._window:
            self._shed()
        self._arm()
        if joined and len(self._kept) < self._window // 2:
            self._refill()

    def _join(self, entries: list[tuple[Place, Message, bool]]) -> int:
        """Bring messages of the beyond into memory (each once); return how many came."""
        joined = 0
        for place, message, redelivered in entries:
            if message.seq in self._waiting:
                continue  # here already (the read and a message set aside may both hold it)
            self._hold(place, message, redelivered, True)
            self._beyond -= 1
            self._beyond_bytes -= len(message.body)
            joined += 1
        return joined

    def _arm(self) -> None:
        """Keep one timer, at the earliest time in memory."""
        heap = self._heap
        waiting = self._waiting
        while heap:
            first, seq = heap[0]
            entry = waiting.get(seq)
            if entry is not None and entry[0] == first:
                break
            heapq.heappop(heap)  # taken out, or scheduled again for another time
        when = heap[0][0] if heap else None
        timer = self._timer
        if timer is not None and timer.active and timer.when == when:
            return
        if timer is not None:
            timer.cancel()
        self._timer = None if when is None else self._timers.at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._clock()
        heap = self._heap
        waiting = self._waiting
        fresh: list[Message] = []
        again: list[Message] = []
        while heap and heap[0][0] <= now:
            when, seq = heapq.heappop(heap)
            entry = waiting.get(seq)
            if entry is None or entry[0] != when:
                continue  # taken out since, or scheduled again for another time
            message = entry[1]
            was_redelivered = seq in self._redelivered
            self._release(seq)
            (again if was_redelivered else fresh).append(message)
        self._refill()
        self._arm()
        if fresh or again:
            fresh.sort(key=lambda m: m.seq)
            again.sort(key=lambda m: m.seq)
            self._due(fresh, again)
