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

Reading pauses for several reasons at once (``read_pauses``): a login or an access key
being verified (the frame that carried the key is held until then, see
``stomp_commands``), a peer not reading what we send, the broker over its high-water mark
while this connection publishes, a server shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from buzon import __version__
from buzon.auth.tokens import TOKEN_PREFIX, token_hash
from buzon.broker import Message as BrokerMessage
from buzon.broker import Session
from buzon.errors import AuthenticationFailed, AuthError, BrokerError, BuzonError, ErrorCode
from buzon.server.access_gate import admit
from buzon.server.close_reasons import CloseReason, reason_for
from buzon.server.context import ServerContext
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
from buzon.server.receipts import ReceiptGate
from buzon.server.stomp_commands import Commands, key_to_check
from buzon.stomp import (
    Ack,
    Commit,
    Connect,
    ConnState,
    Disconnect,
    Nack,
    Receipt,
    Role,
    Send,
    StompConnection,
    Subscribe,
)
from buzon.store import DestinationRecord

log = logging.getLogger("buzon.server")
FRAMES_PER_TURN = 128
"""Frames one connection handles per event-loop turn. One read can bring over a thousand
small SENDs; handling them all at once kept every other connection waiting for tens of
milliseconds. 128 small frames take about a millisecond."""

# Write to the transport as soon as this much output waits, instead of at the end of the
# loop turn, so a large backlog reaches the transport's high-water check quickly.
FLUSH_BYTES = 64 * 1024
# Per-delivery framing overhead estimate (command and standard headers), for the above.
FRAME_OVERHEAD = 160
# A connection that was told to close but does not read its last bytes is cut after this;
# it is also how long a DISCONNECT's RECEIPT may wait for the connection's earlier writes.
CLOSE_GRACE_SECONDS = 2.0
# After ERROR the broker reads nothing more; the peer has this long to read the ERROR.
ERROR_LINGER_SECONDS = 1.0
# Frames whose writes their RECEIPT vouches for: the message of a SEND, the settlement of
# an ACK or NACK, what a COMMIT applies. (A SUBSCRIBE's auto-acked deliveries also remove
# messages from the log; a failure there is retried at shutdown, not the subscriber's.)
_CONFIRMED_WRITES = (Send, Ack, Nack, Commit)


class StompSession(asyncio.Protocol):
    """The server side of one STOMP connection over any stream transport."""

    # Slots: ten thousand idle connections should cost as little memory as they can.
    __slots__ = (
        "_closing",
        "_commands",
        "_conn",
        "_ctx",
        "_failure",
        "_flush_scheduled",
        "_held",
        "_loop",
        "_lost",
        "_overdue",
        "_pauses",
        "_receipts",
        "_timer",
        "_transport",
        "_unflushed",
        "close_reason",
        "connected_at",
        "id",
        "peer",
        "peer_host",
    )

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        hb = ctx.settings.heartbeat_ms
        self._conn = StompConnection(Role.SERVER, heart_beat=(hb, hb))
        self.id = ctx.new_connection_id()
        self.peer = "?"
        self.peer_host = "?"
        self.connected_at = time.time()
        self.close_reason: CloseReason | None = None
        self._transport: asyncio.Transport | None = None
        self._commands: Commands | None = None
        self._held: Send | Subscribe | None = None  # waits for its access-key check
        self._timer: asyncio.TimerHandle | None = None
        self._overdue: asyncio.TimerHandle | None = None  # bounds a DISCONNECT's receipts
        self._pauses = ReadPauses()
        self._unflushed = 0
        self._flush_scheduled = False
        self._lost = False
        self._closing = False  # _close() ran: we are only waiting for the peer to go
        self._failure: ErrorCode | None = None
        self._receipts: ReceiptGate | None = None  # made for the first receipt or write

    @property
    def session(self) -> Session | None:
        """The engine session, once logged in."""
        return None if self._commands is None else self._commands.session

    @property
    def protocol(self) -> str:
        """``stomp/<version>`` (the version is known once CONNECT arrived)."""
        return f"stomp/{self._conn.version}"

    @property
    def transport_name(self) -> str:
        """``tcp``, ``tls``, ``websocket`` (``/ws``) or ``websocket+tls`` (``/ws`` on HTTPS)."""
        transport = self._transport
        if transport is None:
            return "tcp"
        if transport.get_extra_info("websocket", False):
            return "websocket+tls" if transport.get_extra_info("tls", False) else "websocket"
        return "tcp" if transport.get_extra_info("ssl_object") is None else "tls"

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
        budget = self._ctx.settings.max_outbound_bytes
        transport.set_write_buffer_limits(high=budget, low=budget // 4)
        self._ctx.add_connection(self)
        self._ctx.connection_events.record_open(self)
        if self._ctx.closing:
            self.fail(ErrorCode.SERVER_SHUTDOWN)
        elif len(self._ctx.connections) > self._ctx.settings.max_connections:
            self.fail(ErrorCode.TOO_MANY_CONNECTIONS)
        else:
            self._timer = self._loop.call_later(
                self._ctx.settings.handshake_timeout, self._handshake_expired
            )

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data, self._loop.time())
        self._process()

    def eof_received(self) -> bool | None:
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        self._conn.receive_eof()
        # The peer sent all it will: what is still buffered is handled now, whatever the
        # per-turn share (TCP reports EOF only after reading resumes; a WebSocket close
        # may come while the rest waits for its turn).
        self._pauses.resume(TURN)
        self._process(budget=None)
        # True keeps our side open: receipts still owed leave before we close (_flush).
        return self._owes_receipts() or None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._pauses.attach(None)
        if self.close_reason is None:
            self.close_reason = CloseReason.CONNECTION_LOST
        if self._timer is not None:
            self._timer.cancel()
        if self._overdue is not None:
            self._overdue.cancel()
        if self.session is not None:
            self.session.close()
        self._ctx.remove_connection(self)
        self._ctx.connection_events.record_close(self)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.set_writable(False)
        self._pauses.pause(PEER)

    def resume_writing(self) -> None:
        self._pauses.resume(PEER)
        if self.session is not None:
            self.session.set_writable(True)

    # -- the broker's DeliverySink -------------------------------------------------------

    def deliver(
        self, subscription_id: str, message: BrokerMessage, ack_id: str | None, redelivered: bool
    ) -> None:
        self._conn.send_message(
            message.destination,
            message.id,
            subscription_id,
            ack_id,
            message.headers,
            message.body,
            redelivered,
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

    def _process(self, budget: int | None = FRAMES_PER_TURN) -> None:
        """Handle the complete frames buffered, unless a login or key check is running: at
        most ``budget`` of them in this event-loop turn (None: all), the rest in the next."""
        if self._pauses.holds(LOGIN | ACCESS | TURN) or self._lost:
            return
        event: Any = self._held  # a frame that waited for its access-key check goes first
        self._held = None
        try:
            if event is None or self._handle(event):
                next_event = self._conn.next_event
                left = budget
                while (event := next_event()) is not None:
                    if not self._handle(event):
                        break
                    if left is not None:
                        left -= 1
                        if not left:
                            self._pauses.pause(TURN)
                            self._loop.call_soon(self._next_turn)
                            break
        except (BrokerError, AuthError) as exc:
            self._failure = exc.code
            self._conn.fail(exc.code, exc.detail, getattr(event, "receipt", None))
        except Exception:
            log.exception("%s internal error handling %s", self.id, type(event).__name__)
            self._failure = ErrorCode.INTERNAL_ERROR
            self._conn.fail(ErrorCode.INTERNAL_ERROR, receipt_id=getattr(event, "receipt", None))
        self._flush()
        commands = self._commands
        if commands is not None and commands.published:
            commands.published = False
            self._throttle_if_needed()

    def _next_turn(self) -> None:
        self._pauses.resume(TURN)
        self._process()

    def _handle(self, event: Any) -> bool:
        """Run one event; False when it waits for a login or an access-key check."""
        kind = type(event)
        if kind is Connect:
            self._start_login(event)
            return False
        commands = self._commands
        if commands is None:
            raise AssertionError("the STOMP state table admits no frame before login")
        if kind is Send or kind is Subscribe:
            check = key_to_check(event, commands.session, self._ctx.broker)
            if check is not None:
                self._start_key_check(event, *check)
                return False
        elif kind is Disconnect:
            self.close_reason = CloseReason.CLIENT_DISCONNECT
        journal = self._ctx.broker.journal
        before = journal.writes
        receipt = commands.handle(event)
        if journal.writes != before and isinstance(event, _CONFIRMED_WRITES):
            self._receipt_gate().wrote(journal.last)
        if receipt is not None:
            self._receipt_gate().confirm(receipt)
        return True

    def _receipt_gate(self) -> ReceiptGate:
        gate = self._receipts
        if gate is None:
            gate = self._receipts = ReceiptGate(
                self.id, self._send_receipt, self._flush, self._failed
            )
        return gate

    def _send_receipt(self, receipt: str) -> None:
        if self._lost or self._closing or not self._conn.delivering:
            log.debug("%s receipt %s dropped: the connection is gone", self.id, receipt)
            return
        self._conn.send(Receipt(receipt_id=receipt))

    def _owes_receipts(self) -> bool:
        """Whether the client said DISCONNECT and a receipt still waits for a write."""
        gate = self._receipts
        return (
            gate is not None
            and gate.pending
            and not self._closing
            and self._conn.state is ConnState.DISCONNECTING
        )

    def _failed(self, error: BuzonError) -> None:
        self.fail(error.code, error.detail)

    # -- login and access keys -----------------------------------------------------------

    def _start_login(self, event: Connect) -> None:
        self._pauses.pause(LOGIN)
        self._ctx.spawn(self._login(event))

    async def _login(self, event: Connect) -> None:
        try:
            principal = await self._ctx.accounts.authenticate(
                event.login, event.passcode, self.peer_host, token=True
            )
        except AuthenticationFailed as exc:
            log.info("%s login refused from %s: %s", self.id, self.peer, exc.code.name)
            self.fail(exc.code, exc.detail)
            return
        if self._lost or self._conn.close_expected():
            return
        passcode = event.passcode or ""
        token = token_hash(passcode) if passcode.startswith(TOKEN_PREFIX) else None
        session = self._ctx.broker.open_session(self, principal, token=token)
        self._commands = Commands(session)
        self._conn.accept(session=session.id, server=f"buzon/{__version__}")
        log.debug("%s logged in as %s", self.id, principal.name)
        self._arm_timer()
        self._pauses.resume(LOGIN)
        self._process()

    def _start_key_check(
        self, event: Send | Subscribe, record: DestinationRecord, key: str
    ) -> None:
        self._held = event
        self._pauses.pause(ACCESS)
        self._ctx.spawn(self._check_key(event, record, key))

    async def _check_key(
        self, event: Send | Subscribe, record: DestinationRecord, key: str
    ) -> None:
        session = self.session
        if session is None:
            return
        try:
            await admit(
                self._ctx.resources, session.principal, record, key, self.peer_host, session
            )
        except BuzonError as exc:
            self._held = None
            self.fail(exc.code, exc.detail, event.receipt)
            return
        if self._lost or self._conn.close_expected():
            return
        self._pauses.resume(ACCESS)
        self._process()

    # -- timers --------------------------------------------------------------------------

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._commands is None and not self._lost:
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

    @property
    def open(self) -> bool:
        """Whether the connection still serves its client: not told to go (an ERROR,
        a DISCONNECT), not closing, and the peer not gone. What an admin sees and closes."""
        return not (self._lost or self._closing or self._conn.ended)

    def fail(self, code: ErrorCode, detail: str = "", receipt_id: str | None = None) -> None:
        """Send ERROR with ``code`` and close (used for server-side decisions)."""
        if not self.open:
            return  # the first failure was reported, and is the close reason
        self._failure = code
        self._conn.fail(code, detail, receipt_id)
        self._flush()

    def hold(self) -> None:
        """Read nothing more from this client (the server is shutting down)."""
        self._pauses.pause(SHUTDOWN)

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
        if self._closing:
            return  # our side is shut: what is still queued has nowhere to go
        data = self._conn.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if not self._conn.close_expected():
            return
        if not self._owes_receipts():
            self._close(transport)
        elif self._overdue is None:
            # The receipts wait for the connection's earlier writes, but not forever.
            self._overdue = self._loop.call_later(CLOSE_GRACE_SECONDS, self._receipts_overdue)

    def _receipts_overdue(self) -> None:
        transport = self._transport
        if transport is not None and not self._lost and not self._closing:
            log.info("%s closed before its writes were durable: receipts not sent", self.id)
            self._close(transport)

    def _close(self, transport: asyncio.Transport) -> None:
        self._closing = True
        if self.close_reason is None:
            self.close_reason = reason_for(self._failure)
        if self.session is not None:
            self.session.close()
        self._linger(transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close after our last bytes, give the peer a moment to read them, then cut.

        After DISCONNECT we keep reading (and dropping) what the peer still sends until it
        closes too, because closing a socket that holds unread input makes the kernel send
        RST, which can make the peer's kernel discard our last frames before the peer read
        them; the connection is aborted after CLOSE_GRACE_SECONDS. After ERROR nothing the
        peer sends matters, and a hostile peer could keep us reading: we stop reading at
        once and abort after ERROR_LINGER_SECONDS.
        """
        if self._conn.state is ConnState.FAILED:
            self._pauses.pause(CLOSING)
            grace = ERROR_LINGER_SECONDS
        else:
            self._pauses.clear()
            grace = CLOSE_GRACE_SECONDS
        if transport.is_closing():
            return
        if self._conn.peer_closed or not transport.can_write_eof():
            transport.close()
        else:
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone: nothing left to wait for
                transport.abort()
                return
        self._loop.call_later(grace, transport.abort)

    def _throttle_if_needed(self) -> None:
        broker = self._ctx.broker
        if broker.over_high_water and not self._pauses.holds(MEMORY):
            self._pauses.pause(MEMORY)
            broker.call_when_below_low_water(lambda: self._pauses.resume(MEMORY))
