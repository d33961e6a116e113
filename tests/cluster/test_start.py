"""Nodes joining: three at once on an empty database, and one while the others run."""

from __future__ import annotations

import asyncio
import collections

from buzon.client import AsyncClient
from buzon.store.migrate import migrations
from tests.cluster.nodes import (
    TIMEOUT,
    Cluster,
    admin_api,
    api,
    client,
    create_everywhere,
    within,
)
from tests.postgres_server import PostgresServer

USER_PASSWORD = "correct horse battery"


async def test_three_nodes_started_at_once_on_an_empty_database_all_come_up(
    cluster: Cluster, postgres: PostgresServer
) -> None:
    nodes = cluster.start("n1", "n2", "n3")  # all at once
    database = cluster.database_url.rsplit("/", 1)[1]
    applied = postgres.psql(database, "SELECT version FROM buzon.schema_version ORDER BY 1")
    assert [int(line) for line in applied.split()] == [
        version for version, _ in migrations("buzon.store.pg_migrations")
    ]
    admins = postgres.psql(database, "SELECT count(*) FROM buzon.users WHERE role = 'admin'")
    assert int(admins) == 1
    for node in nodes:
        async with admin_api(node) as http:
            view = (await http.get("/cluster")).json()
        assert {(n["name"], n["alive"]) for n in view["nodes"]} == {
            ("n1", True),
            ("n2", True),
            ("n3", True),
        }


async def test_a_node_started_while_the_others_run_serves_what_they_made(
    cluster: Cluster,
) -> None:
    """Before n3 starts: a user, a queue with messages waiting, and a durable subscription
    whose owner is away while messages are published to its channel. n3 knows them all
    and takes a share of the queue's work."""
    first = cluster.start("n1", "n2")
    async with api(first[0]) as http:
        response = await http.post("/users", json={"username": "alice", "password": USER_PASSWORD})
        assert response.status_code == 201, response.text
    await create_everywhere(first, "queues", "jobs")
    await create_everywhere(first, "channels", "news")
    async with AsyncClient(
        f"stomp://127.0.0.1:{first[0].port}", login="alice", passcode=USER_PASSWORD
    ) as alice:
        away = await alice.subscribe("/topic/news", durable="alice-news")
        await away.unsubscribe()
    async with client(first[1]) as producer:
        for i in range(40):
            await producer.publish("/queue/jobs", f"job-{i}")
        for i in range(5):
            await producer.publish("/topic/news", f"news-{i}")

    (late,) = await asyncio.to_thread(cluster.start, "n3")
    async with admin_api(late) as http:
        assert (await http.get("/queues/jobs")).status_code == 200
    async with AsyncClient(
        f"stomp://127.0.0.1:{late.port}", login="alice", passcode=USER_PASSWORD, timeout=TIMEOUT
    ) as alice:
        resumed = await alice.subscribe("/topic/news", durable="alice-news")
        async with asyncio.timeout(TIMEOUT):
            kept = [(await resumed.get()).text for _ in range(5)]
    assert kept == [f"news-{i}" for i in range(5)]

    taken: collections.Counter[str] = collections.Counter()
    bodies: list[str] = []

    async def consume(name: str, sdk: AsyncClient) -> None:
        subscription = await sdk.subscribe("/queue/jobs", ack="client-individual", prefetch=5)
        async for message in subscription:
            taken[name] += 1
            bodies.append(message.text)
            await message.ack(confirm=True)

    consumers = {"n1": client(first[0]), "n3": client(late)}
    await asyncio.gather(*(sdk.connect() for sdk in consumers.values()))
    tasks = [asyncio.create_task(consume(name, sdk)) for name, sdk in consumers.items()]
    try:

        async def all_taken() -> bool:
            return len(bodies) >= 40

        await within(TIMEOUT, all_taken, "the 40 jobs are consumed")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(sdk.close() for sdk in consumers.values()))
    assert sorted(bodies) == sorted(f"job-{i}" for i in range(40))
    print("jobs taken per node:", dict(taken))
    assert taken["n3"] > 0
