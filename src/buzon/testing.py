"""A real broker inside your own test suite: free loopback ports, in-memory storage.

Async::

    async with buzon.testing.broker() as b:
        async with b.client() as client:          # an AsyncClient logged in as admin
            await client.publish("/queue/jobs", "hello")

Sync (the broker runs on its own thread, so blocking clients can talk to it)::

    with buzon.testing.broker_sync() as b:
        with b.client() as client:                # a blocking Client logged in as admin
            client.publish("/queue/jobs", "hello")
        b.management.create_queue("reports")      # a ManagementClient logged in as admin

With pytest, the ``buzon_broker`` fixture gives the sync form (it works in async tests
too). It sits on top of everything: only :mod:`buzon.pytest_plugin` imports it, and only
when the fixture is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from buzon.auth import SecretHasher
from buzon.client import AsyncClient, Client, ManagementClient
from buzon.server.app import BuzonServer
from buzon.server.config import Settings
from buzon.store import MemoryStore

ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class _Endpoints:
    """Where the test broker listens, and its admin account.

    Attributes:
        server: the broker itself (its engine statistics, its settings).
        stomp_url: ``stomp://admin:<password>@127.0.0.1:<port>``.
        http_url: ``http://127.0.0.1:<port>``.
        admin_user: the admin's name.
        admin_password: the admin's password (random for each broker).
    """

    server: BuzonServer
    stomp_url: str
    http_url: str
    admin_user: str
    admin_password: str


@dataclass(frozen=True, slots=True)
class RunningBroker(_Endpoints):
    """The broker of :func:`broker` (see :class:`_Endpoints` for the fields)."""

    def client(self, **options: Any) -> AsyncClient:
        """A new asyncio client logged in as admin (connect it with ``async with``)."""
        return AsyncClient(self.stomp_url, **options)


@dataclass(frozen=True, slots=True)
class RunningBrokerSync(_Endpoints):
    """The broker of :func:`broker_sync`; also has ``management``, an HTTP management
    client logged in as admin."""

    management: ManagementClient

    def client(self, **options: Any) -> Client:
        """A new blocking client logged in as admin (connect it with ``with``)."""
        return Client(self.stomp_url, **options)


def _settings(overrides: dict[str, Any]) -> tuple[Settings, str]:
    password = secrets.token_urlsafe(16)
    base = Settings(
        stomp_port=0,
        http_port=0,
        stomp_tls_port=0,  # used only when tls_cert and tls_key are given
        https_port=0,
        admin_user=ADMIN,
        admin_password=password,
        log_level="warning",
    )
    return dataclasses.replace(base, **overrides), password


@contextlib.asynccontextmanager
async def broker(*, fast_hashing: bool = True, **settings: Any) -> AsyncIterator[RunningBroker]:
    """Run a broker on this event loop for the duration of the block.

    Args:
        fast_hashing: use argon2id's smallest cost (still argon2id), so tests that log in
            often stay fast; pass False to test with production cost.
        **settings: any :class:`buzon.server.config.Settings` field (``auto_create=False``,
            ``registration=False``, ...).
    """
    chosen, password = _settings(settings)
    hasher = SecretHasher(time_cost=1, memory_cost=1024) if fast_hashing else None
    server = BuzonServer(chosen, store=MemoryStore(), hasher=hasher)
    await server.start()
    try:
        yield RunningBroker(
            server=server,
            stomp_url=f"stomp://{ADMIN}:{password}@127.0.0.1:{server.stomp_port}",
            http_url=f"http://127.0.0.1:{server.http_port}",
            admin_user=ADMIN,
            admin_password=password,
        )
    finally:
        await server.stop(grace=1.0)


@contextlib.contextmanager
def broker_sync(*, fast_hashing: bool = True, **settings: Any) -> Iterator[RunningBrokerSync]:
    """:func:`broker` on a thread of its own, for blocking code; same arguments."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    box: list[RunningBroker] = []

    async def run() -> None:
        try:
            async with broker(fast_hashing=fast_hashing, **settings) as running:
                box.append(running)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        loop.close()
        raise failure[0]
    running = box[0]
    management = ManagementClient(running.http_url, basic=(ADMIN, running.admin_password))
    try:
        yield RunningBrokerSync(
            server=running.server,
            stomp_url=running.stomp_url,
            http_url=running.http_url,
            admin_user=ADMIN,
            admin_password=running.admin_password,
            management=management,
        )
    finally:
        management.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
