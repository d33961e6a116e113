"""One AMQP 0-9-1 connection: the adapter that runs AMQP on the connection chassis.

Everything about AMQP's bytes lives in :class:`buzon.amqp.AmqpConnection`; everything about
queues and channels in the engine; this module and :mod:`buzon.server.amqp_methods` turn
the protocol's events into engine and resource calls and engine deliveries into frames.

A method that needs the store or an argon2id check (a login, a declare, a bind, an access
key) runs off the event loop through ``Connection.verify``: the connection reads and
handles nothing else meanwhile, so a channel's methods are answered in the order they came.
An engine refusal becomes the reply code clients expect (:func:`reply_code`): a channel
error closes that channel only, a connection error the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias, TypeVar

from buzon.amqp import (
    AmqpConnection,
    AmqpLimits,
    ChannelClosed,
    ChannelCloseOk,
    ChannelOpened,
    ConnectionClosed,
    ConnectionCloseOk,
    ConnectionOpened,
    Event,
    LoginRequested,
    ReplyCode,
    method_ids,
)
from buzon.amqp.connection import AmqpState
from buzon.auth import Principal
from buzon.auth.tokens import TOKEN_PREFIX, token_hash
from buzon.broker import Message, Session
from buzon.errors import AccessDenied, BuzonError, ErrorCode
from buzon.server.amqp_channel import AmqpChannel
from buzon.server.amqp_methods import Methods
from buzon.server.close_reasons import CloseReason
from buzon.server.connection import Connection
from buzon.server.context import ServerContext
from buzon.server.read_pauses import ACCESS, LOGIN

log = logging.getLogger("buzon.server")
T = TypeVar("T")

PROTOCOL = "amqp/0-9-1"
MEMORY, DISK = "memory", "disk"
_BLOCKED_BECAUSE = {
    MEMORY: "buzon is over its memory budget",
    DISK: "buzon's disk is under its free-space floor: persistent publishes are refused",
}

_REPLY_CODES = {
    ErrorCode.DESTINATION_NOT_FOUND: ReplyCode.NOT_FOUND,
    ErrorCode.NOT_FOUND: ReplyCode.NOT_FOUND,
    ErrorCode.DESTINATION_DELETED: ReplyCode.NOT_FOUND,
    ErrorCode.ACCESS_DENIED: ReplyCode.ACCESS_REFUSED,
    ErrorCode.ACCESS_KEY_REQUIRED: ReplyCode.ACCESS_REFUSED,
    ErrorCode.ACCESS_KEY_WRONG: ReplyCode.ACCESS_REFUSED,
    ErrorCode.TOO_MANY_ATTEMPTS: ReplyCode.ACCESS_REFUSED,
    ErrorCode.RESOURCE_LOCKED: ReplyCode.RESOURCE_LOCKED,
    ErrorCode.PRECONDITION_FAILED: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.DESTINATION_EXISTS: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.BAD_DESTINATION: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.BAD_HEADER_VALUE: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.BAD_REQUEST: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.UNKNOWN_ACK_ID: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.DUPLICATE_SUBSCRIPTION: ReplyCode.NOT_ALLOWED,
    ErrorCode.UNKNOWN_SUBSCRIPTION: ReplyCode.NOT_FOUND,
    ErrorCode.QUEUE_FULL: ReplyCode.RESOURCE_ERROR,
    ErrorCode.LIMIT_EXCEEDED: ReplyCode.RESOURCE_ERROR,
    ErrorCode.WEAK_PASSWORD: ReplyCode.PRECONDITION_FAILED,
    ErrorCode.PERMISSIONS_CHANGED: ReplyCode.CONNECTION_FORCED,
    ErrorCode.ACCOUNT_DISABLED: ReplyCode.CONNECTION_FORCED,
    ErrorCode.CONNECTION_CLOSED_BY_ADMIN: ReplyCode.CONNECTION_FORCED,
    ErrorCode.SERVER_SHUTDOWN: ReplyCode.CONNECTION_FORCED,
    ErrorCode.SLOW_CONSUMER: ReplyCode.CONNECTION_FORCED,
    ErrorCode.HANDSHAKE_TIMEOUT: ReplyCode.CONNECTION_FORCED,
    ErrorCode.TOO_MANY_CONNECTIONS: ReplyCode.CONNECTION_FORCED,
}


def reply_code(code: ErrorCode) -> ReplyCode:
    """The AMQP reply code for a buzon error (541 INTERNAL_ERROR for the unexpected)."""
    return _REPLY_CODES.get(code, ReplyCode.INTERNAL_ERROR)


Handler: TypeAlias = Callable[[Any], None]


class AmqpAdapter:
    """AMQP's side of one connection (see :mod:`buzon.server.protocol_adapter`).

    Args:
        connection: the chassis it runs on.
    """

    def __init__(self, connection: Connection[AmqpAdapter]) -> None:
        self._connection = connection
        self._ctx: ServerContext = connection.ctx
        settings = self._ctx.settings
        # heart-beats as STOMP's, in whole seconds (0: off)
        self.amqp = AmqpConnection(AmqpLimits(heartbeat=-(-settings.heartbeat_ms // 1000)))
        self._principal: Principal | None = None
        self._token: str | None = None
        self._login_session: Session | None = None
        self.channels: dict[int, AmqpChannel] = {}
        self._busy = False  # a method runs off the loop: handle nothing else meanwhile
        self._blocks: set[str] = set()  # why publishers should wait: "memory", "disk"
        self.published = False
        self._failed = False
        self._peer_closed = False
        self._ended = False
        self.methods = Methods(self)
        self._handlers: dict[type, Handler] = {
            LoginRequested: self._login,
            ConnectionOpened: self._opened,
            ConnectionClosed: self._client_closed,
            ConnectionCloseOk: self._close_ok,
            ChannelOpened: self._channel_opened,
            ChannelClosed: self._channel_closed,
            ChannelCloseOk: self._channel_close_ok,
            **self.methods.handlers(),
        }

    # -- what the chassis reads ----------------------------------------------------------

    @property
    def protocol(self) -> str:
        return PROTOCOL

    @property
    def principal(self) -> Principal | None:
        return self._principal

    @property
    def ctx(self) -> ServerContext:
        """The server's shared state."""
        return self._ctx

    @property
    def connection(self) -> Connection[AmqpAdapter]:
        """The chassis."""
        return self._connection

    def sessions(self) -> Iterable[Session]:
        return [channel.session for channel in self.channels.values() if channel.session]

    # -- input ---------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        self.amqp.receive_data(data, now)

    def receive_eof(self) -> None:
        self._peer_closed = True
        self.amqp.receive_eof()

    def process(self, budget: int | None) -> bool:
        handled = 0
        amqp = self.amqp
        while not self._busy:
            if budget is not None and handled >= budget:
                self._send_confirms()
                return True
            event = amqp.next_event()
            if event is None:
                break
            handled += 1
            self._handle(event)
        self._send_confirms()
        if amqp.close_expected() and amqp.state is AmqpState.FAILED:
            self._failed = True
        return False

    def _handle(self, event: Event) -> None:
        self._guarded(event, self._handlers[type(event)], event)

    def _guarded(self, event: Event, step: Callable[[Any], object], argument: object) -> None:
        """Run one step of ``event``'s handling: an engine refusal becomes the reply code
        clients expect, anything else (our bug) ends this connection only (541)."""
        try:
            step(argument)
        except BuzonError as exc:
            self.refuse(event, exc)
        except Exception:
            # our bug: this connection ends (541), the broker and the others go on
            log.exception("%s: %s failed", self._connection.id, type(event).__name__)
            self._connection.failure = ErrorCode.INTERNAL_ERROR
            self.amqp.close_connection(ReplyCode.INTERNAL_ERROR, "internal error")
            self._failed = True

    def refuse(self, event: Event, exc: BuzonError) -> None:
        """Answer a method the engine or a check refused: close its channel (a soft
        error) or the connection (a hard one), naming the method."""
        code = reply_code(exc.code)
        class_id, method_id = method_ids(event)
        channel = getattr(event, "channel", 0)
        text = exc.detail or exc.code.message
        if code is ReplyCode.INTERNAL_ERROR:
            log.error("%s: %s failed: %r", self._connection.id, type(event).__name__, exc)
        if code.closes_connection or not channel:
            self.amqp.close_connection(code, text, class_id, method_id)
        else:
            self.amqp.close_channel(channel, code, text, class_id, method_id)
            self.drop_channel(channel)
        self._connection.flush()

    def take_published(self) -> bool:
        published, self.published = self.published, False
        if published and MEMORY not in self._blocks and self._ctx.broker.over_high_water:
            # the chassis stops reading; clients that can say so stop publishing
            self._block(MEMORY)
            self._ctx.broker.call_when_below_low_water(lambda: self._unblock(MEMORY))
        return published

    def _storage_changed(self, full: bool) -> None:
        """Under the disk floor persistent publishes are refused: say so while it lasts."""
        if full:
            self._block(DISK)
        else:
            self._unblock(DISK)

    def _block(self, reason: str) -> None:
        """``connection.blocked`` when the first reason to wait comes."""
        if reason in self._blocks:
            return
        self._blocks.add(reason)
        if len(self._blocks) == 1 and self.amqp.blocked(_BLOCKED_BECAUSE[reason]):
            self._connection.flush()

    def _unblock(self, reason: str) -> None:
        """``connection.unblocked`` once no reason is left."""
        if reason not in self._blocks:
            return
        self._blocks.discard(reason)
        if not self._blocks and not self._ended and self.amqp.unblocked():
            self._connection.flush()

    # -- off-loop steps ------------------------------------------------------------------

    def run(
        self,
        event: Event,
        step: Awaitable[T],
        then: Callable[[T], object],
        *,
        reason: int = ACCESS,
    ) -> None:
        """Run ``step`` off the loop for a channel's method, handling nothing else
        meanwhile; then ``then`` with its result, or refuse ``event`` with its error;
        neither once that channel or the connection is closing."""
        self._busy = True
        number: int = getattr(event, "channel", 0)

        async def guarded() -> T | BuzonError:
            try:
                return await step
            except BuzonError as exc:
                return exc

        def done(result: T | BuzonError) -> None:
            self._busy = False
            if self.amqp.state is not AmqpState.OPEN or number not in self.channels:
                return  # the channel, or the connection, was closed meanwhile: no answer
            if isinstance(result, BuzonError):
                self.refuse(event, result)
            else:
                self._guarded(event, then, result)

        self._connection.verify(reason, guarded(), done, self._step_failed)

    def _step_failed(self, exc: BuzonError) -> None:
        self._busy = False
        self._connection.fail(exc.code, exc.detail)

    # -- the connection ------------------------------------------------------------------

    def _login(self, event: LoginRequested) -> None:
        check = self._ctx.accounts.authenticate(
            event.username, event.password, self._connection.peer_host, token=True
        )
        self._busy = True
        self._connection.verify(LOGIN, check, self._logged_in(event), self._login_refused)

    def _logged_in(self, event: LoginRequested) -> Callable[[Principal], None]:
        def accepted(principal: Principal) -> None:
            self._busy = False
            self._principal = principal
            if event.password.startswith(TOKEN_PREFIX):
                self._token = token_hash(event.password)
            # A session of the login itself, with no subscription: what ends a user's
            # sessions (disabled, demoted, password changed, token revoked) reaches a
            # connection with no channel open too.
            self._login_session = self._ctx.broker.open_session(
                _LoginSink(self._ended_by),
                principal,
                token=self._token,
                connection=self._connection.id,
            )
            self.amqp.accept_login()
            log.debug("%s logged in over AMQP as %s", self._connection.id, principal.name)

        return accepted

    def _login_refused(self, exc: BuzonError) -> None:
        """A failed login is ``connection.close`` 403 after the handshake (clients turn it
        into their authentication error), not a dropped socket."""
        self._busy = False
        connection = self._connection
        log.info("%s AMQP login refused from %s: %s", connection.id, connection.peer, exc.code.name)
        connection.failure = exc.code
        self.amqp.refuse_login(exc.detail or exc.code.message)
        self._failed = True
        connection.flush()
        connection.resume(LOGIN)  # the client's close-ok, or its goodbye, ends it

    def _opened(self, _: ConnectionOpened) -> None:
        self._connection.established()
        self._ctx.storage_watchers.add(self._storage_changed)
        if self._ctx.broker.storage_full:
            self._block(DISK)

    def _client_closed(self, _: ConnectionClosed) -> None:
        self._connection.close_reason = CloseReason.CLIENT_DISCONNECT
        self.end()

    def _close_ok(self, _: ConnectionCloseOk) -> None:
        self.end()

    # -- channels ------------------------------------------------------------------------

    def _channel_opened(self, event: ChannelOpened) -> None:
        principal = self._principal
        if principal is None:
            raise AccessDenied(ErrorCode.NOT_AUTHENTICATED)
        channel = AmqpChannel(
            event.channel,
            self.amqp,
            self._connection.queued,
            self._ended_by,
            self._ctx.broker.config.max_prefetch,
        )
        session = self._ctx.broker.open_session(
            channel, principal, token=self._token, connection=self._connection.id
        )
        session.on_cancelled(self.methods.cancelled(channel))
        for destination_id in self.methods.live_grants():
            session.grant(destination_id)
        channel.session = session
        self.channels[event.channel] = channel

    def _channel_closed(self, event: ChannelClosed) -> None:
        self.drop_channel(event.channel)

    def _channel_close_ok(self, event: ChannelCloseOk) -> None:
        self.drop_channel(event.channel)

    def drop_channel(self, number: int) -> None:
        """Forget a channel: its session closes, its unacked messages go back."""
        channel = self.channels.pop(number, None)
        if channel is None:
            return
        channel.close()
        if channel.session is not None:
            channel.session.close()

    def channel(self, number: int) -> AmqpChannel:
        """The open channel ``number`` (the codec admits methods on open channels only)."""
        return self.channels[number]

    def _ended_by(self, code: ErrorCode, detail: str) -> None:
        """The engine ends a session (permissions changed, user disabled): the whole
        connection goes, as it would over STOMP."""
        self._connection.failure = code
        self.amqp.close_connection(reply_code(code), detail or code.message)
        self._connection.flush()

    def _send_confirms(self) -> None:
        for channel in self.channels.values():
            channel.send_confirms()

    # -- output, time, closing -----------------------------------------------------------

    def data_to_send(self) -> bytes:
        return self.amqp.data_to_send()

    def set_writable(self, writable: bool) -> None:
        for session in self.sessions():
            session.set_writable(writable)

    def write_error(self, code: ErrorCode, detail: str) -> None:
        if self.amqp.state in (AmqpState.AWAITING_HEADER, AmqpState.AWAITING_START_OK):
            self.amqp.receive_eof()  # nothing negotiated: there is no one to tell
            self._failed = True
            return
        self.amqp.close_connection(reply_code(code), detail or code.message)
        self._failed = True

    def next_deadline(self) -> float | None:
        return self.amqp.get_timer()

    def on_deadline(self, now: float) -> None:
        self.amqp.handle_timer(now)
        if self.amqp.close_expected() and self._connection.failure is None:
            self._connection.failure = ErrorCode.HEARTBEAT_TIMEOUT
            self._failed = True

    def close_expected(self) -> bool:
        return self.amqp.close_expected()

    @property
    def ended(self) -> bool:
        return self._ended or self.amqp.state in (AmqpState.CLOSING, AmqpState.CLOSED)

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def peer_closed(self) -> bool:
        return self._peer_closed

    def owes_confirms(self) -> bool:
        return any(channel.owes_confirms for channel in self.channels.values())

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._ctx.storage_watchers.discard(self._storage_changed)
        for number in list(self.channels):
            self.drop_channel(number)
        if self._login_session is not None:
            self._login_session.close()
        self._ctx.broker.connection_closed(self._connection.id)


class _LoginSink:
    """The sink of a connection's login session: it never subscribes, so it is only ever
    asked to end (the engine ends every session of a login that no longer holds)."""

    __slots__ = ("_end",)

    def __init__(self, end: Callable[[ErrorCode, str], None]) -> None:
        self._end = end

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        raise AssertionError("a login session has no subscription")

    def close_session(self, code: ErrorCode, detail: str) -> None:
        self._end(code, detail)


AmqpSession: TypeAlias = Connection[AmqpAdapter]
"""A connection speaking AMQP 0-9-1."""


def amqp_session(ctx: ServerContext) -> AmqpSession:
    """A new AMQP connection (the protocol factory of the AMQP listeners)."""
    return Connection(ctx, AmqpAdapter)
