"""A redrive killed midway (kill -9): every dead letter is still somewhere after the
restart, in its original queue or still in the dead-letter queue (at-least-once)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.durability.test_crash import PASSWORD, TINY_WINDOW, broker
from tests.http.dead_letters import dead_letter, failing_queue
from tests.http.helpers import Auth, login, pull

COUNT = 60


async def _everything_in(http: httpx.AsyncClient, auth: Auth, queue: str) -> list[str]:
    """The bodies of every message waiting in ``queue``, taken (and acked) oldest first."""
    bodies: list[str] = []
    while taken := await pull(http, auth, queue, max=100, wait_ms=500):
        bodies += [message["body"] for message in taken]
        receipts = [message["receipt"] for message in taken]
        acked = await http.post(f"/queues/{queue}/ack", json={"receipts": receipts}, headers=auth)
        assert acked.status_code == 200, acked.text
    return bodies


async def test_a_redrive_killed_midway_loses_no_message(tmp_path: Path) -> None:
    bodies = [f"order {n}" for n in range(COUNT)]
    with broker(tmp_path, *TINY_WINDOW) as process:
        async with httpx.AsyncClient(base_url=process.url + "/api/v1", timeout=10) as http:
            admin = await login(http, "admin", PASSWORD)
            await failing_queue(http, admin, "orders", "orders.dlq")
            await dead_letter(http, admin, "orders", "orders.dlq", bodies)
            started = await http.post(
                "/queues/orders.dlq/redrive", json={"rate_per_s": 40}, headers=admin
            )
            assert started.status_code == 202, started.text
            status = f"/redrives/{started.json()['id']}"
            deadline = time.monotonic() + 10
            while (moved := (await http.get(status, headers=admin)).json()["moved"]) < 10:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        process.stop(signal.SIGKILL)

    with broker(tmp_path, *TINY_WINDOW) as process:
        async with httpx.AsyncClient(base_url=process.url + "/api/v1", timeout=10) as http:
            admin = await login(http, "admin", PASSWORD)
            back = await _everything_in(http, admin, "orders")
            still = await _everything_in(http, admin, "orders.dlq")

    assert set(back) | set(still) == set(bodies)  # none lost
    assert len(back) >= moved  # what was reported moved is in its queue
    assert back == sorted(set(back), key=bodies.index)  # in their order, each once there
    duplicates = Counter(back + still) - Counter(bodies)
    assert sum(duplicates.values()) <= 1  # at most the one in flight at the kill
