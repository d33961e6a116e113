"""Waiting, from a coroutine, for a queue to have a message ready to take."""

from __future__ import annotations

import asyncio

from buzon.broker import Queue


async def wait_ready(queue: Queue, deadline: float) -> None:
    """Return once ``queue`` has a message in memory ready to take (or is deleted), or
    at ``deadline`` (the event loop's clock), whichever comes first."""
    ready = asyncio.Event()
    queue.call_when_ready(ready.set)
    try:
        async with asyncio.timeout_at(deadline):
            await ready.wait()
    except TimeoutError:
        pass
    finally:
        queue.cancel_call(ready.set)
