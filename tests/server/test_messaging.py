"""Queues and channels end to end over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from buzon.auth import SecretHasher
from buzon.stomp import (
    Abort,
    Ack,
    Begin,
    Commit,
    Disconnect,
    Message,
    Nack,
    Receipt,
    Send,
    Subscribe,
    Unsubscribe,
)
from tests.server.harness import Client, running_server


def send(destination: str, body: bytes, receipt: str | None = None, **extra: str) -> Send:
    return Send(
        destination=destination,
        headers=(("destination", destination), *extra.items()),
        body=body,
        receipt=receipt,
        transaction=extra.get("transaction"),
    )


def subscribe(
    destination: str, sub_id: str = "s1", ack: str = "auto", receipt: str = "sub", **extra: str
) -> Subscribe:
    headers = (("destination", destination), ("id", sub_id), ("ack", ack), *extra.items())
    return Subscribe(destination=destination, id=sub_id, ack=ack, headers=headers, receipt=receipt)


async def subscribed(port: int, destination: str, **kwargs: str) -> Client:
    client = await Client.connected(port)
    await client.send(subscribe(destination, **kwargs))
    await client.receipt("sub")
    return client


async def publish(client: Client, destination: str, bodies: list[bytes]) -> None:
    for body in bodies[:-1]:
        client.conn.send(send(destination, body))
    client.conn.send(send(destination, bodies[-1], receipt="last"))
    await client.flush()
    await client.expect(Receipt)


async def test_queue_distributes_each_message_to_exactly_one_consumer(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        consumers = [
            await subscribed(server.stomp_port, "/queue/work", ack="client-individual")
            for _ in range(3)
        ]
        producer = await Client.connected(server.stomp_port)
        bodies = [f"job-{i}".encode() for i in range(60)]
        await publish(producer, "/queue/work", bodies)
        seen: Counter[bytes] = Counter()
        per_consumer = []
        for consumer in consumers:
            got = await consumer.events(20)
            per_consumer.append(len(got))
            for message in got:
                assert isinstance(message, Message)
                seen[message.body] += 1
                assert message.ack is not None
                consumer.conn.send(Ack(id=message.ack, transaction=None, receipt=None))
            await consumer.flush()
        assert seen == Counter(bodies)
        assert per_consumer == [20, 20, 20]
        for consumer in consumers:
            assert await consumer.nothing_within(0.1)


async def test_queue_keeps_backlog_for_late_consumer_in_order(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        producer = await Client.connected(server.stomp_port)
        bodies = [f"m{i}".encode() for i in range(50)]
        await publish(producer, "/queue/later", bodies)
        consumer = await Client.connected(server.stomp_port)
        await consumer.send(subscribe("/queue/later", receipt="sub"))
        events = [e for e in await consumer.events(51) if isinstance(e, Message)]
        assert [e.body for e in events] == bodies
        assert all(e.destination == "/queue/later" and e.subscription == "s1" for e in events)


async def test_channel_fans_out_in_order_and_skips_earlier_messages(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/topic/news", [b"before anyone listened"])
        subscribers = [await subscribed(server.stomp_port, "/topic/news") for _ in range(4)]
        bodies = [f"n{i}".encode() for i in range(100)]
        await publish(producer, "/topic/news", bodies)
        for subscriber in subscribers:
            got = await subscriber.events(100)
            assert [m.body for m in got] == bodies
            assert await subscriber.nothing_within(0.05)


async def test_client_individual_redelivers_unacked_on_disconnect_in_order(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        first = await subscribed(server.stomp_port, "/queue/r", ack="client-individual")
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/r", [b"a", b"b", b"c", b"d"])
        got = await first.events(4)
        assert [m.body for m in got] == [b"a", b"b", b"c", b"d"]
        assert not any(m.redelivered for m in got)
        await first.send(Ack(id=got[1].ack, transaction=None, receipt="acked"))
        await first.expect(Receipt)
        await first.close()
        second = await subscribed(server.stomp_port, "/queue/r", ack="client-individual")
        again = await second.events(3)
        assert [m.body for m in again] == [b"a", b"c", b"d"]
        assert all(m.redelivered for m in again)


async def test_client_mode_ack_is_cumulative(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/cum", ack="client")
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/cum", [b"1", b"2", b"3"])
        got = await consumer.events(3)
        await consumer.send(Ack(id=got[1].ack, transaction=None, receipt="r"))
        await consumer.expect(Receipt)
        await consumer.close()
        later = await subscribed(server.stomp_port, "/queue/cum", ack="client")
        rest = await later.events(1)
        assert [m.body for m in rest] == [b"3"]
        assert rest[0].redelivered
        assert await later.nothing_within(0.1)


async def test_nack_returns_message_marked_redelivered(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/n", ack="client-individual")
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/n", [b"retry me"])
        first = await consumer.expect(Message)
        assert not first.redelivered
        assert first.ack is not None
        await consumer.send(Nack(id=first.ack, transaction=None, receipt=None))
        second = await consumer.expect(Message)
        assert second.body == b"retry me"
        assert second.redelivered
        assert second.message_id == first.message_id


async def test_unsubscribe_returns_unacked_messages(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/u", ack="client-individual")
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/u", [b"x", b"y"])
        await consumer.events(2)
        await consumer.send(Unsubscribe(id="s1", receipt="gone"))
        await consumer.expect(Receipt)
        other = await subscribed(server.stomp_port, "/queue/u", ack="auto")
        assert [m.body for m in await other.events(2)] == [b"x", b"y"]


async def test_prefetch_limits_unacked_messages_in_flight(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(
            server.stomp_port, "/queue/p", ack="client-individual", **{"prefetch-count": "2"}
        )
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/p", [b"1", b"2", b"3", b"4"])
        got = await consumer.events(2)
        assert await consumer.nothing_within(0.15)
        await consumer.send(Ack(id=got[0].ack, transaction=None, receipt=None))
        third = await consumer.expect(Message)
        assert third.body == b"3"


async def test_transaction_commit_delivers_and_abort_leaves_no_trace(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/tx")
        producer = await Client.connected(server.stomp_port)
        await producer.send(
            Begin(transaction="t1", receipt=None),
            send("/queue/tx", b"aborted", transaction="t1"),
            Abort(transaction="t1", receipt=None),
            Begin(transaction="t2", receipt=None),
            send("/queue/tx", b"one", transaction="t2"),
            send("/queue/tx", b"two", transaction="t2"),
        )
        assert await consumer.nothing_within(0.15)
        await producer.send(Commit(transaction="t2", receipt="c"))
        await producer.expect(Receipt)
        assert [m.body for m in await consumer.events(2)] == [b"one", b"two"]
        assert await consumer.nothing_within(0.1)


async def test_binary_bodies_and_escaped_headers_round_trip(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/bin")
        producer = await Client.connected(server.stomp_port)
        body = bytes(range(256)) * 4 + b"\x00\x00end"
        tricky = "colon:newline\nback\\slash\rcarriage ñ"
        await producer.send(send("/queue/bin", body, receipt="r", **{"x-tricky": tricky}))
        await producer.expect(Receipt)
        message = await consumer.expect(Message)
        assert message.body == body
        assert ("x-tricky", tricky) in message.headers


async def test_one_mebibyte_messages(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        consumer = await subscribed(server.stomp_port, "/queue/big")
        producer = await Client.connected(server.stomp_port)
        bodies = [bytes([i]) * (1024 * 1024) for i in range(3)]
        await publish(producer, "/queue/big", bodies)
        got = await consumer.events(3)
        assert [m.body for m in got] == bodies


async def test_receipts_for_every_frame_that_asks(hasher: SecretHasher) -> None:
    async with running_server(hasher) as server:
        client = await Client.connected(server.stomp_port)
        await client.send(
            subscribe("/queue/rc", receipt="r1"),
            Begin(transaction="t", receipt="r2"),
            send("/queue/other", b"x", receipt="r3", transaction="t"),
            Commit(transaction="t", receipt="r4"),
            Unsubscribe(id="s1", receipt="r5"),
            Disconnect(receipt="r6"),
        )
        receipts = [await client.expect(Receipt) for _ in range(6)]
        assert [r.receipt_id for r in receipts] == ["r1", "r2", "r3", "r4", "r5", "r6"]
        with pytest.raises(ConnectionError):
            await client.next_event(2.0)


async def test_heartbeats_are_sent_and_a_silent_client_is_dropped(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, heartbeat_ms=100) as server:
        client = await Client.open(server.stomp_port, heart_beat=(100, 100))
        reader = client.reader
        data = await asyncio.wait_for(reader.read(4096), 2)
        assert data.startswith(b"CONNECTED")
        # we promised a heart-beat every 100 ms and send none: the broker gives up on us,
        # after sending its own heart-beats (bare EOLs) meanwhile
        rest = b""
        async with asyncio.timeout(3):
            while chunk := await reader.read(4096):
                rest += chunk
        assert rest.startswith(b"\n")
        assert b"ERROR" in rest
        assert b"heart-beat" in rest


async def test_broker_keeps_serving_others_after_a_client_vanishes(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher) as server:
        doomed = await subscribed(server.stomp_port, "/queue/v", ack="client-individual")
        producer = await Client.connected(server.stomp_port)
        await publish(producer, "/queue/v", [b"1", b"2"])
        await doomed.events(2)
        doomed.writer.transport.abort()
        survivor = await subscribed(server.stomp_port, "/queue/v", ack="client-individual")
        got = await survivor.events(2)
        assert [m.body for m in got] == [b"1", b"2"]
        assert all(m.redelivered for m in got)
