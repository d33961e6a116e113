"""Soak: many kill -9 and clean restarts in a row, checked against the same invariants.

Kept out of the default test command (``-m slow`` runs it): each cycle starts the broker,
publishes and consumes for a random while, then kills it (or stops it cleanly every third
cycle). ``BUZON_SOAK_CYCLES`` sets how many cycles (default 20).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import pytest

from tests.durability.ledger import Ledger, summary, violations
from tests.durability.test_crash import broker, consume, integrity, produce, until_broken

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


async def test_restart_loop_keeps_every_invariant(tmp_path: Path) -> None:
    cycles = int(os.environ.get("BUZON_SOAK_CYCLES", "20"))
    chance = random.Random(cycles)
    ledger = Ledger()
    for cycle in range(cycles):
        with broker(tmp_path) as process:
            producing = asyncio.ensure_future(produce(process, ledger, f"c{cycle}", 3_000))
            consuming = asyncio.ensure_future(consume(process, ledger, idle=30))
            await asyncio.sleep(chance.uniform(0.3, 2.0))
            clean = cycle % 3 == 2
            process.process.send_signal(signal.SIGTERM if clean else signal.SIGKILL)
            process.process.wait(20)
            await until_broken(producing, consuming)
        assert integrity(tmp_path) == "ok", f"cycle {cycle}"
    with broker(tmp_path) as process:
        await consume(process, ledger, idle=2)
    assert violations(ledger) == [], summary(ledger)
