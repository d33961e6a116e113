"""A cheap histogram of durations: fixed buckets, a count, a sum, the last and the largest.

Recording costs a lock and a short scan of the bucket bounds, so it fits places that run
often but not per message (one SQLite group commit, one event-loop lag sample). The lock
makes a snapshot consistent when one thread records (the database thread) while another
reads (the event loop, at scrape time). A leaf module: the store records durations and the
server exports them, so it belongs to neither.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DurationSnapshot:
    """The counters at one moment.

    Attributes:
        bounds: upper bounds of the buckets, in seconds, increasing.
        buckets: durations at most each bound (cumulative, as Prometheus counts them).
        count: durations recorded.
        total: their sum, in seconds.
        last: the latest one (0.0 before any).
        largest: the largest one (0.0 before any).
    """

    bounds: tuple[float, ...]
    buckets: tuple[int, ...]
    count: int
    total: float
    last: float
    largest: float


class Durations:
    """Durations recorded into buckets with upper bounds ``bounds`` (seconds, increasing)."""

    __slots__ = ("_counts", "_largest", "_last", "_lock", "_total", "bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must increase")
        self.bounds = bounds
        self._lock = threading.Lock()
        self._counts = [0] * (len(bounds) + 1)  # the last one holds what is over every bound
        self._total = 0.0
        self._last = 0.0
        self._largest = 0.0

    def record(self, seconds: float) -> None:
        """Count one duration."""
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[index] += 1
            self._total += seconds
            self._last = seconds
            if seconds > self._largest:
                self._largest = seconds

    def snapshot(self) -> DurationSnapshot:
        with self._lock:
            counts = list(self._counts)
            total, last, largest = self._total, self._last, self._largest
        cumulative = []
        running = 0
        for count in counts[:-1]:
            running += count
            cumulative.append(running)
        return DurationSnapshot(
            self.bounds, tuple(cumulative), running + counts[-1], total, last, largest
        )
