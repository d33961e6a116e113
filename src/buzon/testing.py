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

Time travel: with ``virtual_clock=True`` the broker's engine runs on a clock that moves
only when the test says so. ``b.advance(seconds)`` moves it and, before it returns, fires
every deadline that came due on the way, in order (delayed messages, retries with back-off,
ack deadlines) and sweeps expired messages; ``b.assert_dead_lettered(message_id, ...)``
finds a message in a dead-letter queue and checks why it is there::

    with buzon.testing.broker_sync(virtual_clock=True) as b:
        ...
        b.advance(3600)                           # an hour, instantly
        b.assert_dead_lettered(message_id, reason="ack-timeout")

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
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from buzon.auth import SecretHasher
from buzon.broker import Queue
from buzon.broker.policy import ORIGINAL_ID_HEADER, REASON_HEADER
from buzon.client import AsyncClient, Client, ManagementClient
from buzon.server.app import BuzonServer
from buzon.server.config import Settings
from buzon.store import DestinationKind, MemoryStore

_T = TypeVar("_T")

ADMIN = "admin"
DEAD_LETTER_WAIT = 5.0
"""How long :meth:`assert_dead_lettered` waits for the message by default (seconds): the
frame that dead-letters it may still be on its way to the broker."""
_POLL = 0.01


class VirtualClock:
    """Unix time that moves only when :func:`advance` moves it; it starts at the real time
    (so ``deliver-at`` times and expiry headers written from ``time.time()`` make sense)."""

    __slots__ = ("now",)

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message found in a dead-letter queue.

    Attributes:
        queue: the dead-letter queue's name.
        headers: its headers (the dead-letter ones included: ``x-dead-letter-reason``,
            ``x-original-destination``, ``x-delivery-count``, ...).
        body: its body.
    """

    queue: str
    headers: dict[str, str]
    body: bytes

    @property
    def reason(self) -> str | None:
        """``x-dead-letter-reason``."""
        return self.headers.get(REASON_HEADER)


def advance(server: BuzonServer, clock: VirtualClock | None, seconds: float) -> None:
    """Move the engine's virtual clock and run what came due, on the broker's loop thread.

    Deadlines run at their own time, in order (a deadline a callback sets within the
    interval runs too); then the clock rests at the end and expired messages are swept.
    """
    if clock is None:
        raise RuntimeError("advance() needs a broker started with virtual_clock=True")
    if seconds < 0:
        raise ValueError("time only moves forward")
    broker = server.broker
    timers = broker.timers
    end = clock.now + seconds
    while (due := timers.next_due) is not None and due <= end:
        clock.now = max(clock.now, due)
        timers.fire()
    clock.now = end
    timers.fire()
    broker.expire_messages(end)


def find_dead_letter(server: BuzonServer, message_id: str, queue: str | None) -> DeadLetter | None:
    """The message waiting in ``queue`` (or any queue) that was dead-lettered from
    ``message_id``, or None (on the broker's loop thread)."""
    queues = server.broker.destinations(DestinationKind.QUEUE)
    for target in queues:
        if not isinstance(target, Queue) or (queue is not None and target.name != queue):
            continue
        for message, _ in target.peek(target.statistics().depth):
            headers = dict(reversed(message.headers))  # the first of repeated headers wins
            if headers.get(ORIGINAL_ID_HEADER) == message_id:
                return DeadLetter(target.name, headers, message.body)
    return None


def _check_dead_letter(
    found: DeadLetter | None, message_id: str, reason: str | None, queue: str | None
) -> DeadLetter:
    where = f"dead-letter queue {queue!r}" if queue is not None else "any queue"
    if found is None:
        raise AssertionError(f"message {message_id} was not dead-lettered into {where}")
    if reason is not None and found.reason != reason:
        raise AssertionError(
            f"message {message_id} was dead-lettered as {found.reason!r}, not {reason!r}"
        )
    return found


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
    clock: VirtualClock | None


@dataclass(frozen=True, slots=True)
class RunningBroker(_Endpoints):
    """The broker of :func:`broker` (see :class:`_Endpoints` for the fields; ``clock`` is
    the virtual clock, None without ``virtual_clock=True``)."""

    def client(self, **options: Any) -> AsyncClient:
        """A new asyncio client logged in as admin (connect it with ``async with``)."""
        return AsyncClient(self.stomp_url, **options)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock ``seconds`` ahead and run every deadline that came due
        (see the module docstring); their deliveries are on their way when it returns."""
        advance(self.server, self.clock, seconds)

    async def assert_dead_lettered(
        self,
        message_id: str,
        *,
        reason: str | None = None,
        queue: str | None = None,
        wait: float = DEAD_LETTER_WAIT,
    ) -> DeadLetter:
        """Wait up to ``wait`` seconds (real time) until the message published as
        ``message_id`` waits in ``queue`` (default: any queue) as a dead letter, check its
        ``x-dead-letter-reason`` if ``reason`` is given, and return it.

        Raises:
            AssertionError: it did not arrive in time, or arrived for another reason.
        """
        deadline = time.monotonic() + wait
        found = find_dead_letter(self.server, message_id, queue)
        while found is None and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)
            found = find_dead_letter(self.server, message_id, queue)
        return _check_dead_letter(found, message_id, reason, queue)


@dataclass(frozen=True, slots=True)
class RunningBrokerSync(_Endpoints):
    """The broker of :func:`broker_sync`; also has ``management``, an HTTP management
    client logged in as admin."""

    management: ManagementClient
    loop: asyncio.AbstractEventLoop

    def client(self, **options: Any) -> Client:
        """A new blocking client logged in as admin (connect it with ``with``)."""
        return Client(self.stomp_url, **options)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock ``seconds`` ahead and run every deadline that came due,
        on the broker's thread; returns once they ran (see the module docstring)."""
        self._on_loop(lambda: advance(self.server, self.clock, seconds))

    def assert_dead_lettered(
        self,
        message_id: str,
        *,
        reason: str | None = None,
        queue: str | None = None,
        wait: float = DEAD_LETTER_WAIT,
    ) -> DeadLetter:
        """As :meth:`RunningBroker.assert_dead_lettered`, blocking."""
        deadline = time.monotonic() + wait
        found = self._on_loop(lambda: find_dead_letter(self.server, message_id, queue))
        while found is None and time.monotonic() < deadline:
            time.sleep(_POLL)
            found = self._on_loop(lambda: find_dead_letter(self.server, message_id, queue))
        return _check_dead_letter(found, message_id, reason, queue)

    def _on_loop(self, job: Callable[[], _T]) -> _T:
        """Run ``job`` on the broker's thread (the engine is not thread-safe) and wait."""

        async def run() -> _T:
            return job()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()


def _settings(overrides: dict[str, Any]) -> tuple[Settings, str]:
    password = secrets.token_urlsafe(16)
    base = Settings(
        stomp_port=0,
        http_port=0,
        stomp_tls_port=0,  # used only when tls_cert and tls_key are given
        https_port=0,
        amqp_port=0,
        amqps_port=0,
        admin_user=ADMIN,
        admin_password=password,
        log_level="warning",
    )
    return dataclasses.replace(base, **overrides), password


@contextlib.asynccontextmanager
async def broker(
    *, fast_hashing: bool = True, virtual_clock: bool = False, **settings: Any
) -> AsyncIterator[RunningBroker]:
    """Run a broker on this event loop for the duration of the block.

    Args:
        fast_hashing: use argon2id's smallest cost (still argon2id), so tests that log in
            often stay fast; pass False to test with production cost.
        virtual_clock: run the engine on a :class:`VirtualClock` that only
            :meth:`RunningBroker.advance` moves (delays, retries, expiry and ack deadlines
            then wait for the test, not for real time).
        **settings: any :class:`buzon.server.config.Settings` field (``auto_create=False``,
            ``registration=False``, ...).
    """
    chosen, password = _settings(settings)
    hasher = SecretHasher(time_cost=1, memory_cost=1024) if fast_hashing else None
    clock = VirtualClock() if virtual_clock else None
    server = BuzonServer(
        chosen, store=MemoryStore(), hasher=hasher, clock=clock if clock is not None else time.time
    )
    await server.start()
    try:
        yield RunningBroker(
            server=server,
            stomp_url=f"stomp://{ADMIN}:{password}@127.0.0.1:{server.stomp_port}",
            http_url=f"http://127.0.0.1:{server.http_port}",
            admin_user=ADMIN,
            admin_password=password,
            clock=clock,
        )
    finally:
        await server.stop(grace=1.0)


@contextlib.contextmanager
def broker_sync(
    *, fast_hashing: bool = True, virtual_clock: bool = False, **settings: Any
) -> Iterator[RunningBrokerSync]:
    """:func:`broker` on a thread of its own, for blocking code; same arguments."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []
    box: list[RunningBroker] = []

    async def run() -> None:
        try:
            async with broker(
                fast_hashing=fast_hashing, virtual_clock=virtual_clock, **settings
            ) as running:
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
            clock=running.clock,
            management=management,
            loop=loop,
        )
    finally:
        management.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
