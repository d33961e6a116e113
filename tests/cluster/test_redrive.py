"""Redrive on a cluster: it runs on the node that got the request, and claims the
dead-letter queue's messages from the database like any consumer there."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cluster.nodes import TIMEOUT, Cluster, admin_api, queue_settled, within


async def _depth(http: httpx.AsyncClient, queue: str) -> int:
    depth: int = (await http.get(f"/queues/{queue}")).json()["depth"]
    return depth


async def test_a_redrive_on_another_node_moves_every_message_once(cluster: Cluster) -> None:
    first, second = cluster.start("n1", "n2")
    async with admin_api(first) as one, admin_api(second) as two:
        for name, policy in (
            ("orders.dlq", {}),
            ("orders", {"max_deliveries": 1, "dead_letter_queue": "orders.dlq"}),
        ):
            made = await one.post("/queues", json={"name": name, "policy": policy})
            assert made.status_code == 201, made.text

            async def known(name: str = name) -> bool:
                return (await two.get(f"/queues/{name}")).status_code == 200

            await within(TIMEOUT, known, f"n2 knows {name}")
        bodies = [f"m{n}" for n in range(8)]
        for body in bodies:
            sent = await one.post("/queues/orders/messages", json={"body": body})
            assert sent.status_code == 201, sent.text
        failed = 0
        while failed < len(bodies):  # fail each once on the first node
            pulled = await one.post("/queues/orders/pull", json={"max": 100, "wait_ms": 1000})
            receipts = [m["receipt"] for m in pulled.json()["messages"]]
            await one.post("/queues/orders/nack", json={"receipts": receipts})
            failed += len(receipts)

        async def all_dead() -> bool:
            await one.post("/queues/orders/pull", json={"max": 100, "wait_ms": 50})
            return await _depth(two, "orders.dlq") == len(bodies)

        await within(TIMEOUT, all_dead, "every message waits in orders.dlq, seen from n2")

        started = await two.post("/queues/orders.dlq/redrive", json={})
        assert started.status_code == 202, started.text
        redrive_id = started.json()["id"]
        status: dict[str, Any] = {}

        async def finished() -> bool:
            nonlocal status
            status = (await two.get(f"/redrives/{redrive_id}")).json()
            return bool(status["state"] != "running")

        await within(TIMEOUT, finished, "the redrive ends")
        assert (status["state"], status["moved"], status["total"]) == ("done", 8, 8), status
        # the registry is the node's own: the other node does not know the id
        elsewhere = await one.get(f"/redrives/{redrive_id}")
        assert elsewhere.status_code == 404, elsewhere.text

        got: list[dict[str, Any]] = []
        while len(got) < len(bodies):
            pulled = await one.post("/queues/orders/pull", json={"max": 100, "wait_ms": 1000})
            got += pulled.json()["messages"]
        assert sorted(m["body"] for m in got) == bodies  # each once
        assert {m["headers"]["x-redrive-count"] for m in got} == {"1"}
        await one.post("/queues/orders/ack", json={"receipts": [m["receipt"] for m in got]})
    await queue_settled([first, second], "orders.dlq")
    await queue_settled([first, second], "orders")
