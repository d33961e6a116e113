"""Waiting for the engine's writes from a coroutine: an HTTP answer means "on disk"."""

from __future__ import annotations

import asyncio

from buzon.store import Ticket


async def until_durable(ticket: Ticket) -> None:
    """Wait until a write is durable; raise its error if it failed."""
    if not ticket.done:
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: Ticket) -> None:
            if not written.done():  # else the request was cancelled meanwhile
                written.set_result(None)

        ticket.add_callback(wake)
        await written
    if ticket.error is not None:
        raise ticket.error
