"""Process wiring: store → accounts → engine → STOMP and HTTP listeners, and a clean stop.

Everything runs on one event loop: the engine is synchronous, the listeners and a few
housekeeping tasks (lease expiry, rate sampling, token purge, event-loop lag) are the
only coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from buzon.auth import AccessKeys, Accounts, SecretHasher, Tokens
from buzon.auth.users import check_password, check_username
from buzon.broker import Broker, BrokerConfig, SlowConsumerPolicy
from buzon.errors import BuzonError, ErrorCode
from buzon.server.amqp_session import amqp_session
from buzon.server.close_reasons import CloseReason
from buzon.server.cluster import ClusterNode
from buzon.server.config import ListenError, Settings, disk_floor
from buzon.server.connection import Connection
from buzon.server.context import ServerContext
from buzon.server.durable import until_durable
from buzon.server.engine_timers import TimerDriver
from buzon.server.http.app import build_app
from buzon.server.http.listener import HttpListener
from buzon.server.loop_lag import watch_loop_lag
from buzon.server.periodic import every
from buzon.server.rates import RateMeter
from buzon.server.resources import Resources
from buzon.server.stomp_session import stomp_session
from buzon.server.tls import server_context
from buzon.store import MemoryStore, Store
from buzon.store.postgres import PostgresStore
from buzon.store.sqlite import SQLiteStore

log = logging.getLogger("buzon.server")

# Pending TCP handshakes the kernel may hold for us; a burst of clients above this waits
# in SYN retries rather than being refused.
LISTEN_BACKLOG = 1024
# 24 random bytes: 192 bits, far beyond online or offline guessing.
GENERATED_PASSWORD_BYTES = 24
# Housekeeping periods, in seconds.
LEASE_CHECK_PERIOD = 0.25
EXPIRY_CHECK_PERIOD = 1.0  # expired messages are never delivered; the sweep frees them
DISK_CHECK_PERIOD = 1.0  # a full disk stops persistent publishes within this
RATE_SAMPLE_PERIOD = 1.0
TOKEN_PURGE_PERIOD = 3600.0
# memory frees expired idempotency keys as it adds new ones; this catches idle queues and
# the store's copies, in short transactions (50,000 a second outpaces any publish rate)
IDEMPOTENCY_PRUNE_PERIOD = 1.0
IDEMPOTENCY_PRUNE_BATCH = 50_000
# Logins changed by another process (``buzon user set-password``) close within this.
REVALIDATE_PERIOD = 5.0


def broker_config(settings: Settings) -> BrokerConfig:
    """The engine settings that ``buzon serve`` exposes."""
    return BrokerConfig(
        default_prefetch=settings.default_prefetch,
        queue_high_water_bytes=settings.max_queued_bytes,
        # resume at three quarters, so publishers do not flap around one mark
        queue_low_water_bytes=settings.max_queued_bytes * 3 // 4,
        channel_max_pending=settings.channel_max_pending,
        slow_consumer_policy=SlowConsumerPolicy(settings.slow_consumer_policy),
        auto_create=settings.auto_create,
        backlog_window=settings.backlog_window,
        backlog_window_bytes=settings.backlog_window_bytes,
        max_delay_ms=settings.max_delay_ms,
        dedup_max_keys=settings.dedup_max_keys,
    )


def open_store(settings: Settings) -> Store:
    """The store the settings name (not opened yet)."""
    if settings.storage == "memory":
        return MemoryStore()
    if settings.storage == "postgresql" and settings.database_url is not None:
        return PostgresStore(settings.database_url)
    return SQLiteStore(settings.data_dir)


class BuzonServer:
    """A running broker: the engine, its STOMP-over-TCP and HTTP listeners, one event loop.

    Args:
        settings: listener addresses, limits and engine settings.
        store: where users, tokens and destinations live; by default the one the settings
            name (SQLite under ``data_dir``, or memory).
        hasher: argon2id parameters (tests may pass cheaper ones).
        clock: the engine's Unix time: delays, expiry and ack deadlines run on it (a test
            broker passes a virtual clock, see ``buzon.testing``).

    Attributes:
        generated_password: the admin password made up at start, when none was configured
            and the admin account did not exist yet; None otherwise. Show it once.
        admin_existed: whether the admin account was already there at start (its password
            is then the one chosen or shown when it was created).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        hasher: SecretHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        if store is None:
            store = open_store(settings)
        hasher = hasher if hasher is not None else SecretHasher()
        accounts = Accounts(
            store,
            hasher,
            Tokens(store, settings.token_ttl),
            registration_open=settings.registration,
        )
        # a store that forgets everything at exit is not worth logging messages to
        durable = store if store.durable else None
        shared = isinstance(store, PostgresStore)
        broker = Broker(
            broker_config(settings), clock=clock, log=durable, pager=durable, shared=shared
        )
        self._clock = clock
        self._timers = TimerDriver(broker.timers, clock)
        self._ctx = ServerContext(
            settings=settings,
            store=store,
            hasher=hasher,
            accounts=accounts,
            broker=broker,
            resources=Resources(
                store,
                broker,
                AccessKeys(hasher),
                store if isinstance(store, PostgresStore) else None,
            ),
            rates=RateMeter(),
        )
        self._cluster = (
            ClusterNode(self._ctx, store, self._revalidate_logins)
            if isinstance(store, PostgresStore)
            else None
        )
        self._ctx.cluster = self._cluster
        accounts.on_blocked.append(self._close_connections_of)
        accounts.on_demoted.append(self._close_demoted)
        self.generated_password: str | None = None
        self.admin_existed = False
        self._listener: asyncio.Server | None = None
        self._http: HttpListener | None = None
        self._tls_listener: asyncio.Server | None = None
        self._amqp_listener: asyncio.Server | None = None
        self._amqps_listener: asyncio.Server | None = None
        self._https: HttpListener | None = None
        self._housekeeping: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    @property
    def context(self) -> ServerContext:
        return self._ctx

    @property
    def broker(self) -> Broker:
        return self._ctx.broker

    @property
    def connections(self) -> frozenset[Connection[Any]]:
        return frozenset(self._ctx.connections)

    def urls(self) -> list[str]:
        """Where clients reach this server: one URL per listener (the API's for HTTP)."""
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        urls = []
        if self._listener is not None:
            urls.append(f"stomp://{host}:{self.stomp_port}")
        if self._http is not None:
            urls.append(f"http://{host}:{self.http_port}/api/v1")
        if self._amqp_listener is not None:
            urls.append(f"amqp://{host}:{_port_of(self._amqp_listener)}")
        if self._tls_listener is not None:
            urls.append(f"stomp+ssl://{host}:{self.stomp_tls_port}")
        if self._https is not None:
            urls.append(f"https://{host}:{self.https_port}/api/v1")
        if self._amqps_listener is not None:
            urls.append(f"amqps://{host}:{_port_of(self._amqps_listener)}")
        return urls

    @property
    def amqp_port(self) -> int:
        """The AMQP port actually bound (useful with ``amqp_port=0``)."""
        if self._amqp_listener is None or not self._amqp_listener.sockets:
            raise RuntimeError("no plain AMQP listener (server not started, or --no-plaintext)")
        return _port_of(self._amqp_listener)

    @property
    def stomp_port(self) -> int:
        """The port actually bound (useful with ``stomp_port=0``)."""
        if self._listener is None or not self._listener.sockets:
            raise RuntimeError("no plain STOMP listener (server not started, or --no-plaintext)")
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    @property
    def http_port(self) -> int:
        """The HTTP port actually bound."""
        if self._http is None:
            raise RuntimeError("no plain HTTP listener (server not started, or --no-plaintext)")
        return self._http.port

    @property
    def stomp_tls_port(self) -> int:
        """The STOMP-over-TLS port actually bound (TLS needs ``tls_cert`` and ``tls_key``)."""
        if self._tls_listener is None or not self._tls_listener.sockets:
            raise RuntimeError("no STOMP TLS listener (server not started, or TLS not set up)")
        port: int = self._tls_listener.sockets[0].getsockname()[1]
        return port

    @property
    def https_port(self) -> int:
        """The HTTPS port actually bound (TLS needs ``tls_cert`` and ``tls_key``)."""
        if self._https is None:
            raise RuntimeError("no HTTPS listener (server not started, or TLS not set up)")
        return self._https.port

    async def start(self) -> None:
        """Bind every listener (STOMP and HTTP, and their TLS twins when a certificate and
        key are set), then open the store, restore what it holds and create the first
        admin, then serve.

        Binding comes first, so that a port in use stops the start before anything exists
        on disk (data directory, database, admin account). Returns once clients can
        connect.

        Raises:
            ConfigError: the TLS certificate or key is missing, unreadable or invalid
                (checked before anything else happens).
            ListenError: an address cannot be bound (in use, not permitted); nothing was
                created.
            AuthError: the configured admin name or password breaks the account rules
                (checked before anything else happens, like the TLS files).
        """
        ctx = self._ctx
        settings = self.settings
        tls = server_context(settings)
        check_username(settings.admin_user)
        if settings.admin_password is not None:
            check_password(settings.admin_user, settings.admin_password)
        try:
            await self._bind(tls)
            await self._open_store()
            if self._cluster is not None:
                await self._cluster.join()
            await self._serve()
        except BaseException:
            self._stop_accepting()
            await self._unbind()
            await self._release_store()
            raise
        self._timers.start()
        loop = asyncio.get_running_loop()
        self._housekeeping = [
            loop.create_task(every(LEASE_CHECK_PERIOD, self._expire_leases)),
            loop.create_task(every(EXPIRY_CHECK_PERIOD, self._expire_messages)),
            loop.create_task(every(DISK_CHECK_PERIOD, self._check_disk)),
            loop.create_task(every(RATE_SAMPLE_PERIOD, self._sample_rates)),
            loop.create_task(every(TOKEN_PURGE_PERIOD, self._purge_tokens)),
            loop.create_task(every(IDEMPOTENCY_PRUNE_PERIOD, self._prune_idempotency_keys)),
            loop.create_task(every(REVALIDATE_PERIOD, self._revalidate_logins)),
            loop.create_task(watch_loop_lag(ctx.loop_lag)),
        ]

    async def _bind(self, tls: ssl.SSLContext | None) -> None:
        """Claim every port, serving none yet."""
        settings = self.settings
        app = build_app(self._ctx)
        if settings.plaintext:
            self._listener = await self._stomp_listener(settings.stomp_port, None)
            self._amqp_listener = await self._tcp_listener(
                "AMQP", settings.amqp_port, None, amqp_session
            )
            self._http = HttpListener(app, settings.host, settings.http_port)
            self._bind_http(self._http, "HTTP", settings.http_port)
        if tls is not None:
            self._tls_listener = await self._stomp_listener(settings.stomp_tls_port, tls)
            self._amqps_listener = await self._tcp_listener(
                "AMQPS", settings.amqps_port, tls, amqp_session
            )
            self._https = HttpListener(app, settings.host, settings.https_port, tls=tls)
            self._bind_http(self._https, "HTTPS", settings.https_port)
        if self._listener is not None:
            self._ctx.stomp_ports["stomp"] = self.stomp_port
        if self._tls_listener is not None:
            self._ctx.stomp_ports["stomp+ssl"] = self.stomp_tls_port
        self._ctx.listeners = tuple(self.urls())

    def _bind_http(self, listener: HttpListener, name: str, port: int) -> None:
        try:
            listener.bind()
        except OSError as exc:
            raise ListenError(name, self.settings.host, port, exc) from None

    async def _open_store(self) -> None:
        """Open the store, bring back destinations and messages, then create the first
        admin (last, so that ``buzon serve`` shows a generated password right after)."""
        ctx = self._ctx
        settings = self.settings
        await ctx.store.open()
        await ctx.resources.restore()
        # a cluster's nodes claim the stored messages as their consumers take them
        found = (
            []
            if self._cluster is not None
            else await ctx.store.backlogs(settings.backlog_window, settings.backlog_window_bytes)
        )
        recovered = ctx.broker.restore(found, ctx.store.opened_cleanly)
        ctx.broker.restore_idempotency_keys(await ctx.store.idempotency_keys(time.time()))
        if found:
            shutdown = "clean" if ctx.store.opened_cleanly else "unclean (marked redelivered)"
            log.info(
                "restored %d queues with stored messages (%d in memory, the rest counted in"
                " the background) after a %s shutdown",
                len({item.queue_id for item in found}),  # one item per queue and priority
                recovered,
                shutdown,
            )
        self._check_disk()
        password = settings.admin_password
        if await ctx.store.user_by_name(settings.admin_user) is None:
            if password is None:
                password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
                self.generated_password = password
            if not await ctx.accounts.ensure_admin(settings.admin_user, password):
                self.generated_password = None  # another node created it just now
                self.admin_existed = True
        else:
            self.admin_existed = True

    async def _serve(self) -> None:
        """Start accepting on every bound listener."""
        for listener in self._tcp_listeners:
            if listener is not None:
                await listener.start_serving()
        for http in (self._http, self._https):
            if http is not None:
                await http.start()

    @property
    def _tcp_listeners(self) -> tuple[asyncio.Server | None, ...]:
        return (self._listener, self._tls_listener, self._amqp_listener, self._amqps_listener)

    async def _stomp_listener(self, port: int, tls: ssl.SSLContext | None) -> asyncio.Server:
        """STOMP on ``port``, over TLS when ``tls`` is set."""
        name = "STOMP" if tls is None else "STOMP TLS"
        return await self._tcp_listener(name, port, tls, stomp_session)

    async def _tcp_listener(
        self,
        name: str,
        port: int,
        tls: ssl.SSLContext | None,
        protocol: Callable[[ServerContext], asyncio.Protocol],
    ) -> asyncio.Server:
        """A protocol's listener on ``port``, over TLS when ``tls`` is set (the TLS handshake
        gets the same time limit as the protocol's own, which starts once it is done)."""
        ctx = self._ctx
        try:
            return await asyncio.get_running_loop().create_server(
                lambda: protocol(ctx),
                host=self.settings.host,
                port=port,
                family=socket.AF_UNSPEC,
                backlog=LISTEN_BACKLOG,
                reuse_address=True,
                ssl=tls,
                ssl_handshake_timeout=None if tls is None else self.settings.handshake_timeout,
                start_serving=False,
            )
        except OSError as exc:
            raise ListenError(name, self.settings.host, port, exc) from None

    async def _release_store(self) -> None:
        """A start that failed: stop the cluster jobs and close the store (an embedding
        process goes on without them)."""
        with contextlib.suppress(Exception):
            if self._cluster is not None:
                await self._cluster.leave()
        with contextlib.suppress(Exception):
            await self._ctx.store.close()

    def _stop_accepting(self) -> None:
        for listener in self._tcp_listeners:
            if listener is not None:
                listener.close()

    async def _unbind(self) -> None:
        """Stop the HTTP listeners (requests get a short grace), close the STOMP ones."""
        for http in (self._http, self._https):
            if http is not None:
                await http.stop()
        for listener in self._tcp_listeners:
            if listener is not None:
                await listener.wait_closed()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting and reading, finish pending writes, tell every client with an
        ERROR, wait up to ``grace`` s for them to go, then cut."""
        ctx = self._ctx
        ctx.closing = True
        self._stop_accepting()
        # Drain before saying goodbye: nothing more is read, and what was read gets its
        # writes done and its receipts sent, so every publish a client saw confirmed is
        # stored and every one it did not is not (frames still unread are never run).
        self._timers.stop()  # what is scheduled stays scheduled, in the store
        for session in list(ctx.connections):
            session.hold()
        with contextlib.suppress(BuzonError, TimeoutError):
            async with asyncio.timeout(grace / 2):
                await until_durable(ctx.broker.journal.last)
        for session in list(ctx.connections):
            if session.close_reason is None:  # not one already closing for its own reason
                session.close_reason = CloseReason.SHUTDOWN
            session.fail(ErrorCode.SERVER_SHUTDOWN)
        if ctx.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await ctx.idle.wait()
        for session in list(ctx.connections):
            session.abort()
        for task in [*ctx.tasks, *self._housekeeping]:
            task.cancel()
        await asyncio.gather(*ctx.tasks, *self._housekeeping, return_exceptions=True)
        await self._unbind()
        ctx.broker.close()
        await ctx.resources.flush()
        if self._cluster is not None:
            await self._cluster.leave()
        await ctx.store.close()
        self._stopped.set()
        log.info("stopped")

    # -- housekeeping --------------------------------------------------------------------

    def _expire_leases(self) -> None:
        self._ctx.broker.expire_leases(asyncio.get_running_loop().time())

    def _expire_messages(self) -> None:
        self._ctx.broker.expire_messages(self._clock())

    def _check_disk(self) -> None:
        """Refuse persistent publishes while the store's volume is below its floor, and
        accept them again, by itself, once space returns."""
        ctx = self._ctx
        space = ctx.store.free_space()
        if space is None:
            return
        free, total = space
        floor = disk_floor(self.settings.min_free_disk, total)
        full = free < floor
        if full != ctx.broker.storage_full:
            ctx.broker.storage_full = full
            ctx.storage_changed(full)
            if full:
                log.warning(
                    "free disk %d bytes is under the floor of %d: persistent publishes get"
                    " ERROR storage full until space is freed",
                    free,
                    floor,
                )
            else:
                log.info("free disk %d bytes is above the floor again: publishing resumes", free)

    def _sample_rates(self) -> None:
        stats = self._ctx.broker.statistics()
        now = asyncio.get_running_loop().time()
        self._ctx.rates.sample(now, stats.messages_published, stats.messages_delivered)
        self._ctx.rates.destinations.sample(now, stats)

    async def _purge_tokens(self) -> None:
        await self._ctx.accounts.tokens.purge_expired()

    async def _prune_idempotency_keys(self) -> None:
        self._ctx.broker.prune_idempotency_keys()
        await self._ctx.store.prune_idempotency_keys(time.time(), IDEMPOTENCY_PRUNE_BATCH)

    def _close_connections_of(self, user_id: str) -> None:
        why = "the account was disabled or deleted"
        self._ctx.broker.close_sessions_of(user_id, ErrorCode.ACCOUNT_DISABLED, why)
        self._ctx.redrives.stop_of(user_id, why)

    async def _revalidate_logins(self) -> None:
        """End the sessions whose login the store no longer backs (see
        :meth:`Accounts.revalidate`)."""
        sessions = self._ctx.broker.sessions()
        redrives = self._ctx.redrives.running()
        if not sessions and not redrives:
            return
        principals = [s.principal for s in sessions] + [p for _, p in redrives]
        verdicts = await self._ctx.accounts.revalidate(principals)
        for session, why in zip(sessions, verdicts, strict=False):
            if why is not None and not session.closed:
                session.end(*why)
        for (redrive_id, _), why in zip(redrives, verdicts[len(sessions) :], strict=True):
            if why is not None:
                self._ctx.redrives.stop(redrive_id, why[1])

    def _close_demoted(self, user_id: str) -> None:
        why = "the account is no longer an admin"
        self._ctx.broker.close_sessions_of(user_id, ErrorCode.PERMISSIONS_CHANGED, why)
        self._ctx.redrives.stop_of(user_id, why)


def _port_of(listener: asyncio.Server) -> int:
    """The port a listener bound."""
    port: int = listener.sockets[0].getsockname()[1]
    return port
