"""Delayed messages on a cluster: held by the node that took the publish until their time,
delivered to a consumer on any node, and adopted by another node if theirs dies."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.cluster.nodes import TIMEOUT, Cluster, client, create_everywhere

NODE_TIMEOUT = 3


async def test_a_delayed_message_reaches_a_consumer_on_another_node_at_its_time(
    cluster: Cluster,
) -> None:
    publisher_node, consumer_node = cluster.start("n1", "n2")
    await create_everywhere([publisher_node, consumer_node], "queues", "later")
    producer, consumer = client(publisher_node), client(consumer_node)
    await asyncio.gather(producer.connect(), consumer.connect())
    try:
        subscription = await consumer.subscribe("/queue/later", ack="client-individual")
        sent = time.monotonic()
        await producer.publish("/queue/later", "in 1.5 s", delay=1.5)
        await producer.publish("/queue/later", "now")
        async with asyncio.timeout(TIMEOUT):
            first = await subscription.get()
            await first.ack()
            second = await subscription.get()
            waited = time.monotonic() - sent
            await second.ack(confirm=True)
    finally:
        await asyncio.gather(producer.close(), consumer.close())
    assert (first.text, second.text) == ("now", "in 1.5 s")  # the delay blocked nothing
    assert 1.5 <= waited < 4.0
    assert not second.redelivered


async def test_a_killed_nodes_delayed_messages_are_adopted_and_delivered_at_their_time(
    cluster: Cluster,
) -> None:
    doomed, survivor = cluster.start("n1", "n2", extra=("--node-timeout", str(NODE_TIMEOUT)))
    await create_everywhere([doomed, survivor], "queues", "later")
    producer, consumer = client(doomed, reconnect=False), client(survivor)
    await asyncio.gather(producer.connect(), consumer.connect())
    delay = NODE_TIMEOUT + 4.0  # due after the survivor has declared n1 dead
    bodies = [f"task-{i}" for i in range(5)]
    try:
        sent = time.monotonic()
        for body in bodies:
            await producer.publish("/queue/later", body, delay=delay)  # receipted: on disk
        cluster.nodes["n1"].stop(signal.SIGKILL)
        subscription = await consumer.subscribe("/queue/later", ack="client-individual")
        got: list[tuple[str, float, bool]] = []
        async with asyncio.timeout(delay + NODE_TIMEOUT + 10):
            while len(got) < len(bodies):
                message = await subscription.get()
                got.append((message.text, time.monotonic() - sent, message.redelivered))
                await message.ack(confirm=True)
    finally:
        await asyncio.gather(producer.close(), consumer.close())
    assert sorted(text for text, _, _ in got) == bodies  # each once
    assert min(at for _, at, _ in got) >= delay - 0.2  # never before its time
    assert max(at for _, at, _ in got) < delay + 3.0  # adopted in time to be punctual
    assert not any(again for _, _, again in got)  # never delivered before
