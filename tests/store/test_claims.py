"""What the PostgreSQL store promises a cluster about scheduled messages (``ClaimLog``): a
scheduled row is held by one node until its time, never claimed as a ready message nor
counted, expired, trimmed or purged with the unclaimed ones; when its node dies, it keeps
its time for the node that adopts it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from buzon.store import Page, StoredMessage
from buzon.store.migrate import migrations
from buzon.store.postgres import PostgresStore
from buzon.store.tickets import Ticket, settled

FAR = 4_000_000_000.0
"""A deliver_at far in the future (the year 2096)."""


def message(seq: int, body: bytes = b"x", **changes: object) -> StoredMessage:
    made = StoredMessage("q", seq, f"m-{seq}", "/queue/jobs", (), body, None, False)
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


Node = Callable[[str], Awaitable[PostgresStore]]


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    """Start a node's store on the shared database (closed at the end, without leaving:
    as a node that dies)."""
    started: list[PostgresStore] = []

    async def start(name: str) -> PostgresStore:
        store = PostgresStore(database_url)
        await store.open()
        await store.register_node(name, [])
        started.append(store)
        return store

    yield start
    for store in started:
        await store.close()


async def page_of(ticket: Ticket) -> Page:
    page = await settled(ticket)
    assert isinstance(page, Page)
    return page


def seqs(page: Page) -> list[int]:
    return [m.seq for m in page.messages]


async def test_claims_and_the_unclaimed_counts_leave_scheduled_messages_out(node: Node) -> None:
    store = await node("a")
    await settled(
        store.submit(
            appends=[
                message(1, expires_at=10.0),
                message(2, b"scheduled", expires_at=5.0, deliver_at=FAR),  # nobody holds it
                message(3),
                message(4, b"1234"),
            ]
        )
    )
    assert await store.unclaimed() == {"q": (3, 6, 10.0)}
    assert [m.seq for m in await store.peek_unclaimed("q", 10, 0.0)] == [1, 3, 4]
    # seq 2 is past its expiry too, but it waits for its time
    assert await settled(store.expire_unclaimed("q", 20.0, 10)) == (
        [message(1, expires_at=10.0)],
        None,
    )
    # a bound of one ready message: the oldest ready one goes, the scheduled one is no part
    assert await settled(store.trim_unclaimed("q", 1)) == [message(3)]
    assert seqs(await page_of(store.claim("q", 10, 1 << 20))) == [4]
    assert await settled(store.purge_unclaimed("q")) == 0
    assert [(m.seq, m.deliver_at) for m in await store.messages()] == [(2, FAR), (4, None)]


async def test_a_dead_nodes_scheduled_messages_keep_their_time_for_the_node_that_adopts_them(
    node: Node,
) -> None:
    dying = await node("a")
    past = time.time() - 60
    await settled(
        dying.submit(
            appends=[
                message(1, deliver_at=FAR, claimed=True),
                message(2, deliver_at=past, claimed=True),  # its time came: it may be out
                message(3, claimed=True),
            ]
        )
    )
    survivor = await node("b")
    assert seqs(await page_of(survivor.claim("q", 10, 1 << 20))) == []
    await asyncio.sleep(0.5)
    await survivor.heartbeat(0, 0)  # "a" stays silent
    assert await survivor.reap(0.4) == [dying.node_id]
    # seq 1 cannot have been delivered: unmarked, still waiting for its time; seq 2 is
    # ready now, as seq 3, and both may have been delivered
    assert [(m.seq, m.deliver_at, m.redelivered) for m in await survivor.messages()] == [
        (1, FAR, False),
        (2, None, True),
        (3, None, True),
    ]
    assert await survivor.unclaimed() == {"q": (2, 2, None)}
    assert seqs(await page_of(survivor.claim("q", 10, 1 << 20))) == [2, 3]
    assert await survivor.unheld_scheduled() == {"q"}  # what the nodes look for
    adopted = await page_of(survivor.claim_scheduled("q", 10))
    assert adopted.exhausted
    assert [(m.seq, m.deliver_at) for m in adopted.messages] == [(1, FAR)]
    assert seqs(await page_of(survivor.claim_scheduled("q", 10))) == []  # held now
    assert await survivor.unheld_scheduled() == set()


async def test_scheduled_messages_are_adopted_earliest_first_and_never_twice(node: Node) -> None:
    first, second = await node("a"), await node("b")
    await settled(first.submit(appends=[message(seq, deliver_at=FAR - seq) for seq in range(1, 6)]))
    taken = await asyncio.gather(
        *(page_of(store.claim_scheduled("q", 2)) for store in (first, second))
    )
    adopted = [m.seq for page in taken for m in page.messages]
    assert sorted(adopted) == [2, 3, 4, 5]  # the four earliest; none by both nodes
    assert seqs(await page_of(first.claim_scheduled("q", 10))) == [1]


async def test_a_node_reads_and_purges_only_the_scheduled_messages_it_holds(node: Node) -> None:
    a, b = await node("a"), await node("b")
    await settled(
        a.submit(appends=[message(seq, deliver_at=FAR - seq, claimed=True) for seq in (1, 2)])
    )
    await settled(b.submit(appends=[message(3, deliver_at=FAR - 3, claimed=True)]))
    await settled(b.submit(appends=[message(4, deliver_at=FAR - 4)]))  # a dead node's: nobody's
    assert [m.seq for m in await settled(a.read_scheduled("q", None, 10))] == [2, 1]
    assert [m.seq for m in await settled(a.read_scheduled("q", (FAR - 2, 2), 10))] == [1]
    assert [m.seq for m in await settled(b.read_scheduled("q", None, 10))] == [3]
    await settled(a.purge_scheduled("q", None))
    assert [m.seq for m in await a.messages()] == [3, 4]
    await settled(b.purge_scheduled("q", (FAR - 3, 3)))  # after its only one: nothing
    assert [m.seq for m in await b.messages()] == [3, 4]
    adopted = await page_of(a.claim_scheduled("q", 10))
    assert seqs(adopted) == [4]


async def test_a_released_message_is_ready_for_any_node(node: Node) -> None:
    holder, other = await node("a"), await node("b")
    await settled(holder.submit(appends=[message(1, deliver_at=time.time() - 1, claimed=True)]))
    await settled(holder.release([("q", 1, True, 1)]))  # its consumer left
    [back] = (await page_of(other.claim("q", 10, 1 << 20))).messages
    assert (back.seq, back.deliver_at, back.redelivered, back.deliveries) == (1, None, True, 1)


async def test_a_cluster_database_from_before_scheduled_messages_is_upgraded(
    database_url: str,
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute("CREATE SCHEMA buzon")
            await connection.execute(
                "CREATE TABLE buzon.schema_version"
                " (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await connection.execute("SET LOCAL search_path = buzon")
            for version, sql in migrations("buzon.store.pg_migrations"):
                if version == 1:
                    await connection.execute(sql)
            await connection.execute("INSERT INTO schema_version VALUES (1)")
            await connection.execute(
                "INSERT INTO messages (queue_id, seq, message_id, destination, headers, body)"
                " VALUES ('q', 7, 'm-7', '/queue/jobs', '[]', '\\x78')"
            )
    finally:
        await connection.close()
    store = PostgresStore(database_url)
    await store.open()
    try:
        await store.register_node("a", [])
        [old] = (await page_of(store.claim("q", 10, 1 << 20))).messages
        assert old == message(7)
        await settled(store.submit(schedules=[(("q", 7), FAR)]))
        [kept] = await store.messages()
        assert (kept.deliver_at, kept.redelivered) == (FAR, True)
    finally:
        await store.close()
    connection = await asyncpg.connect(database_url)
    try:
        applied = await connection.fetchval("SELECT max(version) FROM buzon.schema_version")
    finally:
        await connection.close()
    assert applied == migrations("buzon.store.pg_migrations")[-1][0]
