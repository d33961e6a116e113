"""A queue's scheduled messages: not ready yet, each waiting for its time.

Two things schedule a message: a publish with ``delay`` or ``deliver-at``, and a NACK whose
redelivery waits (``requeue-delay``, or the queue's retry back-off). A scheduled message is
not waiting for a consumer yet: the queue's ``depth`` leaves it out and ``scheduled``
counts it. When its time comes it joins the queue's backlog in memory, in its seq place, so
it is handed out ahead of newer messages (a time is a lower bound, never a promise of
order among messages scheduled for different times).

The schedule holds its messages in a heap by ``(when, seq)`` and keeps one engine timer
(:class:`~buzon.broker.timers.Timers`), at its earliest time: a waiting message costs a
heap entry and no CPU. Persistent scheduled messages are also in the store with their
``deliver_at`` (the store leaves them out of the paged tail and hands them back at start).

Messages taken out early (delivered now, cancelled, purged) stay in the heap as dead
entries, skipped when they reach its top.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from buzon.broker.message import Message
from buzon.broker.timers import Timer, Timers

Due = Callable[[list[Message], list[Message]], None]
"""Called with the messages whose time came: first-time deliveries (delayed publishes),
then redeliveries (retries), each oldest first."""


class Schedule:
    """The scheduled messages of one queue.

    Args:
        timers: the engine's deadlines.
        clock: the engine's Unix time.
        due: takes the messages whose time came.

    Attributes:
        count: messages scheduled.
        bytes: their body bytes.
    """

    __slots__ = (
        "_clock",
        "_due",
        "_heap",
        "_redelivered",
        "_timer",
        "_timers",
        "_waiting",
        "bytes",
        "count",
    )

    def __init__(self, timers: Timers, clock: Callable[[], float], due: Due) -> None:
        self._timers = timers
        self._clock = clock
        self._due = due
        self._heap: list[tuple[float, int]] = []
        self._waiting: dict[int, tuple[float, Message]] = {}  # seq -> (when, message)
        self._redelivered: set[int] = set()
        self._timer: Timer | None = None
        self.count = 0
        self.bytes = 0

    def add(self, message: Message, when: float, *, redelivered: bool) -> None:
        """Hold ``message`` until ``when`` (``redelivered``: it was handed out before)."""
        seq = message.seq
        self._waiting[seq] = (when, message)
        if redelivered:
            self._redelivered.add(seq)
        heapq.heappush(self._heap, (when, seq))
        self.count += 1
        self.bytes += len(message.body)
        self._arm()

    def __iter__(self) -> Iterator[tuple[float, Message]]:
        """``(when, message)`` of every scheduled message, soonest first."""
        return iter(sorted(self._waiting.values(), key=lambda pair: (pair[0], pair[1].seq)))

    def find(self, message_id: str) -> Message | None:
        """The scheduled message with that id, or None."""
        for _, message in self._waiting.values():
            if message.id == message_id:
                return message
        return None

    def redelivered(self, message: Message) -> bool:
        """Whether a scheduled message was handed out before."""
        return message.seq in self._redelivered

    def take(self, message: Message) -> bool:
        """Remove a scheduled message (delivered now, cancelled); False if not here."""
        if self._waiting.pop(message.seq, None) is None:
            return False
        self._redelivered.discard(message.seq)
        self.count -= 1
        self.bytes -= len(message.body)
        if not self._waiting:
            self.clear()
        return True

    def take_all(self) -> list[Message]:
        """Remove and return every scheduled message (a purge), by seq."""
        taken = sorted((message for _, message in self._waiting.values()), key=lambda m: m.seq)
        self.clear()
        return taken

    def clear(self) -> None:
        """Forget everything and stop the timer."""
        self._waiting.clear()
        self._redelivered.clear()
        self._heap.clear()
        self.count = 0
        self.bytes = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        """Keep one timer, at the earliest time still scheduled."""
        heap = self._heap
        waiting = self._waiting
        while heap and heap[0][1] not in waiting:
            heapq.heappop(heap)
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
            seq = heapq.heappop(heap)[1]
            entry = waiting.get(seq)
            if entry is None or entry[0] > now:
                continue  # taken out since (or scheduled again for later)
            del waiting[seq]
            message = entry[1]
            self.count -= 1
            self.bytes -= len(message.body)
            if seq in self._redelivered:
                self._redelivered.discard(seq)
                again.append(message)
            else:
                fresh.append(message)
        self._arm()
        if fresh or again:
            fresh.sort(key=lambda m: m.seq)
            again.sort(key=lambda m: m.seq)
            self._due(fresh, again)
