"""Channels across three nodes: a message published on any node reaches every subscriber."""

from __future__ import annotations

import asyncio
import os

from tests.cluster.nodes import TIMEOUT, Cluster, client, create_everywhere


async def test_a_message_published_on_any_node_reaches_the_subscribers_of_every_node(
    cluster: Cluster,
) -> None:
    nodes = cluster.start("n1", "n2", "n3")
    await create_everywhere(nodes, "channels", "x")
    big = os.urandom(1024 * 1024)
    sent = [b"from-n1", b"from-n2", big]  # published on n1, n2 and n3
    subscribers = [client(node) for node in nodes]
    publishers = [client(node) for node in nodes]
    await asyncio.gather(*(each.connect() for each in (*subscribers, *publishers)))
    try:
        subscriptions = await asyncio.gather(*(each.subscribe("/topic/x") for each in subscribers))
        for publisher, body in zip(publishers, sent, strict=True):
            await publisher.publish("/topic/x", body)

        async def three(index: int) -> list[bytes]:
            return [(await subscriptions[index].get()).body for _ in sent]

        async with asyncio.timeout(TIMEOUT):
            received = await asyncio.gather(*(three(i) for i in range(len(nodes))))
    finally:
        await asyncio.gather(*(each.close() for each in (*subscribers, *publishers)))
    for name, bodies in zip(("n1", "n2", "n3"), received, strict=True):
        assert sorted(bodies) == sorted(sent), f"{name}'s subscriber got other messages"


async def test_concurrent_publishers_on_every_node_reach_every_subscriber_whole(
    cluster: Cluster,
) -> None:
    """Feed rows of different nodes' commits get interleaved ids: a subscriber must still
    get every message, once, and each publisher's messages in its order."""
    nodes = cluster.start("n1", "n2", "n3")
    await create_everywhere(nodes, "channels", "busy")
    per_node = 150
    subscribers = [client(node) for node in nodes]
    publishers = [client(node) for node in nodes]
    await asyncio.gather(*(each.connect() for each in (*subscribers, *publishers)))
    try:
        subscriptions = await asyncio.gather(
            *(each.subscribe("/topic/busy") for each in subscribers)
        )

        async def publish(index: int) -> None:
            for n in range(per_node):
                await publishers[index].publish("/topic/busy", f"{index}:{n}")

        async def everything(index: int) -> list[str]:
            return [(await subscriptions[index].get()).text for _ in range(3 * per_node)]

        async with asyncio.timeout(3 * TIMEOUT):
            receiving = asyncio.gather(*(everything(i) for i in range(len(nodes))))
            await asyncio.gather(*(publish(i) for i in range(len(nodes))))
            received = await receiving
    finally:
        await asyncio.gather(*(each.close() for each in (*subscribers, *publishers)))
    for name, texts in zip(("n1", "n2", "n3"), received, strict=True):
        assert len(set(texts)) == len(texts) == 3 * per_node, f"{name} missed or doubled some"
        for origin in range(len(nodes)):
            mine = [int(text.split(":")[1]) for text in texts if text.startswith(f"{origin}:")]
            assert mine == list(range(per_node)), f"{name}: n{origin + 1}'s out of order"
