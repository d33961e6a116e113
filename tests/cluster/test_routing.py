"""Channels that route on a cluster: a binding made on one node routes what another node
publishes, and pattern subscribers of every node get what matches."""

from __future__ import annotations

import asyncio

from tests.cluster.nodes import TIMEOUT, Cluster, admin_api, client, create_everywhere, within


async def test_a_binding_made_on_one_node_routes_what_another_publishes(
    cluster: Cluster,
) -> None:
    n1, n2 = nodes = cluster.start("n1", "n2")
    await create_everywhere(nodes, "queues", "billing")
    async with admin_api(n1) as http:
        made = await http.post("/channels", json={"name": "orders", "type": "topic"})
        assert made.status_code == 201, made.text
        bound = await http.post(
            "/channels/orders/bindings", json={"queue": "billing", "routing_key": "order.#"}
        )
        assert bound.status_code == 201, bound.text
    async with admin_api(n2) as http:

        async def bound_there() -> bool:
            listed = await http.get("/channels/orders/bindings")
            return listed.status_code == 200 and len(listed.json()) == 1

        await within(TIMEOUT, bound_there, "n2 knows the binding")
    watcher, publisher = client(n1), client(n2)
    await asyncio.gather(watcher.connect(), publisher.connect())
    try:
        matching = await watcher.subscribe("/topic/orders/*.paid")
        await publisher.publish("/topic/orders/order.paid", "paid")
        await publisher.publish("/topic/orders/refund", "ignored")
        async with asyncio.timeout(TIMEOUT):
            message = await matching.get()
        assert (message.text, message.destination) == ("paid", "/topic/orders/order.paid")
        worker = await watcher.subscribe("/queue/billing")
        async with asyncio.timeout(TIMEOUT):
            assert (await worker.get()).text == "paid"
    finally:
        await asyncio.gather(watcher.close(), publisher.close())
    async with admin_api(n1) as http:
        gone = await http.delete(
            "/channels/orders/bindings", params={"queue": "billing", "routing_key": "order.#"}
        )
        assert gone.status_code == 204, gone.text
    async with admin_api(n2) as http:

        async def unbound_there() -> bool:
            listed: list[object] = (await http.get("/channels/orders/bindings")).json()
            return listed == []

        await within(TIMEOUT, unbound_there, "n2 forgets the binding")
