"""Queues across three nodes: each message to one consumer, in order, none lost."""

from __future__ import annotations

import asyncio
import collections
import contextlib

from buzon.client import AsyncClient
from tests.cluster.nodes import TIMEOUT, Cluster, client, create_everywhere, queue_settled

COUNT = 600
PRODUCERS = 3


async def test_consumers_on_every_node_share_the_work_each_message_acked_once(
    cluster: Cluster,
) -> None:
    nodes = cluster.start("n1", "n2", "n3")
    consumers = [client(node) for node in nodes]
    producers = [client(node) for node in nodes]
    for each in (*consumers, *producers):
        await each.connect()
    try:
        await create_everywhere(nodes, "queues", "work")
        deliveries: list[tuple[str, str, bool]] = []  # node, body, redelivered
        everything = asyncio.Event()

        async def consume(name: str, sdk: AsyncClient) -> None:
            subscription = await sdk.subscribe("/queue/work", ack="client-individual", prefetch=20)
            async for message in subscription:
                deliveries.append((name, message.text, message.redelivered))
                await message.ack(confirm=True)
                if len({body for _, body, _ in deliveries}) == COUNT:
                    everything.set()

        consuming = [
            asyncio.create_task(consume(f"n{i}", sdk)) for i, sdk in enumerate(consumers, 1)
        ]

        async def produce(index: int, sdk: AsyncClient) -> None:
            """Publish every PRODUCERS-th message, 25 receipts awaited at a time."""
            mine = range(index, COUNT, PRODUCERS)
            for start in range(0, len(mine), 25):
                await asyncio.gather(
                    *(sdk.publish("/queue/work", f"m{i}") for i in mine[start : start + 25])
                )

        try:
            await asyncio.gather(*(produce(i, sdk) for i, sdk in enumerate(producers)))
            async with asyncio.timeout(30):
                await asyncio.wait(
                    [asyncio.create_task(everything.wait()), *consuming],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            for task in consuming:
                if task.done():
                    task.result()  # a subscription the broker ended raises here
            await queue_settled(nodes, "work")
        finally:
            for task in consuming:
                task.cancel()
            await asyncio.gather(*consuming, return_exceptions=True)
    finally:
        await asyncio.gather(*(each.close() for each in (*consumers, *producers)))

    fresh = collections.Counter(body for _, body, again in deliveries if not again)
    assert set(fresh) | {body for _, body, _ in deliveries} == {f"m{i}" for i in range(COUNT)}
    assert [body for body, times in fresh.items() if times > 1] == []
    assert len(deliveries) == COUNT, "a message was delivered twice although every one was acked"
    per_node = collections.Counter(name for name, _, _ in deliveries)
    print("deliveries per node:", dict(per_node))
    assert len(per_node) > 1, f"one node's consumer got everything: {dict(per_node)}"


async def test_a_queue_first_used_on_every_node_at_once_is_one_queue(cluster: Cluster) -> None:
    """Producers on three nodes publish at the same moment to a queue nobody created (each
    node creates it on first use): every receipted message reaches a consumer."""
    nodes = cluster.start("n1", "n2", "n3")
    clients = [client(node, reconnect=False) for node in nodes]
    await asyncio.gather(*(each.connect() for each in clients))
    try:
        bodies = [[f"n{node}-{i}" for i in range(20)] for node in (1, 2, 3)]
        outcomes = await asyncio.gather(
            *(
                each.publish("/queue/race", body)
                for each, mine in zip(clients, bodies, strict=True)
                for body in mine
            ),
            return_exceptions=True,
        )
        sent = [body for mine in bodies for body in mine]
        receipted = {body for body, error in zip(sent, outcomes, strict=True) if error is None}
        errors = {repr(error) for error in outcomes if error is not None}
        assert receipted, errors
        delivered: set[str] = set()
        async with client(nodes[0]) as consumer:
            subscription = await consumer.subscribe("/queue/race", ack="client-individual")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    async for message in subscription:
                        delivered.add(message.text)
                        await message.ack()
                        if delivered >= receipted:
                            break
    finally:
        await asyncio.gather(*(each.close() for each in clients))
    assert receipted - delivered == set(), f"receipted, never delivered (errors: {errors})"


async def test_a_node_whose_consumer_is_at_its_prefetch_holds_no_message_back(
    cluster: Cluster,
) -> None:
    """Messages wait; a consumer on n1 takes its prefetch (10) and acks nothing; an idle
    consumer on n3 must get all the others (none kept claimed by n1 beyond its prefetch)."""
    nodes = cluster.start("n1", "n2", "n3")
    await create_everywhere(nodes, "queues", "jobs")
    busy, producer, idle = (client(node) for node in nodes)
    await asyncio.gather(busy.connect(), producer.connect(), idle.connect())
    try:
        for i in range(30):
            await producer.publish("/queue/jobs", f"job-{i}")
        held = await busy.subscribe("/queue/jobs", ack="client-individual", prefetch=10)
        async with asyncio.timeout(TIMEOUT):
            taken = {(await held.get()).text for _ in range(10)}
        subscription = await idle.subscribe("/queue/jobs", ack="client-individual")
        others: set[str] = set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while len(others) < 20:
                    message = await subscription.get()
                    others.add(message.text)
                    await message.ack()
    finally:
        await asyncio.gather(busy.close(), producer.close(), idle.close())
    assert {f"job-{i}" for i in range(30)} - taken - others == set()


async def test_one_consumer_gets_another_nodes_messages_in_publish_order(
    cluster: Cluster,
) -> None:
    nodes = cluster.start("n1", "n2", "n3")
    await create_everywhere(nodes, "queues", "ordered")
    consumer, producer = client(nodes[0]), client(nodes[1])
    await asyncio.gather(consumer.connect(), producer.connect())
    try:
        for i in range(100):  # the first half waits, the second arrives while it is consumed
            await producer.publish("/queue/ordered", f"m{i}")
        subscription = await consumer.subscribe(
            "/queue/ordered", ack="client-individual", prefetch=10
        )
        received: list[str] = []

        async def consume() -> None:
            while len(received) < 200:
                message = await subscription.get()
                received.append(message.text)
                await message.ack()

        consuming = asyncio.create_task(consume())
        for i in range(100, 200):
            await producer.publish("/queue/ordered", f"m{i}")
        async with asyncio.timeout(TIMEOUT):
            await consuming
    finally:
        await asyncio.gather(consumer.close(), producer.close())
    assert received == [f"m{i}" for i in range(200)]
