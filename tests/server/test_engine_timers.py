"""The engine's deadlines on a real event loop: asyncio's and uvloop's (``buzon serve`` runs
on uvloop when it is installed, and uvloop answers a timer for a time already past with a
plain handle)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from buzon.broker.timers import Timers
from buzon.server.engine_timers import TimerDriver

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_deadlines_past_and_future_fire_in_order_and_an_earlier_one_rearms(kind: str) -> None:
    fired: list[str] = []

    async def scenario() -> None:
        timers = Timers(time.time)
        driver = TimerDriver(timers)
        driver.start()
        now = time.time()
        timers.at(now - 1.0, lambda: fired.append("past"))  # armed for at once
        timers.at(now - 2.0, lambda: fired.append("further past"))  # earlier: armed again
        timers.at(now + 0.2, lambda: fired.append("later"))
        timers.at(now + 0.05, lambda: fired.append("sooner"))
        await asyncio.sleep(0.4)
        timers.at(time.time() - 0.5, lambda: fired.append("past again"))
        await asyncio.sleep(0.05)
        driver.stop()

    loop = LOOPS[kind]()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert fired == ["further past", "past", "sooner", "later", "past again"]
