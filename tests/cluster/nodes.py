"""Real ``buzon serve`` nodes on one PostgreSQL database, and what the cluster tests share."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from buzon.client import AsyncClient
from tests.interop.broker_process import BrokerProcess, broker_process

ADMIN = "admin"
PASSWORD = "cluster-password-1"
TIMEOUT = 10.0
"""Seconds any one client operation may take on a busy 2-core machine."""


class Cluster:
    """Nodes of one cluster, started in parallel and stopped at the end of the test.

    Args:
        database_url: the cluster's database.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.nodes: dict[str, BrokerProcess] = {}
        self._exits: list[contextlib.AbstractContextManager[BrokerProcess]] = []

    def start(self, *names: str, extra: tuple[str, ...] = ()) -> list[BrokerProcess]:
        """Start one node per name, all at once; return them once every one listens."""

        def one(name: str) -> tuple[contextlib.AbstractContextManager[BrokerProcess], Any]:
            manager = broker_process(
                *("--storage", "postgresql", "--database-url", self.database_url),
                *("--node-name", name, *extra),
                env={"BUZON_ADMIN_PASSWORD": PASSWORD},
            )
            try:
                return manager, manager.__enter__()
            except Exception as exc:  # reported once the others started
                return manager, exc

        with ThreadPoolExecutor(len(names)) as pool:
            started = list(pool.map(one, names))
        failures = []
        for name, (manager, result) in zip(names, started, strict=True):
            if isinstance(result, Exception):
                failures.append(f"{name}: {result}")
                continue
            self._exits.append(manager)
            self.nodes[name] = result
        if failures:
            raise RuntimeError("nodes did not start: " + "; ".join(failures))
        return [self.nodes[name] for name in names]

    def stop(self) -> dict[str, int]:
        """Stop every node still running (SIGTERM, all at once); their exit codes."""
        running = {name: node for name, node in self.nodes.items() if node.process.poll() is None}
        for node in running.values():
            node.process.send_signal(signal.SIGTERM)
        codes = {}
        for name, node in running.items():
            try:
                codes[name] = node.process.wait(15)
            except subprocess.TimeoutExpired:
                codes[name] = -1
        return codes

    def close(self) -> None:
        """Kill what is left and release every node's resources."""
        while self._exits:
            self._exits.pop().__exit__(None, None, None)

    def logs(self) -> Iterator[str]:
        for name, node in self.nodes.items():
            yield f"--- {name} (last lines) ---"
            yield from (line.rstrip() for line in node.banner[-40:])


def client(node: BrokerProcess, **options: Any) -> AsyncClient:
    """An SDK client logged in as the admin on ``node`` (not connected yet)."""
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("heart_beat", (0, 0))
    return AsyncClient(
        f"stomp://{node.host}:{node.port}", login=ADMIN, passcode=PASSWORD, **options
    )


def api(node: BrokerProcess, token: str | None = None) -> httpx.AsyncClient:
    """An HTTP client on ``node``'s ``/api/v1`` (with a bearer token when given)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=f"{node.url}/api/v1", timeout=TIMEOUT, headers=headers)


@contextlib.asynccontextmanager
async def admin_api(node: BrokerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on ``node`` logged in as the admin."""
    async with api(node) as http:
        http.headers["Authorization"] = f"Bearer {await login(http, ADMIN, PASSWORD)}"
        yield http


async def queue_settled(nodes: list[BrokerProcess], name: str) -> None:
    """Wait until no node counts a message of queue ``name`` waiting or unacknowledged."""
    async with contextlib.AsyncExitStack() as stack:
        apis = [await stack.enter_async_context(admin_api(node)) for node in nodes]

        async def settled() -> bool:
            for http in apis:
                view = (await http.get(f"/queues/{name}")).json()
                if view["depth"] or view["in_flight"]:
                    return False
            return True

        await within(TIMEOUT, settled, f"queue {name} empties on every node")


async def create_everywhere(nodes: list[BrokerProcess], kind: str, name: str) -> None:
    """Create a queue (``kind="queues"``) or channel (``"channels"``) on the first node, as
    the admin; wait until every node knows it (auto-creation on several nodes at once is a
    race of its own, tested apart)."""
    async with admin_api(nodes[0]) as http:
        response = await http.post(f"/{kind}", json={"name": name})
        assert response.status_code == 201, response.text
    for node in nodes[1:]:
        async with admin_api(node) as http:

            async def known(http: httpx.AsyncClient = http) -> bool:
                return (await http.get(f"/{kind}/{name}")).status_code == 200

            await within(TIMEOUT, known, f"{node.port} knows {kind} {name}")


async def login(http: httpx.AsyncClient, username: str, password: str) -> str:
    """Log in over HTTP; return the token."""
    response = await http.post("/sessions", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def within(
    seconds: float, check: Callable[[], Awaitable[bool]], what: str, every: float = 0.02
) -> float:
    """Wait until ``check()`` holds; return how long that took.

    Raises:
        AssertionError: it did not hold within ``seconds``.
    """
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(every)
