"""Process wiring: credentials → engine → STOMP listener, and a clean, bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from buzon.auth import Credentials
from buzon.broker import Broker, BrokerConfig, SlowConsumerPolicy
from buzon.errors import ErrorCode
from buzon.server.close_reasons import CloseReason
from buzon.server.config import Settings
from buzon.server.context import ServerContext
from buzon.server.stomp_session import StompSession

log = logging.getLogger("buzon.server")

# Pending TCP handshakes the kernel may hold for us; a burst of clients above this waits
# in SYN retries rather than being refused.
LISTEN_BACKLOG = 1024


def broker_config(settings: Settings) -> BrokerConfig:
    """The engine settings that ``buzon serve`` exposes."""
    return BrokerConfig(
        default_prefetch=settings.default_prefetch,
        queue_high_water_bytes=settings.max_queued_bytes,
        # resume at three quarters, so publishers do not flap around one mark
        queue_low_water_bytes=settings.max_queued_bytes * 3 // 4,
        channel_max_pending=settings.channel_max_pending,
        slow_consumer_policy=SlowConsumerPolicy(settings.slow_consumer_policy),
    )


class BuzonServer:
    """A running broker: one engine and its STOMP-over-TCP listener on one event loop.

    Args:
        settings: listener addresses, limits and engine settings.
        credentials: the logins CONNECT is checked against.
    """

    def __init__(self, settings: Settings, credentials: Credentials) -> None:
        self.settings = settings
        self._ctx = ServerContext(
            settings=settings, broker=Broker(broker_config(settings)), credentials=credentials
        )
        self._listener: asyncio.Server | None = None
        self._stopped = asyncio.Event()

    @property
    def broker(self) -> Broker:
        return self._ctx.broker

    @property
    def connections(self) -> frozenset[StompSession]:
        return frozenset(self._ctx.connections)

    @property
    def stomp_port(self) -> int:
        """The port actually bound (useful with ``stomp_port=0``)."""
        if self._listener is None or not self._listener.sockets:
            raise RuntimeError("server not started")
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind the listener; returns once clients can connect.

        Raises:
            OSError: the address cannot be bound (in use, not permitted).
        """
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        self._listener = await loop.create_server(
            lambda: StompSession(ctx),
            host=self.settings.host,
            port=self.settings.stomp_port,
            family=socket.AF_UNSPEC,
            backlog=LISTEN_BACKLOG,
            reuse_address=True,
        )

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, tell every client with an ERROR, wait up to ``grace`` s, then cut."""
        ctx = self._ctx
        ctx.closing = True
        if self._listener is not None:
            self._listener.close()
        for session in list(ctx.connections):
            session.close_reason = CloseReason.SHUTDOWN
            session.fail(ErrorCode.SERVER_SHUTDOWN)
        if ctx.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await ctx.idle.wait()
        for session in list(ctx.connections):
            session.abort()
        for task in list(ctx.tasks):
            task.cancel()
        if ctx.tasks:
            await asyncio.gather(*ctx.tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
        ctx.broker.close()
        self._stopped.set()
        log.info("stopped")
