"""Timers: the engine's deadlines (delayed messages, retries, ack deadlines) in one heap.

The engine has no event loop. It keeps its deadlines here, on its own clock, and tells the
server (``wake``) when the earliest one moves earlier; the server arms one loop timer for it
and calls :meth:`Timers.fire` when it runs. A test with a virtual clock calls ``fire``
after moving the clock instead. Nothing polls: a waiting deadline costs a heap entry.

Cancelling marks the entry dead; the heap drops dead entries as they reach its top, and is
rebuilt when they make up most of it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

_DEAD_ENTRIES = 64


class Timer:
    """One deadline; :meth:`cancel` it if it should not run."""

    __slots__ = ("_owner", "callback", "when")

    def __init__(self, owner: Timers, when: float, callback: Callable[[], None]) -> None:
        self._owner = owner
        self.when = when
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        """It will not run (idempotent)."""
        if self.callback is not None:
            self.callback = None
            self._owner._live -= 1

    @property
    def active(self) -> bool:
        """Whether it is still to run."""
        return self.callback is not None


class Timers:
    """Every deadline of one broker.

    Args:
        clock: the engine's Unix time.

    Attributes:
        wake: called with a Unix time when the earliest deadline becomes that time (the
            server arms its loop timer there); None: nobody is told (tests fire by hand).
    """

    __slots__ = ("_clock", "_count", "_heap", "_live", "wake")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._count = 0  # ties break in the order timers were set
        self._live = 0
        self.wake: Callable[[float], None] | None = None

    def at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once the clock reaches ``when`` (it must not raise)."""
        timer = Timer(self, when, callback)
        heap = self._heap
        earliest = heap[0][0] if heap else None
        self._count += 1
        heapq.heappush(heap, (when, self._count, timer))
        self._live += 1
        if len(heap) > 2 * self._live + _DEAD_ENTRIES:
            heap[:] = [entry for entry in heap if entry[2].active]  # mostly dead: rebuild
            heapq.heapify(heap)
        if (earliest is None or when < earliest) and self.wake is not None:
            self.wake(when)
        return timer

    def now(self) -> float:
        """The engine's clock now."""
        return self._clock()

    @property
    def next_due(self) -> float | None:
        """When the earliest live deadline is, or None."""
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self) -> int:
        """Run every callback whose time has come (in deadline order); return how many.

        Callbacks may set or cancel timers; one set for a time already past runs in this
        same call.
        """
        heap = self._heap
        ran = 0
        now = self._clock()
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            callback = timer.callback
            if callback is None:
                continue
            timer.callback = None
            self._live -= 1
            callback()
            ran += 1
        return ran

    def __len__(self) -> int:
        return self._live
