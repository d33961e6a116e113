"""Jobs a server runs every few seconds: housekeeping, and a cluster node's heartbeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from buzon.errors import BuzonError

log = logging.getLogger("buzon.server")


async def every(period: float, job: Callable[[], object]) -> None:
    """Run ``job`` (a function, or a coroutine function) every ``period`` seconds, for ever.

    A job that fails does not stop the loop. A BuzonError (the store is away, say) is
    logged once per run of failures, not every period; anything else with its traceback.
    """
    name = getattr(job, "__name__", repr(job))
    failing = False
    while True:
        await asyncio.sleep(period)
        try:
            result = job()
            if asyncio.iscoroutine(result):
                await result
            failing = False
        except BuzonError as exc:
            if not failing:
                log.warning("job %s failed: %s", name, exc.detail)
            failing = True
        except Exception:
            log.exception("job %s failed", name)
