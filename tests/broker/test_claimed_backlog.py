"""A queue shared by the nodes of a cluster (ClaimedBacklog), on a real PostgreSQL store,
driven in-process: which messages a node writes claimed, and the order it hands them out."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest

from buzon.broker import AckMode, Broker, BrokerConfig
from buzon.broker.destinations import new_record
from buzon.broker.queue import Queue
from buzon.store import DestinationKind, Overflow, QueuePolicy
from buzon.store.postgres import PostgresStore
from buzon.store.tickets import settled
from tests.broker.helpers import open_peer, send, user

WAIT = 10.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(database_url)
    await opened.open()
    await opened.register_node("test-node", [])
    yield opened
    await opened.close()


def shared_broker(store: PostgresStore) -> Broker:
    return Broker(BrokerConfig(), log=store, pager=store, shared=True)


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait until ``check()`` holds (the store answers on this loop, in its own time)."""
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 (what changes is the engine's state, polled)
            await asyncio.sleep(0.01)
    assert check(), what


async def test_a_message_never_overtakes_an_older_one_still_being_written_unclaimed(
    store: PostgresStore,
) -> None:
    broker = shared_broker(store)
    consumer = open_peer(broker, "alice")
    consumer.session.subscribe("s", "/queue/jobs", AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    producer = open_peer(broker, "alice")
    producer.session.publish("/queue/jobs", (), b"1")
    await until(lambda: len(consumer.deliveries) == 1, "the first delivery")
    consumer.session.ack(consumer.deliveries[0].ack_id or "")
    await store.messages()  # the claim the ack asked for found nothing left
    # The consumer has room and nothing waits: the next message is written claimed here.
    producer.session.publish("/queue/jobs", (), b"2")
    await until(lambda: len(consumer.deliveries) == 2, "the second delivery")
    # Its window is full: the next one is written unclaimed, for any node. Its write is
    # in flight when the consumer gets room again and one more comes: that one may not be
    # written claimed here (it would be handed out first).
    producer.session.publish("/queue/jobs", (), b"3")
    consumer.session.ack(consumer.deliveries[1].ack_id or "")
    producer.session.publish("/queue/jobs", (), b"4")
    for count in (3, 4):
        await until(lambda: len(consumer.deliveries) == count, f"delivery {count}")  # noqa: B023
        consumer.session.ack(consumer.deliveries[-1].ack_id or "")
    assert consumer.bodies() == [b"1", b"2", b"3", b"4"]
    await settled(broker.journal.last)
    assert await store.messages() == []  # every acked row is gone


async def test_messages_another_node_releases_are_claimed_here_marked_redelivered(
    store: PostgresStore,
) -> None:
    """Another node's consumer left: what it held is released; told so, this node claims
    it for its own consumer."""
    broker = shared_broker(store)
    producer = open_peer(broker, "alice")
    for body in (b"1", b"2", b"3"):
        producer.session.publish("/queue/jobs", (), body)
    await settled(broker.journal.last)
    rows = await store.messages()
    # the first two are claimed outside this engine, as another node's would be
    await settled(store.claim(rows[0].queue_id, 2, 1 << 20))
    consumer = open_peer(broker, "bob")
    consumer.session.subscribe("s", "/queue/jobs", AckMode.CLIENT_INDIVIDUAL, prefetch=10)
    await until(lambda: len(consumer.deliveries) == 1, "the unclaimed message")
    assert consumer.bodies() == [b"3"]
    # that node lets them go: this node is told and claims them
    await settled(store.release([(m.queue_id, m.seq, True, 1) for m in rows[:2]]))
    broker.messages_available(None)
    await until(lambda: len(consumer.deliveries) == 3, "the released messages")
    assert consumer.bodies() == [b"3", b"1", b"2"]
    assert [d.redelivered for d in consumer.deliveries] == [False, True, True]


async def test_max_deliveries_counts_the_deliveries_made_before_a_release(
    store: PostgresStore,
) -> None:
    """A message goes back to the database when its consumer leaves; the next claim (on
    any node) carries on counting, so a poison message ends in the dead-letter queue."""
    broker = shared_broker(store)
    policy = QueuePolicy(max_deliveries=2, dead_letter_queue="poison")
    record = dataclasses.replace(
        new_record(DestinationKind.QUEUE, "jobs", "id-alice", None, 1.0), policy=policy
    )
    broker.add_destination(record)
    open_peer(broker, "alice").session.publish("/queue/jobs", (), b"crashes its consumer")
    for attempt in (1, 2):
        consumer = open_peer(broker, "alice")
        consumer.session.subscribe("s", "/queue/jobs", AckMode.CLIENT_INDIVIDUAL)
        await until(lambda: len(consumer.deliveries) == 1, f"delivery {attempt}")  # noqa: B023
        consumer.session.close()  # leaves without an ack: released, its count kept
        await settled(broker.journal.last)
        [row] = [m for m in await store.messages() if m.queue_id == record.id]
        assert row.deliveries == attempt
    watcher = open_peer(broker, "alice")
    watcher.session.subscribe("d", "/queue/poison", AckMode.AUTO)
    consumer = open_peer(broker, "alice")
    consumer.session.subscribe("s", "/queue/jobs", AckMode.CLIENT_INDIVIDUAL)
    await until(lambda: len(watcher.deliveries) == 1, "the dead letter")
    assert consumer.deliveries == []
    assert watcher.bodies() == [b"crashes its consumer"]


async def test_a_drop_head_bound_holds_for_messages_no_node_holds(store: PostgresStore) -> None:
    """Nobody consumes: the messages wait unclaimed in the store, and the oldest beyond
    the bound go to the dead-letter queue (as a durable subscription's backlog bound)."""
    broker = shared_broker(store)
    policy = QueuePolicy(max_length=5, overflow=Overflow.DROP_HEAD, dead_letter_queue="gone")
    record = dataclasses.replace(
        new_record(DestinationKind.QUEUE, "jobs", "id-alice", None, 1.0), policy=policy
    )
    broker.add_destination(record)
    producer = open_peer(broker, "alice")
    for n in range(50):
        producer.session.publish("/queue/jobs", (), str(n).encode())
    await settled(broker.journal.last)
    broker.refresh_unclaimed(await store.unclaimed())  # as a node does every second

    async def stored_bodies() -> list[bytes]:
        return [m.body for m in await store.messages() if m.queue_id == record.id]

    async with asyncio.timeout(WAIT):
        while len(await stored_bodies()) > 5:
            broker.refresh_unclaimed(await store.unclaimed())
    assert await stored_bodies() == [str(n).encode() for n in range(45, 50)]
    watcher = open_peer(broker, "alice")
    watcher.session.subscribe("d", "/queue/gone", AckMode.AUTO)
    await until(lambda: len(watcher.deliveries) == 45, "the dropped heads, dead-lettered")
    reasons = {dict(d.message.headers).get("x-dead-letter-reason") for d in watcher.deliveries}
    assert reasons == {"max-length"}


async def test_a_pull_keeps_only_what_it_took_the_rest_goes_back_to_every_node(
    store: PostgresStore,
) -> None:
    broker = shared_broker(store)
    producer = open_peer(broker, "alice")
    for n in range(10):
        producer.session.publish("/queue/jobs", (), str(n).encode())
    await settled(broker.journal.last)
    queue = broker.destination(DestinationKind.QUEUE, "jobs")
    assert isinstance(queue, Queue)
    ready = asyncio.Event()
    queue.call_when_ready(ready.set)  # as a pull that waits does
    await asyncio.wait_for(ready.wait(), WAIT)
    [lease] = broker.pull(user("alice"), "jobs", 1, 30.0, 0.0)
    assert lease.message.body == b"0"
    await store.messages()  # after the release the pull caused
    held = await settled(store.claim(queue.record.id, 100, 1 << 20))
    assert [m.body for m in held.messages] == [str(n).encode() for n in range(1, 10)]

    # and a clean stop hands the leased one back, marked redelivered
    broker.close()
    await store.messages()
    [back] = (await settled(store.claim(queue.record.id, 100, 1 << 20))).messages
    assert (back.body, back.redelivered) == (b"0", True)


async def test_claims_take_the_highest_priority_first_and_the_oldest_within_one(
    store: PostgresStore,
) -> None:
    broker = shared_broker(store)
    producer = open_peer(broker, "alice")
    sent = [(1, None), (2, 9), (3, 0), (4, 9), (5, 6), (6, None)]
    for number, priority in sent:
        headers = () if priority is None else (("priority", str(priority)),)
        send(producer.session, "/queue/jobs", headers, str(number).encode())
    await settled(broker.journal.last)  # no consumer: every one is written unclaimed
    queue = broker.destination(DestinationKind.QUEUE, "jobs")
    assert isinstance(queue, Queue)
    two = await settled(store.claim(queue.record.id, 2, 1 << 20))
    assert [(m.body, m.priority) for m in two.messages] == [(b"2", 9), (b"4", 9)]
    await settled(store.release([(queue.record.id, m.seq, False, 0) for m in two.messages]))
    # a consumer taking one at a time gets them in priority order
    consumer = open_peer(broker, "carol")
    consumer.session.subscribe("s", "/queue/jobs", AckMode.CLIENT_INDIVIDUAL, prefetch=1)
    for count in range(1, 7):
        await until(lambda: len(consumer.deliveries) == count, f"delivery {count}")  # noqa: B023
        consumer.session.ack(consumer.deliveries[-1].ack_id or "")
    assert consumer.bodies() == [b"2", b"4", b"5", b"1", b"6", b"3"]
