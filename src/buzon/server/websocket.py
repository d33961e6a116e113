"""A WebSocket as an asyncio transport, for a :class:`~buzon.server.connection.Connection`.

Strategy: the connection chassis is an ``asyncio.Protocol`` written for TCP. Rather than a
second chassis, WebSocket gets a transport: each WebSocket message, text or binary, goes to
``data_received`` as bytes, and what the connection writes goes back as binary messages. So
every protocol rule and limit, the login, the heart-beats, the pauses and the close reasons
are the TCP ones (``/ws`` carries STOMP). The WebSocket protocol itself (the upgrade,
masking, ping and pong, the closing handshake, the message size cap) is uvicorn's and the
``websockets`` library's: this module sees whole messages only.

Flow control works as on TCP:

- out: writes wait here until the sender task has handed them to the WebSocket, which waits
  while the socket underneath is full. Past the high-water mark the connection is told
  ``pause_writing`` (and the engine stops delivering to it), at the low-water mark
  ``resume_writing``.
- in: while the connection pauses reading, the next message is not asked for, and uvicorn
  stops reading the socket once it holds a message nobody asked for.

Messages out are binary because a text message must be valid UTF-8 and a STOMP body need
not be (stomp.js reads both kinds). The connection writes whole frames and a write is never
split, so each message carries one or more whole frames.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from buzon.server.close_reasons import CloseReason
from buzon.server.connection import Connection

# Writes are joined into messages of at most this size (one larger write goes alone), so
# a backlog is not copied into one huge message.
MESSAGE_BYTES = 64 * 1024
# asyncio's default high-water mark, until the connection sets its own.
DEFAULT_HIGH_WATER = 64 * 1024
# Close codes (RFC 6455 section 7.4.1) by which the peer broke the WebSocket protocol: a
# malformed frame, a text message that is not UTF-8, a message over the size cap.
_PEER_FAULTS = frozenset({1002, 1007, 1009})
_NORMAL_CLOSURE = 1000


class WebSocketTransport(asyncio.Transport):
    """One accepted WebSocket, as the transport of one :class:`Connection`.

    ``get_extra_info`` knows ``peername`` (host, port) and ``websocket`` (True).

    Args:
        websocket: the accepted WebSocket.
        connection: the connection to drive.
        on_login: called once, when the connection has logged in and before the next message
            is asked for (the HTTP layer lifts the pre-login message cap with it).
    """

    __slots__ = (
        "_buffered",
        "_closing",
        "_connection",
        "_finished",
        "_high_water",
        "_low_water",
        "_on_login",
        "_out",
        "_readable",
        "_wakeup",
        "_websocket",
        "_writing_paused",
    )

    def __init__(
        self,
        websocket: WebSocket,
        connection: Connection[Any],
        *,
        on_login: Callable[[], None] | None = None,
    ) -> None:
        client = websocket.client
        peer = None if client is None else (client.host, client.port)
        tls = websocket.url.scheme == "wss"
        super().__init__({"peername": peer, "websocket": True, "tls": tls})
        self._websocket = websocket
        self._on_login = on_login
        self._connection = connection
        self._out: deque[bytes] = deque()
        self._buffered = 0
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4
        self._writing_paused = False
        self._closing = False  # close() or abort() ran, the peer closed, or all ended
        self._readable = asyncio.Event()
        self._readable.set()
        self._wakeup = asyncio.Event()  # output or a close waits for the sender
        self._finished = asyncio.Event()

    async def run(self) -> None:
        """Serve the connection until it ends; its ``connection_lost`` comes last."""
        self._connection.connection_made(self)
        try:
            async with asyncio.TaskGroup() as group:
                receiver = group.create_task(self._receive_loop())
                sender = group.create_task(self._send_loop())
                await self._finished.wait()
                receiver.cancel()
                sender.cancel()
        finally:
            self._closing = True
            self._connection.connection_lost(None)

    # -- the asyncio.Transport surface Connection uses -------------------------------------

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        if self._closing or not data:
            return
        chunk = bytes(data)
        self._out.append(chunk)
        self._buffered += len(chunk)
        self._wakeup.set()
        if not self._writing_paused and self._buffered > self._high_water:
            self._writing_paused = True
            self._connection.pause_writing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low

    def can_write_eof(self) -> bool:
        """No half-close on a WebSocket: :meth:`close` sends what is buffered, then a close."""
        return False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then a WebSocket close; input is read and dropped meanwhile."""
        if not self._closing:
            self._closing = True
            self._readable.set()
            self._wakeup.set()

    def abort(self) -> None:
        """End now: buffered output is dropped, uvicorn closes the socket."""
        self._closing = True
        self._out.clear()
        self._finished.set()

    def pause_reading(self) -> None:
        if not self._closing:  # once closing, input is drained until the end
            self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    # -- the two halves ----------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        websocket = self._websocket
        try:
            while True:
                await self._readable.wait()
                if self._on_login is not None and self._connection.principal is not None:
                    self._on_login()  # logged in: messages may now be as large as frames
                    self._on_login = None
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self._peer_closed(message.get("code", _NORMAL_CLOSURE))
                    return
                if self._closing:
                    continue  # nothing more is parsed; keep the peer's writes moving
                data = message.get("bytes")
                if data is None:
                    data = message.get("text", "").encode()
                self._connection.data_received(data)
        finally:
            self._finished.set()

    def _peer_closed(self, code: int) -> None:
        if self._closing:
            return  # our own close, or the end of it
        self._closing = True
        connection = self._connection
        if code in _PEER_FAULTS and connection.close_reason is None:
            connection.close_reason = CloseReason.PROTOCOL_ERROR
        connection.eof_received()

    async def _send_loop(self) -> None:
        send = self._websocket.send
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._out:
                    data = self._next_message()
                    await send({"type": "websocket.send", "bytes": data})
                    self._sent(len(data))
                if self._closing:
                    await send({"type": "websocket.close", "code": _NORMAL_CLOSURE, "reason": ""})
                    return
        except WebSocketDisconnect:
            pass  # the peer is gone; nothing more can be sent
        finally:
            self._finished.set()

    def _next_message(self) -> bytes:
        out = self._out
        data = out.popleft()
        if not out or len(data) + len(out[0]) > MESSAGE_BYTES:
            return data
        parts = [data]
        size = len(data)
        while out and size + len(out[0]) <= MESSAGE_BYTES:
            part = out.popleft()
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    def _sent(self, size: int) -> None:
        self._buffered -= size
        if self._writing_paused and self._buffered <= self._low_water:
            self._writing_paused = False
            self._connection.resume_writing()
