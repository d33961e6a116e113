"""Tickets: the promise of a write, for callers that must not wait (the engine).

The engine is synchronous, so it cannot await a store write. It gets a :class:`Ticket`
instead and attaches callbacks; the store resolves the ticket on the event loop once the
write is durable (or failed). Callbacks run in the order they were added, on the loop.

One ticket is shared by every write of an event-loop turn, so its callbacks belong to many
connections and HTTP requests at once: each runs whatever the others do. A callback that
raises is logged (its ``repr`` names its owner) and the rest still run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from buzon.errors import BuzonError

log = logging.getLogger("buzon.store")


class Ticket:
    """A store operation in progress: ``done`` once resolved, with ``error`` set if it
    failed and ``result`` set to what a read returned (None for a plain write)."""

    __slots__ = ("_callbacks", "done", "error", "result")

    def __init__(self) -> None:
        self.done = False
        self.error: BuzonError | None = None
        self.result: Any = None
        self._callbacks: list[Callable[[Ticket], object]] = []

    def add_callback(self, callback: Callable[[Ticket], object]) -> None:
        """Run ``callback(ticket)`` once resolved; at once if it already is."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def resolve(self, error: BuzonError | None = None, result: Any = None) -> None:
        """Mark the operation done (``error`` None, with its ``result``) or failed; run the
        callbacks. Once only."""
        if self.done:
            return
        self.done = True
        self.error = error
        self.result = result
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("completion callback %r failed; the others still run", callback)


async def settled(ticket: Ticket) -> Any:
    """Wait for a ticket from a coroutine; return its result, or raise its error."""
    if not ticket.done:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: Ticket) -> None:
            if not done.done():  # else the waiter was cancelled meanwhile
                done.set_result(None)

        ticket.add_callback(wake)
        await done
    if ticket.error is not None:
        raise ticket.error
    return ticket.result


def resolved(result: Any = None) -> Ticket:
    """A ticket that is already done: for operations that needed no I/O (memory, no-op)."""
    ticket = Ticket()
    ticket.resolve(result=result)
    return ticket


DONE = resolved()
"""A shared, already resolved ticket (adding a callback to it just runs the callback)."""
