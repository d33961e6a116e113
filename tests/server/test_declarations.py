"""Declaring queues as AMQP clients do: create, find, refuse a different declaration,
server-chosen names, exclusive queues, and what the store keeps of them."""

from __future__ import annotations

import pytest

from buzon.auth import AccessKeys, Principal, SecretHasher
from buzon.broker import Broker
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.server.declarations import SERVER_NAMED_PREFIX, declare_queue
from buzon.server.resources import Resources
from buzon.store import DestinationKind, MemoryStore, QueuePolicy, Role
from tests.broker.helpers import Clock

ALICE = Principal("id-alice", "alice", Role.USER)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def resources(store: MemoryStore) -> Resources:
    keys = AccessKeys(SecretHasher(time_cost=1, memory_cost=8))
    return Resources(store, Broker(), keys)


async def test_a_declare_creates_then_finds_with_counts(
    resources: Resources, store: MemoryStore
) -> None:
    made = await declare_queue(resources, ALICE, "jobs", QueuePolicy())
    assert (made.name, made.created) == ("jobs", True)
    assert [r.name for r in await store.destinations()] == ["jobs"]
    again = await declare_queue(resources, ALICE, "jobs", QueuePolicy())
    assert (again.created, again.messages, again.consumers) == (False, 0, 0)
    passive = await declare_queue(
        resources, ALICE, "jobs", QueuePolicy(durable=False), passive=True
    )
    assert passive.name == "jobs"  # passive compares nothing


async def test_a_different_declaration_is_refused_naming_the_difference(
    resources: Resources,
) -> None:
    await declare_queue(resources, ALICE, "jobs", QueuePolicy(message_ttl_ms=1000))
    with pytest.raises(BrokerError) as refused:
        await declare_queue(resources, ALICE, "jobs", QueuePolicy(message_ttl_ms=2000))
    assert refused.value.code is ErrorCode.PRECONDITION_FAILED
    assert "message_ttl_ms" in refused.value.detail


async def test_a_passive_declare_of_a_missing_queue_is_not_found(resources: Resources) -> None:
    with pytest.raises(BrokerError) as missing:
        await declare_queue(resources, ALICE, "nowhere", QueuePolicy(), passive=True)
    assert missing.value.code is ErrorCode.DESTINATION_NOT_FOUND


async def test_server_named_exclusive_queues_are_never_stored(
    resources: Resources, store: MemoryStore
) -> None:
    made = await declare_queue(resources, ALICE, "", QueuePolicy(), exclusive_to="conn-1")
    assert made.name.startswith(SERVER_NAMED_PREFIX)
    assert await store.destinations() == []
    queue = resources.target(DestinationKind.QUEUE, made.name)
    assert queue.record.policy.durable is False  # its messages are not stored either
    with pytest.raises(AccessDenied) as locked:
        await declare_queue(resources, ALICE, made.name, QueuePolicy(), exclusive_to="conn-2")
    assert locked.value.code is ErrorCode.RESOURCE_LOCKED
    with pytest.raises(BrokerError) as differs:  # its own connection, not exclusive now
        await declare_queue(resources, ALICE, made.name, QueuePolicy(), connection="conn-1")
    assert differs.value.code is ErrorCode.PRECONDITION_FAILED


async def test_a_queue_that_expires_leaves_the_store(store: MemoryStore) -> None:
    clock = Clock()
    broker = Broker(clock=clock)
    resources = Resources(store, broker, AccessKeys(SecretHasher(time_cost=1, memory_cost=8)))
    await declare_queue(resources, ALICE, "brief", QueuePolicy(expires_ms=5000))
    await declare_queue(resources, ALICE, "kept", QueuePolicy())
    await resources.flush()
    clock.now += 5
    broker.timers.fire()
    await resources.flush()
    assert [r.name for r in await store.destinations()] == ["kept"]
    assert resources.target_or_none(DestinationKind.QUEUE, "brief") is None
