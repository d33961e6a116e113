"""uvicorn serving the HTTP app on the broker's own event loop.

buzon binds the socket itself (so port 0 works and the bound port is known at once) and
runs uvicorn's server as a task. uvicorn would install its own SIGINT/SIGTERM handlers;
the broker process owns its signals, so the embedded server does not. For HTTPS a second
listener serves the same app with the broker's TLS context (uvicorn is handed that
context instead of file names, so STOMP and HTTPS share one certificate check).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from buzon.server.http.h11_protocol import JsonErrorH11Protocol
from buzon.server.http.limits import MAX_REQUEST_HEAD
from buzon.server.http.ws_protocol import PRE_LOGIN_MESSAGE, CappedWebSocketProtocol

# Seconds in-flight requests (long polls included) get to finish at shutdown.
SHUTDOWN_GRACE = 2.0
# STOMP over WebSocket (/ws): a message may be as large as a CONNECT frame until login, then
# as the largest STOMP frame (ws_protocol). No per-message compression, so there is nothing
# to inflate past the cap. Pings find peers that vanished without a word, also when the
# client turned STOMP heart-beats off.
WS_PING_SECONDS = 20.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling, telling us when it accepts requests, and told
    when to stop instead of polling for it."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        """uvicorn's loop ticks every 0.1 s to notice ``should_exit``; this one wakes on
        :attr:`exit`, and still ticks once a second (on_tick refreshes the Date header on
        every tenth count)."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit.wait(), 1.0)


class HttpListener:
    """The HTTP API on one address.

    Args:
        app: the application.
        host: address to bind.
        port: port (0 picks a free one).
        tls: serve HTTPS with this context instead of plain HTTP.
    """

    def __init__(
        self, app: FastAPI, host: str, port: int, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._tls = tls
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._socket is None:
            raise RuntimeError("HTTP listener not started")
        port: int = self._socket.getsockname()[1]
        return port

    def bind(self) -> socket.socket:
        """Bind the address without serving yet (connections wait in the backlog), so a
        server can claim all its ports before it touches anything else.

        Raises:
            OSError: the address cannot be bound.
        """
        if self._socket is not None:
            return self._socket
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listening = socket.create_server((self._host, self._port), family=family, backlog=1024)
        # asyncio turns TCP_NODELAY on only for sockets whose ``proto`` says TCP, accepted
        # sockets copy it from the listening one, and create_server leaves it 0. Without
        # TCP_NODELAY, uvicorn's separate writes of a response's head and body wait for the
        # client's delayed ACK: 40 ms per request on a kept-alive connection (uvloop sets
        # TCP_NODELAY itself, plain asyncio does not).
        self._socket = socket.socket(
            family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=listening.detach()
        )
        return self._socket

    async def start(self) -> None:
        """Bind (unless :meth:`bind` did) and serve; returns once requests are accepted.

        Raises:
            OSError: the address cannot be bound.
        """
        bound = self.bind()
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            http=JsonErrorH11Protocol,
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
            server_header=False,
            proxy_headers=False,
            ws=CappedWebSocketProtocol,
            ws_max_size=PRE_LOGIN_MESSAGE,
            ws_per_message_deflate=False,
            ws_ping_interval=WS_PING_SECONDS,
            ws_ping_timeout=WS_PING_SECONDS,
            ssl_context_factory=None if self._tls is None else _given(self._tls),
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[bound]))
        ready = asyncio.ensure_future(self._server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._task  # raises what made uvicorn stop

    async def stop(self) -> None:
        """Stop accepting, let requests finish (briefly), close."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.exit.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, SHUTDOWN_GRACE + 3)
        if self._socket is not None:
            self._socket.close()


def _given(
    context: ssl.SSLContext,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """A uvicorn SSL context factory that ignores uvicorn's defaults and returns ours."""
    return lambda _config, _default: context
