"""Event-loop lag: how late a timer fires, which is how long the loop was busy elsewhere.

Everything in the broker shares one event loop, so a slow step anywhere (a large batch of
deliveries, a long HTTP response) delays every connection's reads and heart-beats. A task
that asks to wake up every ``LAG_CHECK_PERIOD`` seconds and records how much later it woke
measures exactly that, at the cost of one timer per period.
"""

from __future__ import annotations

import asyncio

from buzon.durations import Durations

LAG_CHECK_PERIOD = 0.5
"""Seconds between samples."""

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Bucket bounds (seconds): a healthy loop stays under a few milliseconds."""


def new_lag_durations() -> Durations:
    return Durations(LAG_BUCKETS)


async def watch_loop_lag(lag: Durations, period: float = LAG_CHECK_PERIOD) -> None:
    """Record into ``lag`` how late each wake-up comes, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        # asyncio may run a timer up to its clock resolution early
        lag.record(max(0.0, loop.time() - due))
