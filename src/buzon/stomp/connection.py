"""One STOMP 1.2 connection, either end, without I/O.

Bytes go in through :meth:`StompConnection.receive_data`, typed events come out of
:meth:`~StompConnection.next_event`; events go in through :meth:`~StompConnection.send` and
bytes come out of :meth:`~StompConnection.data_to_send`. Time only enters as an explicit
``now``.

Two kinds of failure, kept apart on purpose: a peer that breaks the protocol never causes
an exception here. The connection queues an ERROR frame (server role), moves to FAILED and
reports ``close_expected()``. Our own code sending something illegal is a bug and raises
:class:`LocalProtocolError` at once.
"""

from __future__ import annotations

from buzon.errors import ErrorCode, FrameError, LocalProtocolError
from buzon.heartbeats import HeartbeatTimer, TimerAction
from buzon.stomp.events import Connect, Connected, Error, Event
from buzon.stomp.frame import HEARTBEAT, NEED_DATA, Command, Headers
from buzon.stomp.heartbeat import negotiate, negotiate_ms
from buzon.stomp.incoming import (
    DECODERS,
    SERVER_VERSIONS,
    VERSION,
    Decoder,
    decode_ack_11,
    decode_connect,
    decode_connected,
    decode_error,
    decode_nack_11,
)
from buzon.stomp.incoming import header as first_header
from buzon.stomp.limits import DEFAULT_LIMITS, PRE_LOGIN_LIMITS, ParserLimits
from buzon.stomp.outgoing import ENCODERS, frame_with
from buzon.stomp.parser import FrameParser
from buzon.stomp.serializer import message_chunks, serialize
from buzon.stomp.states import (
    BUFFERING_STATES,
    CLOSE_EXPECTED_STATES,
    FINAL_STATES,
    PARSING_STATES,
    ConnState,
    Role,
    StateMachine,
    refusal,
)

# States in which a server may send MESSAGE (what the transition table allows).
_DELIVERING = frozenset({ConnState.CONNECTED, ConnState.DISCONNECTING})

# States the peer's EOF does not end: a failed connection stays FAILED, and a server that
# received DISCONNECT still owes its RECEIPT (the client closes only once it has it, but
# may half-close its side first).
_EOF_KEEPS = {
    Role.SERVER: frozenset({ConnState.FAILED, ConnState.DISCONNECTING}),
    Role.CLIENT: frozenset({ConnState.FAILED}),
}

# Plain dict copies of the tables, shared by every connection once logged in: a dict
# lookup is cheaper than a mappingproxy's, and a table per connection costs memory.
_ENCODERS = dict(ENCODERS)
_DECODERS_12: dict[Command, Decoder] = dict(DECODERS)
_DECODERS_11 = {**DECODERS, Command.ACK: decode_ack_11, Command.NACK: decode_nack_11}

# ERROR bodies carry a short explanation; anything longer is cut.
_MAX_DETAIL = 200


class StompConnection:
    """The protocol state of one STOMP 1.2 connection.

    Args:
        role: which end we are.
        limits: parser limits once logged in.
        pre_login_limits: parser limits until the login is accepted (server) or CONNECTED
            arrives (client).
        heart_beat: our ``(cx, cy)`` in ms: we can beat every cx, and want the peer to beat
            every cy; 0 = not at all.
        heartbeat_grace: how many receive intervals of silence to tolerate before failing.

    Raises:
        ValueError: a heart-beat value is negative or ``heartbeat_grace`` is below 1.
    """

    def __init__(
        self,
        role: Role,
        *,
        limits: ParserLimits = DEFAULT_LIMITS,
        pre_login_limits: ParserLimits = PRE_LOGIN_LIMITS,
        heart_beat: tuple[int, int] = (10000, 10000),
        heartbeat_grace: float = 2.0,
    ) -> None:
        if min(heart_beat) < 0 or heartbeat_grace < 1:
            raise ValueError("heart-beats cannot be negative, nor the grace below 1")
        self._role = role
        self._machine = StateMachine(role)
        self._parsing = PARSING_STATES[role]
        self._buffering = BUFFERING_STATES[role]
        self._eof_keeps = _EOF_KEEPS[role]
        self._parser = FrameParser(pre_login_limits)
        self._limits = limits
        self._heart_beat = heart_beat
        self._grace = heartbeat_grace
        self._their_heart_beat = (0, 0)
        self._version = VERSION  # the server role learns the client's from CONNECT
        self._negotiated = (0.0, 0.0)
        self._timer: HeartbeatTimer | None = None
        self._now = 0.0  # the latest time we were given
        self._wrote = False  # output queued since the last timer poll
        self._eof = False
        self._out: list[bytes] = []
        # Until the handshake is done, the few frames it allows; then a shared table.
        self._decoders: dict[Command, Decoder] = (
            {Command.CONNECT: self._on_connect, Command.STOMP: self._on_connect}
            if role is Role.SERVER
            else {Command.CONNECTED: self._on_connected, Command.ERROR: decode_error}
        )

    @property
    def state(self) -> ConnState:
        """The current state."""
        return self._machine.state

    @property
    def delivering(self) -> bool:
        """Whether frames for a logged-in peer (MESSAGE, RECEIPT) may still be sent."""
        return self._machine.state in _DELIVERING

    @property
    def ended(self) -> bool:
        """Whether it is FAILED or CLOSED (a later failure is not reported)."""
        return self._machine.state in FINAL_STATES

    @property
    def version(self) -> str:
        """The protocol version of the session (the server role knows it once CONNECT arrived)."""
        return self._version

    @property
    def negotiated_heart_beat(self) -> tuple[float, float]:
        """``(send, receive)`` intervals in seconds once logged in; 0 = off."""
        return self._negotiated

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Take bytes from the peer.

        Any bytes count as a sign of life for heart-beats. Bytes that arrive after the
        connection stopped reading (failed, closed, or the server after DISCONNECT) are
        dropped. While a server decides on a login, frames after CONNECT are kept unparsed
        until :meth:`accept`: pause reading meanwhile to bound them.

        Args:
            data: bytes as read from the transport.
            now: the current time (any monotonic clock, the same for every call).
        """
        if not data:
            return
        self._now = now
        if self._timer is not None:
            self._timer.last_received = now
        if self._machine.state in self._buffering:
            self._parser.feed(data)

    def receive_eof(self) -> None:
        """Note that the peer closed its side; frames already received are still read."""
        self._eof = True

    def next_event(self) -> Event | None:
        """Parse and return the next event from the peer.

        Heart-beats are skipped. A peer violation (bad bytes, a frame illegal now, a
        missing or bad header, no common version) queues an ERROR (server role), moves to
        FAILED and returns None.

        Returns:
            The next event, or None when more data is needed, or nothing more will come
            (check :meth:`close_expected`), or the server awaits its login decision.
        """
        machine = self._machine
        while machine.state in self._parsing:
            try:
                raw = self._parser._next_raw()
            except FrameError as exc:
                self.fail(exc.code, exc.detail)
                return None
            if raw is NEED_DATA:
                break
            if raw is HEARTBEAT:
                continue
            command, headers, body = raw
            if not machine.apply(command, outgoing=False):
                detail = f"{command.value} not allowed now"
                self.fail(refusal(machine.state), detail, first_header(headers, "receipt"))
                return None
            try:
                return self._decoders[command](headers, body)
            except FrameError as exc:
                self.fail(exc.code, exc.detail, first_header(headers, "receipt"))
                return None
        if self._eof and machine.state not in self._eof_keeps:
            machine.end(ConnState.CLOSED)
        return None

    def _on_connect(self, headers: Headers, body: bytes) -> Connect:
        event = decode_connect(headers, body)
        self._their_heart_beat = event.heart_beat
        self._version = event.version
        self._decoders = _DECODERS_11 if event.version == "1.1" else _DECODERS_12
        return event

    def _on_connected(self, headers: Headers, body: bytes) -> Connected:
        event = decode_connected(headers, body)
        self._decoders = _DECODERS_12
        self._start_session(event.heart_beat)
        return event

    def _start_session(self, their_heart_beat: tuple[int, int]) -> None:
        """Logged in: switch to the full limits and start heart-beats."""
        self._parser.limits = self._limits
        send, receive = negotiate(self._heart_beat, their_heart_beat)
        self._negotiated = (send, receive)
        if send or receive:
            self._timer = HeartbeatTimer(send, receive * self._grace, self._now)

    # -- output --------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Queue an event for the peer.

        Args:
            event: a client event (client role) or MESSAGE, RECEIPT or ERROR (server role).
                CONNECT and CONNECTED go through :meth:`connect` and :meth:`accept`.

        Raises:
            LocalProtocolError: the event is not ours to send, or not in this state.
        """
        entry = _ENCODERS.get(type(event))
        if entry is None:
            raise LocalProtocolError(detail=f"send {type(event).__name__} with its own method")
        command, encode = entry
        if not self._machine.apply(command, outgoing=True):
            raise self._illegal(command)
        self._out += encode(event)
        self._wrote = True

    def send_message(
        self,
        destination: str,
        message_id: str,
        subscription: str,
        ack: str | None,
        headers: Headers,
        body: bytes,
        redelivered: bool,
    ) -> None:
        """Server role: queue a MESSAGE; :meth:`send` with a Message event, made cheaper.

        A broker calls this once per delivery, so it builds no event and looks nothing up.

        Raises:
            LocalProtocolError: not a server with a session (CONNECTED or DISCONNECTING).
        """
        if self._machine.state not in _DELIVERING or self._role is not Role.SERVER:
            raise self._illegal(Command.MESSAGE)
        self._out += message_chunks(
            destination, message_id, subscription, ack, headers, body, redelivered
        )
        self._wrote = True

    def _queue_local(self, command: Command, data: bytes) -> None:
        if not self._machine.apply(command, outgoing=True):
            raise self._illegal(command)
        self._out.append(data)
        self._wrote = True

    def _illegal(self, command: Command) -> LocalProtocolError:
        role, state = self._role.name, self.state.name
        return LocalProtocolError(detail=f"{role} cannot send {command.value} in {state}")

    def connect(
        self, *, login: str | None, passcode: str | None, host: str = "/", headers: Headers = ()
    ) -> None:
        """Client role: queue CONNECT offering 1.2 and our heart-beat.

        Args:
            login: the user name, or None to send none.
            passcode: the password, or None to send none.
            host: the virtual host.
            headers: extra headers (any named like the standard ones are dropped).

        Raises:
            LocalProtocolError: not a client awaiting CONNECT, or a value contains a line
                break (CONNECT headers are not escaped).
        """
        fields = [
            ("accept-version", VERSION),
            ("host", host),
            ("login", login),
            ("passcode", passcode),
            ("heart-beat", "{},{}".format(*self._heart_beat)),
        ]
        self._queue_local(Command.CONNECT, serialize(frame_with(Command.CONNECT, fields, headers)))

    def accept(self, *, session: str, server: str) -> None:
        """Server role: accept the login; queue CONNECTED and start the session.

        The parser switches to the full limits, and heart-beats start from the time of the
        last :meth:`receive_data`.

        Args:
            session: the session id to announce.
            server: the ``server`` header (name/version).

        Raises:
            LocalProtocolError: not a server that received CONNECT, or a value contains a
                line break.
        """
        send_ms, receive_ms = negotiate_ms(self._heart_beat, self._their_heart_beat)
        fields = [
            ("version", self._version),
            ("heart-beat", f"{send_ms},{receive_ms}"),
            ("server", server),
            ("session", session),
        ]
        data = serialize(frame_with(Command.CONNECTED, fields))
        self._queue_local(Command.CONNECTED, data)
        self._start_session(self._their_heart_beat)

    def fail(self, code: ErrorCode, detail: str = "", receipt_id: str | None = None) -> None:
        """Give up on the connection: queue ERROR (server role) and enter FAILED.

        The ERROR carries ``message`` (the code's safe text), ``code`` (its stable name,
        for programs) and the ``receipt-id``. Does nothing once FAILED or CLOSED, so only
        the first failure is reported.

        Args:
            code: why; its safe message becomes the ``message`` header.
            detail: a short explanation for the body (cut to 200 characters).
            receipt_id: the ``receipt`` of the frame that caused it, if any.
        """
        machine = self._machine
        if machine.state in FINAL_STATES:
            return
        if self._role is Role.CLIENT:
            machine.end(ConnState.FAILED)
            return
        extra: list[tuple[str, str]] = [("code", code.name)]
        if code is ErrorCode.UNSUPPORTED_VERSION:
            extra.append(("version", ",".join(sorted(SERVER_VERSIONS))))
        if detail:
            extra.append(("content-type", "text/plain;charset=utf-8"))
        body = detail[:_MAX_DETAIL].encode()
        self.send(Error(code.message, body, receipt_id, tuple(extra)))

    def data_to_send(self) -> bytes:
        """Return everything queued for the peer, and forget it."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    @property
    def peer_closed(self) -> bool:
        """Whether the peer closed its side (:meth:`receive_eof`)."""
        return self._eof

    def close_expected(self) -> bool:
        """True once the transport should be flushed (:meth:`data_to_send`) and closed."""
        return self._eof or self._machine.state in CLOSE_EXPECTED_STATES

    # -- time ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` should run, or None (heart-beats off)."""
        if self._timer is None or self.state is not ConnState.CONNECTED:
            return None
        return self._timer.deadline()

    def handle_timer(self, now: float) -> None:
        """Do what is due at ``now``: send a heart-beat EOL, or fail on peer silence.

        Args:
            now: the current time.
        """
        self._now = now
        timer = self._timer
        if timer is None or self.state is not ConnState.CONNECTED:
            return
        action = timer.poll(now, self._wrote)
        self._wrote = False
        if action is TimerAction.SEND_HEARTBEAT:
            self._out.append(b"\n")
        elif action is TimerAction.TIMED_OUT:
            silence = now - timer.last_received
            self.fail(ErrorCode.HEARTBEAT_TIMEOUT, f"nothing received for {silence:.1f} s")
