"""Waiting for the engine's writes from a coroutine: an HTTP answer means "on disk"."""

from __future__ import annotations

from buzon.store import Ticket
from buzon.store.tickets import settled


async def until_durable(ticket: Ticket) -> None:
    """Wait until a write is durable; raise its error if it failed."""
    await settled(ticket)
