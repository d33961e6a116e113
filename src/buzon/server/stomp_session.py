"""STOMP's adapter on the connection chassis: frames in become engine commands, deliveries
become MESSAGE frames.

Everything about STOMP framing and states lives in :class:`buzon.stomp.StompConnection`;
everything about queues and channels in :class:`buzon.broker.Session`; everything a
connection shares whatever its protocol (transport, output batching, read pauses, timers,
linger, close reasons, the registry) in :class:`buzon.server.connection.Connection`. This
module moves data between the first two and tells the chassis what happened. TCP, TLS and
WebSocket (:mod:`buzon.server.websocket`) run the very same adapter.

A login, and an access key a SEND or SUBSCRIBE presents, are verified off the event loop
(``Connection.verify``); the frame that carried the key is held until then (see
``stomp_commands``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any, TypeAlias

from buzon import __version__
from buzon.auth import Principal
from buzon.auth.tokens import TOKEN_PREFIX, token_hash
from buzon.broker import Message as BrokerMessage
from buzon.broker import Session
from buzon.errors import AuthError, BrokerError, BuzonError, ErrorCode
from buzon.server.access_gate import admit
from buzon.server.close_reasons import CloseReason
from buzon.server.connection import Connection
from buzon.server.context import ServerContext
from buzon.server.read_pauses import ACCESS, LOGIN
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

# Per-delivery framing overhead estimate (command and standard headers), for the chassis's
# output batching.
FRAME_OVERHEAD = 160
# Frames whose writes their RECEIPT vouches for: the message of a SEND, the settlement of
# an ACK or NACK, what a COMMIT applies. (A SUBSCRIBE's auto-acked deliveries also remove
# messages from the log; a failure there is retried at shutdown, not the subscriber's.)
_CONFIRMED_WRITES = (Send, Ack, Nack, Commit)


class StompAdapter:
    """The STOMP side of one connection; also the engine session's delivery sink.

    Args:
        connection: the chassis it runs on.
    """

    # Slots: ten thousand idle connections should cost as little memory as they can.
    __slots__ = ("_commands", "_connection", "_ctx", "_held", "_receipts", "_stomp")

    def __init__(self, connection: Connection[StompAdapter]) -> None:
        self._connection = connection
        self._ctx = connection.ctx
        hb = self._ctx.settings.heartbeat_ms
        self._stomp = StompConnection(Role.SERVER, heart_beat=(hb, hb))
        self._commands: Commands | None = None
        self._held: Send | Subscribe | None = None  # waits for its access-key check
        self._receipts: ReceiptGate | None = None  # made for the first receipt or write

    # -- what the chassis reports --------------------------------------------------------

    @property
    def protocol(self) -> str:
        """``stomp/<version>`` (the version is known once CONNECT arrived)."""
        return f"stomp/{self._stomp.version}"

    @property
    def principal(self) -> Principal | None:
        return None if self._commands is None else self._commands.session.principal

    def sessions(self) -> Iterable[Session]:
        return () if self._commands is None else (self._commands.session,)

    # -- the broker's DeliverySink -------------------------------------------------------

    def deliver(
        self, subscription_id: str, message: BrokerMessage, ack_id: str | None, redelivered: bool
    ) -> None:
        self._stomp.send_message(
            message.destination,
            message.id,
            subscription_id,
            ack_id,
            message.headers,
            message.body,
            redelivered,
        )
        self._connection.queued(len(message.body) + FRAME_OVERHEAD)

    def close_session(self, code: ErrorCode, detail: str) -> None:
        log.info("%s closed by the broker: %s %s", self._connection.id, code.name, detail)
        self._connection.fail(code, detail)

    # -- inbound frames ------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        self._stomp.receive_data(data, now)

    def receive_eof(self) -> None:
        self._stomp.receive_eof()

    def process(self, budget: int | None) -> bool:
        """Handle the complete frames buffered: at most ``budget`` (None: all); True when
        the budget ran out. A frame that waits for a check stops the run."""
        event: Any = self._held  # a frame that waited for its access-key check goes first
        self._held = None
        try:
            if event is None or self._handle(event):
                next_event = self._stomp.next_event
                left = budget
                while (event := next_event()) is not None:
                    if not self._handle(event):
                        break
                    if left is not None:
                        left -= 1
                        if not left:
                            return True
        except (BrokerError, AuthError) as exc:
            self._connection.failure = exc.code
            self._stomp.fail(exc.code, exc.detail, getattr(event, "receipt", None))
        except Exception:
            log.exception(
                "%s internal error handling %s", self._connection.id, type(event).__name__
            )
            self._connection.failure = ErrorCode.INTERNAL_ERROR
            self._stomp.fail(ErrorCode.INTERNAL_ERROR, receipt_id=getattr(event, "receipt", None))
        return False

    def take_published(self) -> bool:
        commands = self._commands
        if commands is None or not commands.published:
            return False
        commands.published = False
        return True

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
                self._start_key_check(event, commands.session, *check)
                return False
        elif kind is Disconnect:
            self._connection.close_reason = CloseReason.CLIENT_DISCONNECT
        journal = self._ctx.broker.journal
        before = journal.writes
        receipt = commands.handle(event)
        if journal.writes != before and isinstance(event, _CONFIRMED_WRITES):
            self._receipt_gate().wrote(journal.last)
        if receipt is not None:
            self._receipt_gate().confirm(receipt)
        return True

    # -- receipts ------------------------------------------------------------------------

    def _receipt_gate(self) -> ReceiptGate:
        gate = self._receipts
        if gate is None:
            connection = self._connection
            gate = self._receipts = ReceiptGate(
                connection.id, self._send_receipt, connection.flush, self._failed
            )
        return gate

    def _send_receipt(self, receipt: str) -> None:
        if self._connection.closed or not self._stomp.delivering:
            log.debug("%s receipt %s dropped: the connection is gone", self._connection.id, receipt)
            return
        self._stomp.send(Receipt(receipt_id=receipt))

    def owes_confirms(self) -> bool:
        """Whether the client said DISCONNECT and a receipt still waits for a write."""
        gate = self._receipts
        return gate is not None and gate.pending and self._stomp.state is ConnState.DISCONNECTING

    def _failed(self, error: BuzonError) -> None:
        self._connection.fail(error.code, error.detail)

    # -- login and access keys -----------------------------------------------------------

    def _start_login(self, event: Connect) -> None:
        connection = self._connection
        connection.verify(
            LOGIN,
            self._ctx.accounts.authenticate(
                event.login, event.passcode, connection.peer_host, token=True
            ),
            partial(self._logged_in, event),
            self._login_refused,
        )

    def _login_refused(self, exc: BuzonError) -> None:
        connection = self._connection
        log.info("%s login refused from %s: %s", connection.id, connection.peer, exc.code.name)
        connection.fail(exc.code, exc.detail)

    def _logged_in(self, event: Connect, principal: Principal) -> None:
        passcode = event.passcode or ""
        token = token_hash(passcode) if passcode.startswith(TOKEN_PREFIX) else None
        session = self._ctx.broker.open_session(self, principal, token=token)
        self._commands = Commands(session)
        self._stomp.accept(session=session.id, server=f"buzon/{__version__}")
        log.debug("%s logged in as %s", self._connection.id, principal.name)
        self._connection.established()

    def _start_key_check(
        self, event: Send | Subscribe, session: Session, record: DestinationRecord, key: str
    ) -> None:
        self._held = event
        check = admit(
            self._ctx.resources, session.principal, record, key, self._connection.peer_host, session
        )
        self._connection.verify(ACCESS, check, lambda _: None, partial(self._key_refused, event))

    def _key_refused(self, event: Send | Subscribe, exc: BuzonError) -> None:
        self._held = None
        connection = self._connection
        if connection.open:
            connection.failure = exc.code
            self._stomp.fail(exc.code, exc.detail, event.receipt)
            connection.flush()

    # -- timers and closing --------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._stomp.get_timer()

    def on_deadline(self, now: float) -> None:
        self._stomp.handle_timer(now)
        if self._stomp.close_expected() and self._connection.failure is None:
            self._connection.failure = ErrorCode.HEARTBEAT_TIMEOUT

    def data_to_send(self) -> bytes:
        return self._stomp.data_to_send()

    def set_writable(self, writable: bool) -> None:
        if self._commands is not None:
            self._commands.session.set_writable(writable)

    def write_error(self, code: ErrorCode, detail: str) -> None:
        self._stomp.fail(code, detail)

    def close_expected(self) -> bool:
        return self._stomp.close_expected()

    @property
    def ended(self) -> bool:
        return self._stomp.ended

    @property
    def failed(self) -> bool:
        return self._stomp.state is ConnState.FAILED

    @property
    def peer_closed(self) -> bool:
        return self._stomp.peer_closed

    def end(self) -> None:
        if self._commands is not None:
            self._commands.session.close()


StompSession: TypeAlias = Connection[StompAdapter]
"""A connection speaking STOMP."""


def stomp_session(ctx: ServerContext) -> StompSession:
    """A new STOMP connection (the protocol factory of the STOMP listeners and ``/ws``)."""
    return Connection(ctx, StompAdapter)
