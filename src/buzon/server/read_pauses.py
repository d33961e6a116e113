"""Why a connection stopped reading: several reasons at once, each lifted on its own.

A connection stops reading while a login or an access key is verified, while its peer does
not read what it is sent, while the broker holds too many queued bytes, while the server
stops, once it sent ERROR, and between two event-loop turns when one read brought more
frames than a turn handles. Each reason is one bit, so one resume cannot undo another:
the transport resumes reading only when no reason is left.
"""

from __future__ import annotations

import asyncio

LOGIN = 1
"""A login is being verified."""
ACCESS = 2
"""An access key is being verified (the frame that carried it is held)."""
PEER = 4
"""The peer is not reading what we send."""
MEMORY = 8
"""The broker's queued bytes are over the high-water mark (publishers only)."""
SHUTDOWN = 16
"""The server is stopping."""
CLOSING = 32
"""The connection sent ERROR and is closing: nothing more it receives matters."""
TURN = 64
"""The connection handled its share of frames for this event-loop turn; the rest of what it
sent waits for the next turn, so one busy publisher cannot hold up everyone else."""


class ReadPauses:
    """The reasons one transport is not being read, as bits.

    A plain int rather than a set: ten thousand idle connections each keep one.
    """

    __slots__ = ("_bits", "_transport")

    def __init__(self) -> None:
        self._bits = 0
        self._transport: asyncio.Transport | None = None

    def attach(self, transport: asyncio.Transport | None) -> None:
        """Pause and resume ``transport`` from now on (None once the connection is gone)."""
        self._transport = transport

    def holds(self, reasons: int) -> bool:
        """Whether any of ``reasons`` (bits or-ed together) is in force."""
        return bool(self._bits & reasons)

    def pause(self, reason: int) -> None:
        if not self._bits and self._transport is not None:
            self._transport.pause_reading()
        self._bits |= reason

    def resume(self, reason: int) -> None:
        if not self._bits & reason:
            return
        self._bits &= ~reason
        if not self._bits and self._transport is not None:
            self._transport.resume_reading()

    def clear(self) -> None:
        """Lift every reason at once (the connection is closing and drains its input)."""
        if self._bits:
            self._bits = 0
            if self._transport is not None:
                self._transport.resume_reading()
