"""What a wire protocol implements to run on the connection chassis
(:class:`buzon.server.connection.Connection`).

The chassis owns what every protocol shares: the transport, the peer's address, output
batching and the write budget, read pauses, the handshake deadline, the protocol's timer,
linger and close grace, close reasons, the registry entry, and running login and
access-key checks off the event loop. An adapter owns one protocol's side of one
connection: its sans-IO codec (``buzon.stomp``, ``buzon.amqp``), turning its events into
engine calls, and turning deliveries into bytes.

An adapter is built by the chassis (``Connection(ctx, AdapterClass)``) with the chassis as
its only argument, and talks back to it: ``queued`` after adding output, ``flush``,
``verify`` for an off-loop check, ``established`` when the handshake is over, ``fail``,
``failure`` (the error it ends with, when the adapter writes that error itself) and
``close_reason`` (a goodbye sets ``CLIENT_DISCONNECT``; a connection that ends with
neither is counted as a protocol error).

An adapter may hold any number of engine sessions (one for STOMP; one per channel for a
protocol that multiplexes, such as AMQP): the chassis only ever goes through
:meth:`ProtocolAdapter.sessions` and :meth:`ProtocolAdapter.set_writable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from buzon.auth import Principal
from buzon.broker import Session
from buzon.errors import ErrorCode


class ProtocolAdapter(Protocol):
    """One protocol's side of one connection."""

    @property
    def protocol(self) -> str:
        """``<name>/<version>`` as shown to admins: ``stomp/1.2``, ``amqp/0-9-1``."""

    @property
    def principal(self) -> Principal | None:
        """Who logged in; None until the login was accepted."""

    def sessions(self) -> Iterable[Session]:
        """The engine sessions open on this connection (none before login)."""

    # -- input ---------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Take bytes from the peer (``now``: loop time); parse them, handle nothing yet."""

    def receive_eof(self) -> None:
        """The peer will send nothing more."""

    def process(self, budget: int | None) -> bool:
        """Handle what was received: at most ``budget`` protocol units (frames, methods),
        None for all. Stop early, returning False, when a unit waits for a check started
        with ``Connection.verify``. Engine refusals become the protocol's errors here.

        Returns:
            True when the budget ran out with input left (the chassis resumes in the next
            event-loop turn).
        """

    def take_published(self) -> bool:
        """Whether a publish ran since the last call (the chassis then checks the broker's
        memory budget and may pause reading); resets the flag."""

    # -- output --------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The output queued since the last call."""

    def set_writable(self, writable: bool) -> None:
        """Tell every engine session of this connection whether the peer keeps up."""

    def write_error(self, code: ErrorCode, detail: str) -> None:
        """Queue the protocol's connection-ending error for ``code`` (a server-side
        decision: shutdown, admin, handshake timeout, too many connections)."""

    # -- time ----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`on_deadline` should run next (loop time), or None (heart-beats off).
        Asked once the handshake is over and after every :meth:`on_deadline`."""

    def on_deadline(self, now: float) -> None:
        """Heart-beats: send one, or give up on a silent peer."""

    # -- closing -------------------------------------------------------------------------

    def close_expected(self) -> bool:
        """Whether the connection should be flushed and closed (goodbye said or error sent,
        or the peer closed)."""

    @property
    def ended(self) -> bool:
        """Whether the protocol ended (an error or a goodbye): the connection no longer
        serves its client."""

    @property
    def failed(self) -> bool:
        """Whether it ended with an error: the chassis then stops reading at once."""

    @property
    def peer_closed(self) -> bool:
        """Whether :meth:`receive_eof` was called."""

    def owes_confirms(self) -> bool:
        """Whether the peer said goodbye and confirmations it asked for (STOMP receipts)
        still wait for writes to be durable: the chassis keeps the connection open for
        them, for a bounded time."""

    def end(self) -> None:
        """The connection is closing or gone: close every engine session (idempotent)."""
