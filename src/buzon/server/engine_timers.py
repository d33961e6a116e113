"""The engine's deadlines, run on the event loop: one loop timer, at the earliest.

The engine keeps its deadlines (delayed messages, retries, ack deadlines) in
:class:`~buzon.broker.timers.Timers` on its own clock and says when the earliest one moves
earlier; this arms a single ``call_at`` for it and, when it runs, fires what is due and arms
the next. A deadline that waits costs nothing here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from buzon.broker.timers import Timers


class TimerDriver:
    """Drives one broker's :class:`Timers` from the running event loop.

    Args:
        timers: the engine's deadlines.
        clock: the engine's Unix time (deadlines are on it).
    """

    __slots__ = ("_armed_at", "_clock", "_handle", "_loop", "_timers")

    def __init__(self, timers: Timers, clock: Callable[[], float] = time.time) -> None:
        self._timers = timers
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        # what is armed, and for when on the loop's clock (kept here: uvloop answers a
        # call_at for a time already past with a plain Handle, which has no ``when``)
        self._handle: asyncio.Handle | None = None
        self._armed_at = 0.0

    def start(self) -> None:
        """Take over the engine's deadlines (those set before included)."""
        self._loop = asyncio.get_running_loop()
        self._timers.wake = self._arm
        due = self._timers.next_due
        if due is not None:
            self._arm(due)

    def stop(self) -> None:
        """Run nothing more."""
        self._timers.wake = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        loop = self._loop
        if loop is None:
            return
        at = loop.time() + max(0.0, when - self._clock())
        handle = self._handle
        if handle is not None:
            if self._armed_at <= at:
                return  # an earlier run comes first and arms the next
            handle.cancel()
        self._armed_at = at
        self._handle = loop.call_at(at, self._run)

    def _run(self) -> None:
        self._handle = None
        self._timers.fire()
        due = self._timers.next_due
        if due is not None:
            self._arm(due)
