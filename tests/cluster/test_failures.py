"""A node killed, PostgreSQL restarted: nothing receipted is lost, and the cluster carries on."""

from __future__ import annotations

import asyncio
import collections
import itertools
import signal
import time

import pytest

from buzon.client import ApiError, BuzonConnectionError
from buzon.stomp import Send
from tests.cluster.nodes import ADMIN, PASSWORD, TIMEOUT, Cluster, client, create_everywhere, within
from tests.interop.broker_process import BrokerProcess
from tests.postgres_server import PostgresServer
from tests.server.harness import Client

NODE_TIMEOUT = 3
HELD = 10
"""Messages the node that dies holds unacknowledged (its consumer's prefetch)."""


async def test_a_killed_nodes_unacked_messages_reach_another_nodes_consumer_redelivered(
    cluster: Cluster,
) -> None:
    """n1's consumer holds HELD messages unacked when n1 is killed; with --node-timeout 3,
    a consumer on n3 gets them marked redelivered, and every receipted message once."""
    nodes = cluster.start("n1", "n2", "n3", extra=("--node-timeout", str(NODE_TIMEOUT)))
    doomed, producer_node, survivor = nodes
    await create_everywhere(nodes, "queues", "jobs")
    holder = client(doomed, reconnect=False)
    producer = client(producer_node)
    consumer = client(survivor)
    await asyncio.gather(holder.connect(), producer.connect(), consumer.connect())
    try:
        held = await holder.subscribe("/queue/jobs", ack="client-individual", prefetch=HELD)
        receipted = [f"job-{i}" for i in range(3 * HELD)]
        for body in receipted:
            await producer.publish("/queue/jobs", body)
        async with asyncio.timeout(TIMEOUT):
            on_doomed = [(await held.get()).text for _ in range(HELD)]

        delivered: dict[str, bool] = {}  # body: redelivered
        subscription = await consumer.subscribe("/queue/jobs", ack="client-individual")
        killed = time.monotonic()
        cluster.nodes["n1"].stop(signal.SIGKILL)
        async with asyncio.timeout(NODE_TIMEOUT + 15):
            while len(delivered) < len(receipted):
                message = await subscription.get()
                assert message.text not in delivered, f"{message.text} delivered twice on n3"
                delivered[message.text] = message.redelivered
                if message.text in on_doomed:
                    took = time.monotonic() - killed
                await message.ack(confirm=True)
        print(f"kill -9 to the last of the {HELD} held messages delivered on n3: {took:.2f} s")
    finally:
        await asyncio.gather(holder.close(), producer.close(), consumer.close())
    assert sorted(delivered) == sorted(receipted)
    assert {body for body, again in delivered.items() if again} == set(on_doomed)
    assert took < NODE_TIMEOUT + 5


class Publishers:
    """One publisher per node, each publishing persistent messages with receipts in a loop
    (an SDK client that reconnects), counting receipts and refusals."""

    def __init__(self, nodes: list[BrokerProcess], destination: str) -> None:
        self.receipted: set[str] = set()
        self.progress = [0] * len(nodes)
        self.failures: list[collections.Counter[str]] = [collections.Counter() for _ in nodes]
        self._destination = destination
        self._stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._publish(i, node)) for i, node in enumerate(nodes)]

    async def each_published(self, count: int) -> bool:
        return min(self.progress) >= count

    async def each_failed(self) -> bool:
        return all(self.failures)

    async def stop(self) -> None:
        self._stopping.set()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if outcome is not None:
                raise outcome

    async def _publish(self, index: int, node: BrokerProcess) -> None:
        async with client(node, max_reconnect_delay=0.5) as sdk:
            for n in itertools.count():
                if self._stopping.is_set():
                    return
                body = f"p{index}-{n}"
                try:
                    await sdk.publish(self._destination, body, timeout=2)
                except ApiError as exc:
                    self.failures[index][exc.code_name] += 1
                except BuzonConnectionError:
                    self.failures[index]["no receipt: timed out or connection lost"] += 1
                else:
                    self.receipted.add(body)
                    self.progress[index] += 1


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["fast-shutdown", "crash"])
async def test_postgresql_restarted_under_load_loses_nothing_receipted(
    cluster: Cluster, postgres: PostgresServer, stop: signal.Signals
) -> None:
    """Publishers on every node while PostgreSQL stops (fast shutdown, or killed) and
    starts again on the same port: what got a RECEIPT is all there afterwards, the nodes serve again
    without a restart, and a connection that stayed idle through it still works."""
    nodes = cluster.start("n1", "n2", "n3")
    await create_everywhere(nodes, "queues", "load")
    idle = [await Client.connected(node.port, login=ADMIN, passcode=PASSWORD) for node in nodes]
    load = Publishers(nodes, "/queue/load")
    down = False
    try:
        await within(TIMEOUT, lambda: load.each_published(20), "every publisher gets receipts")
        await asyncio.to_thread(postgres.stop, stop)
        down = True
        await within(20, load.each_failed, "every publisher is refused while PostgreSQL is down")
        before = min(load.progress)
        await asyncio.to_thread(postgres.start)
        down = False
        recovered = await within(
            30, lambda: load.each_published(before + 20), "every publisher gets receipts again"
        )
        print(f"receipts on every node again {recovered:.2f} s after PostgreSQL started")
        print("publishes refused while it was down, per node:", [dict(f) for f in load.failures])
    finally:
        await load.stop()
        if down:
            await asyncio.to_thread(postgres.start)

    for index, connection in enumerate(idle):
        await connection.send(Send("/queue/load", (), f"idle-{index}".encode(), f"r{index}"))
        await connection.receipt(f"r{index}", within=TIMEOUT)
        await connection.close()

    drained: collections.Counter[str] = collections.Counter()
    async with client(nodes[0]) as consumer:
        subscription = await consumer.subscribe("/queue/load", ack="client-individual")
        async with asyncio.timeout(TIMEOUT * 2):
            while not load.receipted <= set(drained):
                message = await subscription.get()
                if not message.redelivered:
                    drained[message.text] += 1
                await message.ack()
    assert [body for body, times in drained.items() if times > 1] == []

    for index, node in enumerate(nodes):
        async with client(node) as sdk:
            subscription = await sdk.subscribe(f"/queue/after-{index}", ack="client-individual")
            await sdk.publish(f"/queue/after-{index}", "works")
            message = await subscription.get(timeout=TIMEOUT)
            await message.ack(confirm=True)
            assert message.text == "works"
