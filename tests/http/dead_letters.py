"""Dead letters made the way a failing consumer makes them, for the redrive tests: a
queue with ``max_deliveries: 1`` hands a message out once, the consumer gives it back,
and the next pull moves it to the dead-letter queue with its history headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.http.helpers import Auth, publish, pull
from tests.server.harness import TIMEOUT


async def failing_queue(http: httpx.AsyncClient, auth: Auth, name: str, dlq: str) -> None:
    """A queue whose messages go to ``dlq`` after one delivery."""
    policy = {"max_deliveries": 1, "dead_letter_queue": dlq}
    response = await http.post("/queues", json={"name": name, "policy": policy}, headers=auth)
    assert response.status_code == 201, response.text


async def dead_letter(
    http: httpx.AsyncClient,
    auth: Auth,
    name: str,
    dlq: str,
    bodies: list[str],
    headers: dict[str, str] | None = None,
) -> None:
    """Publish ``bodies`` to the failing queue ``name`` (each with a ``job`` header naming
    it, and ``headers``), fail each once, and wait until all of them wait in ``dlq``."""
    before = await depth(http, auth, dlq)
    for body in bodies:
        await publish(http, auth, "queues", name, body, {"job": body, **(headers or {})})
    failed = 0
    while failed < len(bodies):  # a paged queue hands out what its window holds
        taken = await pull(http, auth, name, max=100, wait_ms=1000)
        receipts = [message["receipt"] for message in taken]
        response = await http.post(
            f"/queues/{name}/nack", json={"receipts": receipts}, headers=auth
        )
        assert response.status_code == 200, response.text
        failed += len(receipts)
    deadline = time.monotonic() + TIMEOUT
    while await depth(http, auth, dlq) < before + len(bodies):
        assert time.monotonic() < deadline
        assert await pull(http, auth, name, max=100, wait_ms=50) == []  # retires them
    assert await depth(http, auth, dlq) == before + len(bodies)


async def depth(http: httpx.AsyncClient, auth: Auth, queue: str) -> int:
    response = await http.get(f"/queues/{queue}", headers=auth)
    if response.status_code == 404:
        return 0
    depth: int = response.json()["depth"]
    return depth


async def until(read: Any, wanted: object, within: float = TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while (got := await read()) != wanted:
        assert time.monotonic() < deadline, f"{got!r} never became {wanted!r}"
        await asyncio.sleep(0.01)
