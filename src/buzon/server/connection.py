"""The connection chassis: what every client connection shares, whatever its protocol.

Strategy: this is an ``asyncio.Protocol`` rather than a stream reader, so the hot path
(bytes in → adapter → engine → bytes out) runs without a task switch per frame. A
:class:`Connection` owns the transport and everything around it: the peer's address,
output batching and the write budget, read pauses, the handshake deadline and the
protocol's timer, linger and close grace, close reasons, its entry in the server's
registry, and login and access-key checks run off the event loop. Everything about one
protocol lives in its adapter (:class:`buzon.server.protocol_adapter.ProtocolAdapter`,
STOMP's in :mod:`buzon.server.stomp_session`); admin, metrics and connection events read
the protocol-neutral view here (id, protocol, transport, peer, principal, counters).

Output is batched: the adapter serialises deliveries into its codec's buffer and reports
them (:meth:`Connection.queued`); the chassis writes to the transport once per event-loop
turn, or as soon as ``FLUSH_BYTES`` are waiting, so the transport's high-water mark
(``max_outbound_bytes``) sees the real backlog and the engine is told to stop delivering
(``set_writable(False)``) in time.

Reading pauses for several reasons at once (``read_pauses``): a login or an access key
being verified (the unit that carried the key is held by the adapter until then), a peer
not reading what we send, the broker over its high-water mark while this connection
publishes, a server shutdown, a turn's share of input handled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from buzon.auth import Principal
from buzon.errors import BuzonError, ErrorCode
from buzon.server.close_reasons import CloseReason, reason_for
from buzon.server.context import ServerContext
from buzon.server.protocol_adapter import ProtocolAdapter
from buzon.server.read_pauses import (
    ACCESS,
    CLOSING,
    LOGIN,
    MEMORY,
    PEER,
    SHUTDOWN,
    TURN,
    ReadPauses,
)

log = logging.getLogger("buzon.server")

FRAMES_PER_TURN = 128
"""Frames (protocol units) one connection handles per event-loop turn. One read can bring
over a thousand small SENDs; handling them all at once kept every other connection waiting
for tens of milliseconds. 128 small frames take about a millisecond."""

# Write to the transport as soon as this much output waits, instead of at the end of the
# loop turn, so a large backlog reaches the transport's high-water check quickly.
FLUSH_BYTES = 64 * 1024
# A connection that was told to close but does not read its last bytes is cut after this;
# it is also how long confirmations owed after a goodbye may wait for earlier writes.
CLOSE_GRACE_SECONDS = 2.0
# After an error the broker reads nothing more; the peer has this long to read the error.
ERROR_LINGER_SECONDS = 1.0

A = TypeVar("A", bound=ProtocolAdapter)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A connection's counters, summed over its engine sessions.

    Attributes:
        subscriptions: subscriptions (consumers) open now.
        published: messages published.
        delivered: deliveries made.
    """

    subscriptions: int = 0
    published: int = 0
    delivered: int = 0


class Connection(asyncio.Protocol, Generic[A]):
    """The server side of one client connection over any stream transport.

    Args:
        ctx: the server's shared state.
        adapter: builds the protocol adapter, given this connection.

    Attributes:
        adapter: the protocol's side.
        id: ``c<n>``, unique in this server.
        peer: ``host:port`` of the client.
        peer_host: the client's address (login and access-key limits go by it).
        connected_at: when it was accepted (Unix time).
        close_reason: why it ended (set once it is ending).
        failure: the error the server ends it with, once decided (the close reason
            follows from it).
    """

    # Slots: ten thousand idle connections should cost as little memory as they can.
    __slots__ = (
        "_closing",
        "_flush_scheduled",
        "_loop",
        "_lost",
        "_overdue",
        "_pauses",
        "_timer",
        "_transport",
        "_unflushed",
        "adapter",
        "close_reason",
        "connected_at",
        "ctx",
        "failure",
        "id",
        "peer",
        "peer_host",
    )

    def __init__(self, ctx: ServerContext, adapter: Callable[[Connection[A]], A]) -> None:
        self.ctx = ctx
        self._loop = asyncio.get_running_loop()
        self.id = ctx.new_connection_id()
        self.peer = "?"
        self.peer_host = "?"
        self.connected_at = time.time()
        self.close_reason: CloseReason | None = None
        self.failure: ErrorCode | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None  # the handshake's, then the adapter's
        self._overdue: asyncio.TimerHandle | None = None  # bounds the wait after a goodbye
        self._pauses = ReadPauses()
        self._unflushed = 0
        self._flush_scheduled = False
        self._lost = False
        self._closing = False  # _close() ran: we are only waiting for the peer to go
        self.adapter: A = adapter(self)

    # -- the protocol-neutral view (admin, metrics, connection events) -------------------

    @property
    def protocol(self) -> str:
        """``<name>/<version>``, e.g. ``stomp/1.2`` (the version is known once negotiated)."""
        return self.adapter.protocol

    @property
    def transport_name(self) -> str:
        """``tcp``, ``tls``, ``websocket`` (``/ws``) or ``websocket+tls`` (``/ws`` on HTTPS)."""
        transport = self._transport
        if transport is None:
            return "tcp"
        if transport.get_extra_info("websocket", False):
            return "websocket+tls" if transport.get_extra_info("tls", False) else "websocket"
        return "tcp" if transport.get_extra_info("ssl_object") is None else "tls"

    @property
    def principal(self) -> Principal | None:
        """Who logged in; None before the login was accepted."""
        return self.adapter.principal

    def statistics(self) -> ConnectionStats:
        """The counters of every engine session of this connection, summed."""
        subscriptions = published = delivered = 0
        for session in self.adapter.sessions():
            stats = session.statistics()
            subscriptions += stats.subscriptions
            published += stats.published
            delivered += stats.delivered
        return ConnectionStats(subscriptions, published, delivered)

    @property
    def open(self) -> bool:
        """Whether the connection still serves its client: not told to go (an error, a
        goodbye), not closing, and the peer not gone. What an admin sees and closes."""
        return not (self._lost or self._closing or self.adapter.ended)

    @property
    def closed(self) -> bool:
        """Whether nothing more can be written: our side is shut, or the peer is gone."""
        return self._lost or self._closing

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's does not subclass asyncio.Transport, so no isinstance.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._pauses.attach(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer_host = str(peer[0])
            self.peer = f"{peer[0]}:{peer[1]}"
        else:
            self.peer = self.peer_host = str(peer)
        budget = self.ctx.settings.max_outbound_bytes
        transport.set_write_buffer_limits(high=budget, low=budget // 4)
        self.ctx.add_connection(self)
        self.ctx.connection_events.record_open(self)
        if self.ctx.closing:
            self.fail(ErrorCode.SERVER_SHUTDOWN)
        elif len(self.ctx.connections) > self.ctx.settings.max_connections:
            self.fail(ErrorCode.TOO_MANY_CONNECTIONS)
        else:
            self._timer = self._loop.call_later(
                self.ctx.settings.handshake_timeout, self._handshake_expired
            )

    def data_received(self, data: bytes) -> None:
        self.adapter.receive(data, self._loop.time())
        self._process()

    def eof_received(self) -> bool | None:
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        self.adapter.receive_eof()
        # The peer sent all it will: what is still buffered is handled now, whatever the
        # per-turn share (TCP reports EOF only after reading resumes; a WebSocket close
        # may come while the rest waits for its turn).
        self._pauses.resume(TURN)
        self._process(budget=None)
        # True keeps our side open: confirmations still owed leave before we close (flush).
        return self._owes_confirms() or None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._pauses.attach(None)
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        if self._timer is not None:
            self._timer.cancel()
        if self._overdue is not None:
            self._overdue.cancel()
        self.adapter.end()
        self.ctx.remove_connection(self)
        self.ctx.connection_events.record_close(self)

    def pause_writing(self) -> None:
        self.adapter.set_writable(False)
        self._pauses.pause(PEER)

    def resume_writing(self) -> None:
        self._pauses.resume(PEER)
        self.adapter.set_writable(True)

    # -- input ---------------------------------------------------------------------------

    def _process(self, budget: int | None = FRAMES_PER_TURN) -> None:
        """Let the adapter handle what it buffered, unless a login or key check is running:
        at most ``budget`` units in this event-loop turn (None: all), the rest in the next."""
        if self._pauses.holds(LOGIN | ACCESS | TURN) or self._lost:
            return
        if self.adapter.process(budget):
            self._pauses.pause(TURN)
            self._loop.call_soon(self._next_turn)
        self.flush()
        if self.adapter.take_published():
            self._throttle_if_needed()

    def _next_turn(self) -> None:
        self._pauses.resume(TURN)
        self._process()

    def _throttle_if_needed(self) -> None:
        broker = self.ctx.broker
        if broker.over_high_water and not self._pauses.holds(MEMORY):
            self._pauses.pause(MEMORY)
            broker.call_when_below_low_water(lambda: self._pauses.resume(MEMORY))

    # -- checks off the event loop (logins, access keys) ---------------------------------

    def verify(
        self,
        reason: int,
        check: Awaitable[T],
        accepted: Callable[[T], None],
        refused: Callable[[BuzonError], None],
    ) -> None:
        """Run ``check`` (an argon2id verification, say) as a task, reading nothing meanwhile.

        Args:
            reason: the read pause it holds, ``read_pauses.LOGIN`` or ``ACCESS``.
            check: what to wait for.
            accepted: called with its result, unless the connection ended meanwhile; then
                reading resumes and the adapter is asked to go on.
            refused: called when the check raises a :class:`BuzonError` (reading stays
                paused: the adapter is expected to fail the connection, or to resume).
        """
        self._pauses.pause(reason)
        self.ctx.spawn(self._verify(reason, check, accepted, refused))

    def resume(self, reason: int) -> None:
        """Read again after a check was refused, when the protocol still talks: an AMQP
        login refusal is a ``connection.close`` whose ``close-ok`` must be read."""
        self._pauses.resume(reason)
        self._process()

    async def _verify(
        self,
        reason: int,
        check: Awaitable[T],
        accepted: Callable[[T], None],
        refused: Callable[[BuzonError], None],
    ) -> None:
        try:
            result = await check
        except BuzonError as exc:
            refused(exc)
            return
        if self._lost or self.adapter.close_expected():
            return
        accepted(result)
        self._pauses.resume(reason)
        self._process()

    # -- timers --------------------------------------------------------------------------

    def established(self) -> None:
        """The handshake is over: the handshake deadline no longer applies, and the
        adapter's own timer (heart-beats) starts."""
        self._arm_timer()

    def _handshake_expired(self) -> None:
        self._timer = None
        if not self._lost:
            self.fail(ErrorCode.HANDSHAKE_TIMEOUT)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.adapter.next_deadline()
        if deadline is not None and not self._lost:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.adapter.on_deadline(self._loop.time())
        self.flush()
        self._arm_timer()

    # -- output and closing --------------------------------------------------------------

    def queued(self, size: int) -> None:
        """The adapter queued about ``size`` bytes of output: written at the end of this
        event-loop turn, or now once ``FLUSH_BYTES`` wait."""
        self._unflushed += size
        if self._unflushed >= FLUSH_BYTES:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def fail(self, code: ErrorCode, detail: str = "") -> None:
        """End the connection with the protocol's error for ``code`` (a server-side
        decision); only the first failure is reported, and is the close reason."""
        if not self.open:
            return
        self.failure = code
        self.adapter.write_error(code, detail)
        self.flush()

    def hold(self) -> None:
        """Read nothing more from this client (the server is shutting down)."""
        self._pauses.pause(SHUTDOWN)

    def abort(self) -> None:
        """Cut the connection now, without flushing (last step of a shutdown)."""
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what the adapter queued; close once the protocol expects it."""
        self._unflushed = 0
        transport = self._transport
        if transport is None or self._lost:
            return
        if self._closing:
            return  # our side is shut: what is still queued has nowhere to go
        adapter = self.adapter
        data = adapter.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if not adapter.close_expected():
            if adapter.ended:
                # The protocol said goodbye and awaits the peer's answer (AMQP's close-ok),
                # but not forever.
                self._bound_goodbye()
            return
        if not adapter.owes_confirms():
            self._close(transport)
        else:
            # The confirmations wait for earlier writes, but not forever.
            self._bound_goodbye()

    def _bound_goodbye(self) -> None:
        if self._overdue is None:
            self._overdue = self._loop.call_later(CLOSE_GRACE_SECONDS, self._goodbye_overdue)

    def _owes_confirms(self) -> bool:
        return not self._closing and self.adapter.owes_confirms()

    def _goodbye_overdue(self) -> None:
        transport = self._transport
        if transport is None or self._lost or self._closing:
            return
        if self.adapter.owes_confirms():
            log.info("%s closed before its writes were durable: receipts not sent", self.id)
        else:
            log.info("%s closed: no answer to its goodbye in %.0f s", self.id, CLOSE_GRACE_SECONDS)
        self._close(transport)

    def _close(self, transport: asyncio.Transport) -> None:
        self._closing = True
        if self.close_reason is None:
            self.close_reason = reason_for(self.failure)
        self.adapter.end()
        self._linger(transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close after our last bytes, give the peer a moment to read them, then cut.

        After a goodbye we keep reading (and dropping) what the peer still sends until it
        closes too, because closing a socket that holds unread input makes the kernel send
        RST, which can make the peer's kernel discard our last bytes before the peer read
        them; the connection is aborted after CLOSE_GRACE_SECONDS. After an error nothing
        the peer sends matters, and a hostile peer could keep us reading: we stop reading
        at once and abort after ERROR_LINGER_SECONDS.
        """
        if self.adapter.failed:
            self._pauses.pause(CLOSING)
            grace = ERROR_LINGER_SECONDS
        else:
            self._pauses.clear()
            grace = CLOSE_GRACE_SECONDS
        if transport.is_closing():
            return
        if self.adapter.peer_closed or not transport.can_write_eof():
            transport.close()
        else:
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone: nothing left to wait for
                transport.abort()
                return
        self._loop.call_later(grace, transport.abort)
