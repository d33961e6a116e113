"""One STOMP connection: frames in become engine commands, deliveries become MESSAGE frames.

Strategy: this is an ``asyncio.Protocol`` rather than a stream reader, so the hot path
(bytes in → parse → engine → bytes out) runs without a task switch per frame. Everything
about STOMP lives in :class:`buzon.stomp.StompConnection`; everything about queues and
channels lives in :class:`buzon.broker.Session`; this module only moves data between the
two and the transport, and decides when to pause.

Output is batched: deliveries are serialised into the connection's buffer and written to
the transport once per event-loop turn, or as soon as ``FLUSH_BYTES`` are waiting, so the
transport's high-water mark (``max_outbound_bytes``) sees the real backlog and the engine
is told to stop delivering (``set_writable(False)``) in time.

Reading is paused for three reasons, tracked separately so one resume cannot undo
another: a login is being verified, the peer is not reading what we send, or the broker's
queued bytes are over the high-water mark and this connection publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from buzon import __version__
from buzon.broker import AckMode, Delivery, Session
from buzon.errors import AuthenticationFailed, BrokerError, ErrorCode
from buzon.server.close_reasons import CloseReason
from buzon.server.context import ServerContext
from buzon.stomp import (
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Disconnect,
    Message,
    Nack,
    Receipt,
    Role,
    Send,
    StompConnection,
    Subscribe,
    Unsubscribe,
)

log = logging.getLogger("buzon.server")

# Write to the transport as soon as this much output waits, instead of at the end of the
# loop turn, so a large backlog reaches the transport's high-water check quickly.
FLUSH_BYTES = 64 * 1024
# Per-delivery framing overhead estimate (command and standard headers), for the above.
FRAME_OVERHEAD = 160
# A connection that was told to close but does not read its last bytes is cut after this.
CLOSE_GRACE_SECONDS = 2.0

# Headers a publisher may not set on the copies consumers receive: they belong to the
# frame (routing, receipts, transactions, length) or to the broker (ids, redelivery).
RESERVED_HEADERS = frozenset(
    {
        "destination",
        "receipt",
        "transaction",
        "content-length",
        "message-id",
        "subscription",
        "ack",
        "redelivered",
        "prefetch-count",
    }
)

_ERROR_CLOSE_REASONS = {
    ErrorCode.AUTH_FAILED: CloseReason.AUTH_FAILED,
    ErrorCode.HANDSHAKE_TIMEOUT: CloseReason.HANDSHAKE_TIMEOUT,
    ErrorCode.HEARTBEAT_TIMEOUT: CloseReason.IDLE_TIMEOUT,
    ErrorCode.SLOW_CONSUMER: CloseReason.SLOW_CONSUMER,
    ErrorCode.TOO_MANY_CONNECTIONS: CloseReason.TOO_MANY_CONNECTIONS,
    ErrorCode.SERVER_SHUTDOWN: CloseReason.SHUTDOWN,
}


def parse_prefetch(value: str | None) -> int | None:
    """Read ``prefetch-count``: plain ASCII digits, or absent."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "prefetch-count must be a positive integer")
    return int(value)


class StompSession(asyncio.Protocol):
    """The server side of one STOMP connection over any stream transport."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        hb = ctx.settings.heartbeat_ms
        self._conn = StompConnection(Role.SERVER, heart_beat=(hb, hb))
        self.id = ctx.new_connection_id()
        self.peer = "?"
        self.close_reason: CloseReason | None = None
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pauses: set[str] = set()
        self._unflushed = 0
        self._flush_scheduled = False
        self._published = False
        self._lost = False
        self._closing = False  # _close() ran: we are only waiting for the peer to go
        self._failure: ErrorCode | None = None
        self._handlers: dict[type[Any], Callable[[Any, Session], None]] = {
            Send: self._on_send,
            Ack: self._on_ack,
            Nack: self._on_nack,
            Subscribe: self._on_subscribe,
            Unsubscribe: self._on_unsubscribe,
            Begin: self._on_begin,
            Commit: self._on_commit,
            Abort: self._on_abort,
            Disconnect: self._on_disconnect,
        }

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's does not subclass asyncio.Transport, so no isinstance.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        budget = self._ctx.settings.max_outbound_bytes
        transport.set_write_buffer_limits(high=budget, low=budget // 4)
        self._ctx.add_connection(self)
        if self._ctx.closing:
            self.fail(ErrorCode.SERVER_SHUTDOWN)
        elif len(self._ctx.connections) > self._ctx.settings.max_connections:
            self.fail(ErrorCode.TOO_MANY_CONNECTIONS)
        else:
            self._timer = self._loop.call_later(
                self._ctx.settings.handshake_timeout, self._handshake_expired
            )
            log.debug("%s connected from %s", self.id, self.peer)

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data, self._loop.time())
        self._process()

    def eof_received(self) -> bool | None:
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        self._conn.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        if self._timer is not None:
            self._timer.cancel()
        if self._session is not None:
            self._session.close()
        self._ctx.remove_connection(self)
        log.debug("%s closed: %s", self.id, self.close_reason.value)

    def pause_writing(self) -> None:
        if self._session is not None:
            self._session.set_writable(False)
        self._pause("peer-not-reading")

    def resume_writing(self) -> None:
        self._resume("peer-not-reading")
        if self._session is not None:
            self._session.set_writable(True)

    # -- the broker's DeliverySink -------------------------------------------------------

    def deliver(self, delivery: Delivery) -> None:
        message = delivery.message
        self._conn.send(
            Message(
                destination=message.destination,
                message_id=message.id,
                subscription=delivery.subscription_id,
                ack=delivery.ack_id,
                headers=message.headers,
                body=message.body,
                redelivered=delivery.redelivered,
            )
        )
        self._unflushed += len(message.body) + FRAME_OVERHEAD
        if self._unflushed >= FLUSH_BYTES:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def close_session(self, code: ErrorCode, detail: str) -> None:
        log.info("%s closed by the broker: %s %s", self.id, code.name, detail)
        self.fail(code, detail)

    # -- inbound frames ------------------------------------------------------------------

    def _process(self) -> None:
        """Handle every complete frame buffered, unless a login is being checked."""
        if "login" in self._pauses or self._lost:
            return
        conn = self._conn
        event: Any = None
        try:
            while (event := conn.next_event()) is not None:
                if isinstance(event, Connect):
                    self._start_login(event)
                    break
                session = self._session
                assert session is not None, "the STOMP state table admits no frame before login"
                self._handlers[type(event)](event, session)
        except BrokerError as exc:
            conn.fail(exc.code, exc.detail, getattr(event, "receipt", None))
        except Exception:
            log.exception("%s internal error handling %s", self.id, type(event).__name__)
            conn.fail(ErrorCode.INTERNAL_ERROR, receipt_id=getattr(event, "receipt", None))
        self._flush()
        if self._published:
            self._published = False
            self._throttle_if_needed()

    def _receipt(self, receipt: str | None) -> None:
        if receipt is not None:
            self._conn.send(Receipt(receipt_id=receipt))

    def _on_send(self, event: Send, session: Session) -> None:
        headers = tuple(h for h in event.headers if h[0] not in RESERVED_HEADERS)
        session.publish(event.destination, headers, event.body, transaction=event.transaction)
        self._published = True
        if event.receipt is not None:
            self._conn.send(Receipt(receipt_id=event.receipt))

    def _on_ack(self, event: Ack, session: Session) -> None:
        session.ack(_ack_id(event, session), transaction=event.transaction)
        self._receipt(event.receipt)

    def _on_nack(self, event: Nack, session: Session) -> None:
        session.nack(_ack_id(event, session), transaction=event.transaction)
        self._receipt(event.receipt)

    def _on_subscribe(self, event: Subscribe, session: Session) -> None:
        prefetch = parse_prefetch(_header(event.headers, "prefetch-count"))
        session.subscribe(event.id, event.destination, AckMode(event.ack), prefetch)
        self._receipt(event.receipt)

    def _on_unsubscribe(self, event: Unsubscribe, session: Session) -> None:
        session.unsubscribe(event.id)
        self._receipt(event.receipt)

    def _on_begin(self, event: Begin, session: Session) -> None:
        session.begin(event.transaction)
        self._receipt(event.receipt)

    def _on_commit(self, event: Commit, session: Session) -> None:
        session.commit(event.transaction)
        self._published = True
        self._receipt(event.receipt)

    def _on_abort(self, event: Abort, session: Session) -> None:
        session.abort(event.transaction)
        self._receipt(event.receipt)

    def _on_disconnect(self, event: Disconnect, session: Session) -> None:
        self.close_reason = CloseReason.CLIENT_DISCONNECT
        session.close()
        self._receipt(event.receipt)

    # -- login ---------------------------------------------------------------------------

    def _start_login(self, event: Connect) -> None:
        self._pause("login")
        self._ctx.spawn(self._login(event))

    async def _login(self, event: Connect) -> None:
        try:
            async with self._ctx.auth_slots:
                if self._lost:
                    return
                principal = await asyncio.to_thread(
                    self._ctx.credentials.authenticate, event.login, event.passcode
                )
        except AuthenticationFailed:
            log.info("%s login refused from %s", self.id, self.peer)
            self.fail(ErrorCode.AUTH_FAILED)
            return
        if self._lost or self._conn.close_expected():
            return
        self._session = self._ctx.broker.open_session(self, principal)
        self._conn.accept(session=self._session.id, server=f"buzon/{__version__}")
        log.debug("%s logged in as %s", self.id, principal)
        self._arm_timer()
        self._resume("login")
        self._process()

    # -- timers --------------------------------------------------------------------------

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._session is None and not self._lost:
            self.fail(ErrorCode.HANDSHAKE_TIMEOUT)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._conn.get_timer()
        if deadline is not None and not self._lost:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._conn.handle_timer(self._loop.time())
        if self._conn.close_expected() and self._failure is None:
            self._failure = ErrorCode.HEARTBEAT_TIMEOUT
        self._flush()
        self._arm_timer()

    # -- output and closing --------------------------------------------------------------

    def fail(self, code: ErrorCode, detail: str = "") -> None:
        """Send ERROR with ``code`` and close (used for server-side decisions)."""
        if self._lost or self._conn.close_expected():
            return
        self._failure = code
        self._conn.fail(code, detail)
        self._flush()

    def abort(self) -> None:
        """Cut the connection now, without flushing (last step of a shutdown)."""
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        self._unflushed = 0
        transport = self._transport
        if transport is None or self._lost:
            return
        data = self._conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if self._conn.close_expected() and not self._closing:
            self._close(transport)

    def _close(self, transport: asyncio.Transport) -> None:
        self._closing = True
        if self.close_reason is None:
            code = self._failure
            self.close_reason = (
                _ERROR_CLOSE_REASONS.get(code, CloseReason.PROTOCOL_ERROR)
                if code is not None
                else CloseReason.PROTOCOL_ERROR
            )
        if self._session is not None:
            self._session.close()
        self._linger(transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close, keep reading (and dropping) what the peer still sends, then cut.

        Closing a socket that holds unread input makes the kernel send RST, and a RST can
        make the peer's kernel discard our ERROR before the peer reads it. So we send FIN
        after our last bytes, read until the peer closes too (the connection parses
        nothing once it failed or disconnected), and abort after CLOSE_GRACE_SECONDS.
        """
        if self._pauses:
            self._pauses.clear()
            transport.resume_reading()
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
        else:
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone: nothing left to wait for
                transport.abort()
                return
        self._loop.call_later(CLOSE_GRACE_SECONDS, transport.abort)

    def _pause(self, reason: str) -> None:
        if not self._pauses and self._transport is not None and not self._lost:
            self._transport.pause_reading()
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self._transport is not None and not self._lost:
            self._transport.resume_reading()

    def _throttle_if_needed(self) -> None:
        broker = self._ctx.broker
        if broker.over_high_water and "memory" not in self._pauses:
            self._pause("memory")
            broker.call_when_below_low_water(lambda: self._resume("memory"))


def _ack_id(event: Ack | Nack, session: Session) -> str:
    """The engine's ack id for an ACK/NACK: given in 1.2; found by message id in 1.1."""
    if event.subscription is None:
        return event.id
    return session.ack_id_for(event.subscription, event.id)


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None
