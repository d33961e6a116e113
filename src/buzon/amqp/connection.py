"""The server end of one AMQP 0-9-1 connection, without I/O.

Bytes go in through :meth:`AmqpConnection.receive_data`, typed events come out of
:meth:`~AmqpConnection.next_event`; the server answers through the connection's methods
and drains :meth:`~AmqpConnection.data_to_send` (many deliveries join into one write).
Time only enters as an explicit ``now``.

A peer that breaks the protocol never raises here: the connection queues the close the
spec asks for (``channel.close`` for a soft error, ``connection.close`` for a hard one)
and reports it in :attr:`~AmqpConnection.close_reason`. Our own code calling a method at
the wrong time is a bug and raises :class:`~buzon.errors.LocalProtocolError`.

The handshake, in order (``S`` the server calling in, ``C`` the client's bytes)::

    C: AMQP 0 0 9 1         -> connection.start sent
    C: start-ok             -> LoginRequested;  S: accept_login() -> tune sent
                                                S: refuse_login() -> close 403 sent
    C: tune-ok              -> limits agreed, heart-beats start
    C: open "/"             -> ConnectionOpened (open-ok sent)

What a server's connection loop does with it::

    conn = AmqpConnection(limits)
    on bytes:   conn.receive_data(data, now)
                while (event := conn.next_event()) is not None: handle(event)
                write(conn.data_to_send()); close the socket if conn.close_expected()
    on EOF:     conn.receive_eof(), then the same loop
    on timer:   conn.handle_timer(now) at conn.get_timer(); write; close if expected
    while CLOSING (we sent connection.close): bound the wait for ConnectionCloseOk

``handle`` answers each event with the matching reply (``queue_declare_ok``...) unless
its ``nowait`` is set; it settles the messages of a channel on ``ChannelClosed`` and of
every channel when the connection ends. Deliveries and confirms go out through
``deliver``, ``confirm_ack`` and friends, which return False (and send nothing) once
the channel is gone.
"""

from __future__ import annotations

import enum
import platform
import struct

from pamqp import commands as c

import buzon
from buzon.amqp import events as ev
from buzon.amqp.channels import ChannelState
from buzon.amqp.codec import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    PUBLISH_INDEX,
    Arguments,
    Method,
    content_frames,
    decode_method,
    decode_publish,
    deliver_frames,
    method_frame,
    method_name,
)
from buzon.amqp.incoming import CHANNEL_METHODS, parse_credentials
from buzon.amqp.limits import AmqpLimits
from buzon.amqp.replies import AmqpProtocolError, ReplyCode
from buzon.amqp.tables import FieldTable
from buzon.errors import LocalProtocolError
from buzon.heartbeats import HeartbeatTimer, TimerAction

CAPABILITIES: FieldTable = {
    "publisher_confirms": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "exchange_exchange_bindings": False,
}
"""What ``connection.start`` announces; the product is buzon, never RabbitMQ."""

VIRTUAL_HOST = "/"

# Methods a client may send that buzon does not implement (540); any other method a
# client cannot send in its place is 503.
_NOT_IMPLEMENTED = frozenset({c.Exchange.Bind, c.Exchange.Unbind, c.Connection.UpdateSecret})
_CONNECTION_CLASS = c.Connection.frame_id
_FRAME_HEAD = struct.Struct(">BHI")
_PUBLISH = PUBLISH_INDEX.to_bytes(4)


class AmqpState(enum.Enum):
    """Where the connection is in its life."""

    AWAITING_HEADER = "awaiting-header"
    AWAITING_START_OK = "awaiting-start-ok"
    AWAITING_LOGIN = "awaiting-login"
    """``LoginRequested`` was returned; input waits for the server's decision."""
    AWAITING_TUNE_OK = "awaiting-tune-ok"
    AWAITING_OPEN = "awaiting-open"
    OPEN = "open"
    CLOSING = "closing"
    """We sent ``connection.close``; only the client's ``close-ok`` (or close) counts."""
    CLOSED = "closed"
    FAILED = "failed"
    """Closed without a handshake: bad protocol header, or the peer fell silent."""


_HANDSHAKE = {
    AmqpState.AWAITING_START_OK: c.Connection.StartOk,
    AmqpState.AWAITING_TUNE_OK: c.Connection.TuneOk,
    AmqpState.AWAITING_OPEN: c.Connection.Open,
}
_FINAL = frozenset({AmqpState.CLOSED, AmqpState.FAILED})
# States in which next_event parses nothing.
_WAITING = _FINAL | {AmqpState.AWAITING_HEADER, AmqpState.AWAITING_LOGIN}


class AmqpConnection:
    """The protocol state of one AMQP 0-9-1 connection, server role.

    Args:
        limits: what ``tune`` offers and what is refused beyond it.
    """

    def __init__(self, limits: AmqpLimits | None = None) -> None:
        self.limits = limits or AmqpLimits()
        self.state = AmqpState.AWAITING_HEADER
        self.channel_max = self.limits.channel_max
        self.frame_max = self.limits.pre_open_frame_max
        """The largest frame either side may send now (negotiated at ``tune-ok``)."""
        self.heartbeat = 0
        """Negotiated heart-beat interval in seconds (0 = off)."""
        self.client_properties: FieldTable = {}
        self.close_reason: str | None = None
        """Why the connection is closing or closed, for logs and the admin API."""
        self._channels: dict[int, ChannelState] = {}
        self._reserved = 0  # body bytes announced by messages still being received
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._timer: HeartbeatTimer | None = None
        self._wrote = False
        self._now = 0.0
        self._eof = False

    # -- properties ----------------------------------------------------------------------

    @property
    def client_capabilities(self) -> FieldTable:
        """The ``capabilities`` table of the client's properties (empty if none)."""
        caps = self.client_properties.get("capabilities")
        return caps if isinstance(caps, dict) else {}

    @property
    def is_open(self) -> bool:
        """Whether ``connection.open`` succeeded and nothing closed the connection since."""
        return self.state is AmqpState.OPEN

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not parsed yet (at most one frame plus one read)."""
        return len(self._buffer)

    def close_expected(self) -> bool:
        """True once the transport should be flushed (:meth:`data_to_send`) and closed."""
        return self._eof or self.state in _FINAL

    def channel_is_open(self, channel: int) -> bool:
        """Whether frames for ``channel`` are sent (an open connection, an open channel)."""
        chan = self._channels.get(channel)
        return self.state is AmqpState.OPEN and chan is not None and not chan.closing

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Take bytes from the peer; any bytes count as a sign of life."""
        if not data or self.state in _FINAL:
            return
        self._now = now
        if self._timer is not None:
            self._timer.last_received = now
        self._buffer += data
        if self.state is AmqpState.AWAITING_LOGIN and len(self._buffer) > self.frame_max:
            self._fail_hard(ReplyCode.UNEXPECTED_FRAME, "frames sent before connection.tune")

    def receive_eof(self) -> None:
        """Note that the peer closed its side; frames already received are still read,
        then the connection is CLOSED."""
        self._eof = True

    def next_event(self) -> ev.Event | None:
        """Parse and return the next event; None when more data is needed, the server
        owes a login decision, or the connection is over (:meth:`close_expected`)."""
        while True:
            if self.state is AmqpState.AWAITING_HEADER:
                self._read_protocol_header()
            state = self.state  # OPEN first: hashing an enum member costs a Python call
            waiting = state is not AmqpState.OPEN and state in _WAITING
            parsed = None if waiting else self._next_frame()
            if parsed is None:
                if self._eof and self.state not in _FINAL:
                    reason = self.close_reason or "the client closed the connection"
                    self._end(AmqpState.CLOSED, reason)
                return None
            try:
                event = self._on_frame(*parsed)
            except AmqpProtocolError as exc:
                self._fail_hard(exc.reply_code, exc.text)
                continue
            if event is not None:
                return event

    def _read_protocol_header(self) -> None:
        got = bytes(self._buffer[: len(PROTOCOL_HEADER)])
        if got != PROTOCOL_HEADER[: len(got)]:
            self._out.append(PROTOCOL_HEADER)
            self._end(AmqpState.FAILED, "not an AMQP 0-9-1 protocol header")
        elif len(got) == len(PROTOCOL_HEADER):
            del self._buffer[: len(PROTOCOL_HEADER)]
            self._send(
                0, c.Connection.Start, 0, 9, _server_properties(), b"PLAIN AMQPLAIN", b"en_US"
            )
            self.state = AmqpState.AWAITING_START_OK

    def _next_frame(self) -> tuple[int, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 7:
            return None
        frame_type, channel, size = _FRAME_HEAD.unpack_from(buf)
        end = size + 7
        if end >= self.frame_max:
            text = f"frame of {end + 1} bytes over frame_max {self.frame_max}"
            self._lose_framing(text)
            return None
        if len(buf) <= end:
            return None
        if buf[end] != 0xCE:
            self._lose_framing("frame does not end with 0xCE")
            return None
        payload = bytes(buf[7:end])
        del buf[: end + 1]
        return frame_type, channel, payload

    def _lose_framing(self, text: str) -> None:
        """The stream cannot be split into frames any more, so no close-ok could be read:
        send connection.close 501 and end at once (FAILED)."""
        self._fail_hard(ReplyCode.FRAME_ERROR, text)
        self._end(AmqpState.FAILED, self.close_reason or text)

    def _on_frame(self, frame_type: int, channel: int, payload: bytes) -> ev.Event | None:
        if frame_type == FRAME_METHOD:
            return self._on_method(channel, memoryview(payload))
        if frame_type in (FRAME_HEADER, FRAME_BODY):
            return self._on_content(frame_type, channel, payload)
        if frame_type == FRAME_HEARTBEAT:
            if channel:
                raise AmqpProtocolError(ReplyCode.FRAME_ERROR, "heartbeat on a channel")
            return None
        raise AmqpProtocolError(ReplyCode.FRAME_ERROR, f"unknown frame type {frame_type}")

    def _on_method(self, channel: int, payload: memoryview) -> ev.Event | None:
        chan = self._channels.get(channel)
        if chan is not None and chan.in_content:
            raise AmqpProtocolError(ReplyCode.UNEXPECTED_FRAME, "method inside a message's content")
        if chan is not None and not chan.closing and payload[:4] == _PUBLISH:
            chan.publish = decode_publish(payload)
            return None
        method, args = decode_method(payload)
        if self.state is AmqpState.CLOSING:
            return self._while_closing(channel, method)
        if self.state is not AmqpState.OPEN:
            return self._handshake(channel, method, args)
        if channel == 0:
            return self._on_connection_method(method, args)
        if method.index >> 16 == _CONNECTION_CLASS:
            raise _invalid(f"{method_name(method)} on channel {channel}")
        if chan is None:
            return self._on_closed_channel(channel, method)
        if chan.closing:
            return self._on_closing_channel(channel, method)
        return self._on_channel_method(channel, method, args)

    # -- handshake -----------------------------------------------------------------------

    def _handshake(self, channel: int, method: Method, args: Arguments) -> ev.Event | None:
        if method is c.Connection.Close and channel == 0:
            return self._on_connection_method(method, args)
        expected = _HANDSHAKE[self.state]
        if method is not expected or channel:
            got = f"{method_name(method)} on channel {channel}"
            raise _invalid(f"expected {method_name(expected)}, got {got}")
        if method is c.Connection.StartOk:
            return self._on_start_ok(args)
        if method is c.Connection.TuneOk:
            self._on_tune_ok(args)
            return None
        return self._on_open(args)

    def _on_start_ok(self, args: Arguments) -> ev.Event:
        mechanism = args.text("mechanism")
        username, password = parse_credentials(mechanism, args.raw("response"))
        self.client_properties = args.table("client_properties")
        self.state = AmqpState.AWAITING_LOGIN
        return ev.LoginRequested(
            mechanism, username, password, self.client_properties, args.text("locale")
        )

    def _on_tune_ok(self, args: Arguments) -> None:
        limits = self.limits
        channel_max = args.number("channel_max") or limits.channel_max
        frame_max = args.number("frame_max") or limits.frame_max
        if channel_max > limits.channel_max:
            text = f"channel_max {channel_max} above the server's {limits.channel_max}"
            raise AmqpProtocolError(ReplyCode.NOT_ALLOWED, text)
        if not FRAME_MIN_SIZE <= frame_max <= limits.frame_max:
            text = f"frame_max {frame_max} outside {FRAME_MIN_SIZE} to {limits.frame_max}"
            raise AmqpProtocolError(ReplyCode.FRAME_ERROR, text)
        self.channel_max, self.frame_max = channel_max, frame_max
        self.heartbeat = args.number("heartbeat")
        if self.heartbeat:
            # beat at half the interval, as the peer allows two intervals of silence
            self._timer = HeartbeatTimer(self.heartbeat / 2, self.heartbeat * 2.0, self._now)
        self.state = AmqpState.AWAITING_OPEN

    def _on_open(self, args: Arguments) -> ev.Event:
        vhost = args.text("virtual_host")
        if vhost not in (VIRTUAL_HOST, ""):  # some client URLs ("amqp://host/") send ""
            text = f"no virtual host {vhost[:100]}: buzon serves only /"
            raise AmqpProtocolError(ReplyCode.NOT_ALLOWED, text)
        self._send(0, c.Connection.OpenOk, "")
        self.state = AmqpState.OPEN
        return ev.ConnectionOpened(vhost, self.channel_max, self.frame_max, self.heartbeat)

    def accept_login(self) -> None:
        """Accept the credentials of :class:`~buzon.amqp.events.LoginRequested`: send
        ``connection.tune`` and read on.

        Raises:
            LocalProtocolError: no login is awaiting a decision.
        """
        self._expect(AmqpState.AWAITING_LOGIN, "accept a login")
        limits = self.limits
        self._send(0, c.Connection.Tune, limits.channel_max, limits.frame_max, limits.heartbeat)
        self.state = AmqpState.AWAITING_TUNE_OK

    def refuse_login(self, text: str) -> None:
        """Refuse the login: ``connection.close`` 403 ACCESS_REFUSED, which pika and
        py-amqp report as an authentication error.

        Raises:
            LocalProtocolError: no login is awaiting a decision.
        """
        self._expect(AmqpState.AWAITING_LOGIN, "refuse a login")
        self._fail_hard(ReplyCode.ACCESS_REFUSED, text)

    def _expect(self, state: AmqpState, action: str) -> None:
        if self.state is not state:
            raise LocalProtocolError(detail=f"cannot {action} in {self.state.value}")

    # -- connection and channel methods ----------------------------------------------------

    def _on_connection_method(self, method: Method, args: Arguments) -> ev.Event | None:
        if method is not c.Connection.Close:
            raise _unsupported(method, "on channel 0")
        self._send(0, c.Connection.CloseOk)
        event = ev.ConnectionClosed(
            args.number("reply_code"),
            args.text("reply_text"),
            args.number("class_id"),
            args.number("method_id"),
        )
        self._end(AmqpState.CLOSED, f"the client closed: {event.reply_code} {event.reply_text}")
        return event

    def _while_closing(self, channel: int, method: Method) -> ev.Event | None:
        if channel == 0 and method is c.Connection.CloseOk:
            self._end(AmqpState.CLOSED, self.close_reason or "closed")
            return ev.ConnectionCloseOk()
        if channel == 0 and method is c.Connection.Close:
            self._send(0, c.Connection.CloseOk)
            self._end(AmqpState.CLOSED, self.close_reason or "closed")
        return None  # the spec: discard everything else once close is sent

    def _on_closed_channel(self, channel: int, method: Method) -> ev.Event | None:
        if method is not c.Channel.Open:
            raise AmqpProtocolError(
                ReplyCode.CHANNEL_ERROR, f"{method_name(method)} on channel {channel}, not open"
            )
        if channel > self.channel_max:
            text = f"channel {channel} above channel_max {self.channel_max}"
            raise AmqpProtocolError(ReplyCode.CHANNEL_ERROR, text)
        self._channels[channel] = ChannelState()
        self._send(channel, c.Channel.OpenOk, b"")
        return ev.ChannelOpened(channel)

    def _on_closing_channel(self, channel: int, method: Method) -> ev.Event | None:
        if method is c.Channel.CloseOk:
            del self._channels[channel]
            return ev.ChannelCloseOk(channel)
        if method is c.Channel.Close:
            self._send(channel, c.Channel.CloseOk)
        return None  # the spec: discard all but close and close-ok after channel.close

    def _on_channel_method(self, channel: int, method: Method, args: Arguments) -> ev.Event | None:
        build = CHANNEL_METHODS.get(method)
        if build is not None:
            return build(channel, args)
        if method is c.Channel.Close:
            del self._channels[channel]
            self._send(channel, c.Channel.CloseOk)
            return ev.ChannelClosed(
                channel,
                args.number("reply_code"),
                args.text("reply_text"),
                args.number("class_id"),
                args.number("method_id"),
            )
        if method is c.Channel.Flow:
            active = args.flag("active")
            self._send(channel, c.Channel.FlowOk, active)
            return ev.ChannelFlow(channel, active)
        if method in (c.Basic.CancelOk, c.Channel.FlowOk):
            return None  # answers to our basic.cancel / channel.flow
        if method is c.Channel.Open:
            raise AmqpProtocolError(ReplyCode.CHANNEL_ERROR, f"channel {channel} already open")
        raise _unsupported(method, f"on channel {channel}")

    def _on_content(self, frame_type: int, channel: int, payload: bytes) -> ev.Event | None:
        chan = self._channels.get(channel)
        if chan is None:
            text = f"content on channel {channel}, which is not open"
            raise AmqpProtocolError(ReplyCode.CHANNEL_ERROR, text)
        if chan.closing or self.state is not AmqpState.OPEN:
            return None
        if frame_type == FRAME_HEADER:
            refused = chan.on_header(channel, memoryview(payload), self.limits.max_message_size)
            if refused is not None:
                self.close_channel(channel, ReplyCode.PRECONDITION_FAILED, refused, 60, 40)
                return None
            self._reserve(chan.body_size)
        else:
            chan.on_body(payload)
        event = chan.complete(channel)
        if event is not None:
            self._reserved -= len(event.body)
        return event

    def _reserve(self, size: int) -> None:
        """Count a message's announced body against the connection's budget for partial
        messages, before any of it is buffered."""
        budget = self.limits.max_pending_content
        if self._reserved + size > budget:
            text = f"partial messages on all channels would exceed {budget} bytes"
            raise AmqpProtocolError(ReplyCode.RESOURCE_ERROR, text)
        self._reserved += size

    # -- output --------------------------------------------------------------------------

    def _send(self, channel: int, method: Method, *values: object) -> None:
        self._out.append(method_frame(channel, method, *values))
        self._wrote = True

    def _reply(self, channel: int, method: Method, *values: object) -> bool:
        if not self.channel_is_open(channel):
            return False
        self._send(channel, method, *values)
        return True

    def data_to_send(self) -> bytes:
        """Return everything queued for the peer, and forget it."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    def _end(self, state: AmqpState, reason: str) -> None:
        self.state = state
        self.close_reason = reason
        self._channels.clear()
        self._buffer.clear()
        self._timer = None

    def _fail_hard(self, code: ReplyCode, text: str, class_id: int = 0, method_id: int = 0) -> None:
        if self.state in _FINAL or self.state is AmqpState.CLOSING:
            return
        self._send(
            0, c.Connection.Close, int(code), _short(f"{code.name} - {text}"), class_id, method_id
        )
        self.state = AmqpState.CLOSING
        self.close_reason = f"{int(code)} {code.name}: {text}"
        self._channels.clear()

    def close_connection(
        self, code: ReplyCode, text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        """Send ``connection.close``; then wait for the client's ``close-ok``
        (:class:`~buzon.amqp.events.ConnectionCloseOk`), which the server should bound
        with a timer. Does nothing once closing or closed."""
        self._fail_hard(code, text, class_id, method_id)

    def close_channel(
        self, channel: int, code: ReplyCode, text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        """Close a channel for a soft error (404, 403, 405, 406...); a hard code closes the
        whole connection instead, as the spec says. Frames for the channel are dropped
        until the client's ``close-ok`` (:class:`~buzon.amqp.events.ChannelCloseOk`)."""
        if code.closes_connection:
            self._fail_hard(code, text, class_id, method_id)
            return
        chan = self._channels.get(channel)
        if chan is None or chan.closing or self.state is not AmqpState.OPEN:
            return
        self._reserved -= chan.reserved
        chan.close()
        self._send(
            channel,
            c.Channel.Close,
            int(code),
            _short(f"{code.name} - {text}"),
            class_id,
            method_id,
        )

    # -- replies the server sends ----------------------------------------------------------
    # Each returns False (and sends nothing) when the channel is no longer open: a reply
    # computed after the client closed the channel is simply dropped.

    def exchange_declare_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Exchange.DeclareOk)

    def exchange_delete_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Exchange.DeleteOk)

    def queue_declare_ok(
        self, channel: int, queue: str, message_count: int, consumer_count: int
    ) -> bool:
        return self._reply(channel, c.Queue.DeclareOk, queue, message_count, consumer_count)

    def queue_bind_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Queue.BindOk)

    def queue_unbind_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Queue.UnbindOk)

    def queue_purge_ok(self, channel: int, message_count: int) -> bool:
        return self._reply(channel, c.Queue.PurgeOk, message_count)

    def queue_delete_ok(self, channel: int, message_count: int) -> bool:
        return self._reply(channel, c.Queue.DeleteOk, message_count)

    def basic_qos_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Basic.QosOk)

    def basic_consume_ok(self, channel: int, consumer_tag: str) -> bool:
        return self._reply(channel, c.Basic.ConsumeOk, consumer_tag)

    def basic_cancel_ok(self, channel: int, consumer_tag: str) -> bool:
        return self._reply(channel, c.Basic.CancelOk, consumer_tag)

    def basic_recover_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Basic.RecoverOk)

    def confirm_select_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Confirm.SelectOk)

    def tx_select_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Tx.SelectOk)

    def tx_commit_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Tx.CommitOk)

    def tx_rollback_ok(self, channel: int) -> bool:
        return self._reply(channel, c.Tx.RollbackOk)

    def get_empty(self, channel: int) -> bool:
        return self._reply(channel, c.Basic.GetEmpty, "")

    def get_ok(
        self,
        channel: int,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        message_count: int,
        properties: bytes,
        body: bytes,
    ) -> bool:
        """``basic.get-ok`` with the message; ``message_count`` is what is left after it.
        ``properties`` is a property list (``Publish.raw_properties`` or
        :func:`~buzon.amqp.properties.encode_properties`)."""
        args = (delivery_tag, redelivered, exchange, routing_key, message_count)
        if not self._reply(channel, c.Basic.GetOk, *args):
            return False
        self._out += content_frames(channel, properties, body, self.frame_max)
        return True

    def deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        properties: bytes,
        body: bytes,
    ) -> bool:
        """``basic.deliver`` with the message, its body split to ``frame_max``.

        Returns:
            False when the channel is no longer open: nothing was sent, so the server
            should give the message back to its queue.
        """
        if not self.channel_is_open(channel):
            return False
        self._out += deliver_frames(
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            exchange,
            routing_key,
            properties,
            body,
            self.frame_max,
        )
        self._wrote = True
        return True

    def basic_return(
        self,
        channel: int,
        reply_code: ReplyCode,
        reply_text: str,
        exchange: str,
        routing_key: str,
        properties: bytes,
        body: bytes,
    ) -> bool:
        """``basic.return`` (312 NO_ROUTE for an unroutable mandatory message); send it
        before that message's confirm."""
        args = (int(reply_code), reply_text, exchange, routing_key)
        if not self._reply(channel, c.Basic.Return, *args):
            return False
        self._out += content_frames(channel, properties, body, self.frame_max)
        return True

    def confirm_ack(self, channel: int, delivery_tag: int, multiple: bool = False) -> bool:
        """Publisher confirm: every message up to ``delivery_tag`` when ``multiple``."""
        return self._reply(channel, c.Basic.Ack, delivery_tag, multiple)

    def confirm_nack(self, channel: int, delivery_tag: int, multiple: bool = False) -> bool:
        """Publisher confirm: the broker lost responsibility for these messages."""
        return self._reply(channel, c.Basic.Nack, delivery_tag, multiple, False)

    def cancel_consumer(self, channel: int, consumer_tag: str) -> bool:
        """Server-sent ``basic.cancel`` (its queue was deleted).

        Returns:
            False when the client did not announce ``consumer_cancel_notify`` (the server
            should close the channel instead) or the channel is not open.
        """
        if self.client_capabilities.get("consumer_cancel_notify") is not True:
            return False
        return self._reply(channel, c.Basic.Cancel, consumer_tag, True)

    def blocked(self, reason: str) -> bool:
        """``connection.blocked``, if the client announced the capability."""
        return self._connection_notice(c.Connection.Blocked, _short(reason))

    def unblocked(self) -> bool:
        """``connection.unblocked``, if the client announced the capability."""
        return self._connection_notice(c.Connection.Unblocked)

    def _connection_notice(self, method: Method, *values: object) -> bool:
        if self.state is not AmqpState.OPEN:
            return False
        if self.client_capabilities.get("connection.blocked") is not True:
            return False
        self._send(0, method, *values)
        return True

    # -- time ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` should run, or None (heart-beats off)."""
        if self._timer is None or self.state in _FINAL:
            return None
        return self._timer.deadline()

    def handle_timer(self, now: float) -> None:
        """Do what is due at ``now``: queue a heart-beat frame, or give up on a peer
        silent for two intervals (FAILED, nothing sent: it would not be read)."""
        self._now = now
        timer = self._timer
        if timer is None or self.state in _FINAL:
            return
        action = timer.poll(now, self._wrote)
        self._wrote = False
        if action is TimerAction.SEND_HEARTBEAT:
            self._out.append(HEARTBEAT_FRAME)
        elif action is TimerAction.TIMED_OUT:
            silence = now - timer.last_received
            self._end(AmqpState.FAILED, f"missed heart-beats: nothing received for {silence:.1f} s")


def _server_properties() -> FieldTable:
    return {
        "product": "buzon",
        "version": buzon.__version__,
        "platform": f"Python {platform.python_version()}",
        "capabilities": dict(CAPABILITIES),
    }


def _short(text: str) -> str:
    """Cut a reply text to the 255 bytes a short string holds."""
    raw = text.encode()[:255]
    return raw.decode(errors="ignore")


def _invalid(text: str) -> AmqpProtocolError:
    return AmqpProtocolError(ReplyCode.COMMAND_INVALID, text)


def _unsupported(method: Method, where: str) -> AmqpProtocolError:
    if method in _NOT_IMPLEMENTED:
        return AmqpProtocolError(ReplyCode.NOT_IMPLEMENTED, f"{method_name(method)} not supported")
    return _invalid(f"{method_name(method)} not allowed from a client {where}")
