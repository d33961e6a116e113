"""Restarts with the SQLite store: what was confirmed is there, durable subscriptions too."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from buzon.auth import SecretHasher
from buzon.stomp import Ack, Message, Receipt, Subscribe, Unsubscribe
from buzon.store.sqlite import SQLiteStore
from tests.server.harness import Client, running_server
from tests.server.test_messaging import send, subscribe


@contextlib.asynccontextmanager
async def broker(data_dir: Path, hasher: SecretHasher) -> AsyncIterator[int]:
    """A broker on the SQLite store in ``data_dir``; yields its STOMP port."""
    async with running_server(hasher, SQLiteStore(data_dir)) as server:
        yield server.stomp_port


async def test_confirmed_messages_survive_a_restart_in_order(
    tmp_path: Path, hasher: SecretHasher
) -> None:
    async with broker(tmp_path, hasher) as port:
        producer = await Client.connected(port)
        for n in range(20):
            await producer.send(send("/queue/kept", str(n).encode(), receipt=f"r{n}"))
        for n in range(20):
            await producer.receipt(f"r{n}")
        await producer.send(send("/queue/kept", b"transient", receipt="t", persistent="false"))
        await producer.receipt("t")
        consumer = await Client.connected(port)
        await consumer.send(
            subscribe("/queue/kept", ack="client-individual", **{"prefetch-count": "3"})
        )
        await consumer.receipt("sub")
        first = await consumer.expect(Message)
        assert first.ack is not None
        await consumer.send(Ack(first.ack, None, "acked"))
        await consumer.receipt("acked")
    async with broker(tmp_path, hasher) as port:
        consumer = await Client.connected(port)
        await consumer.send(subscribe("/queue/kept"))
        await consumer.receipt("sub")
        got = [await consumer.expect(Message) for _ in range(19)]
        assert [m.body for m in got] == [str(n).encode() for n in range(1, 20)]
        # delivered before the restart and not acked (the window of 3 refilled after the
        # ACK): marked; the rest not
        assert [m.redelivered for m in got] == [True] * 3 + [False] * 16
        assert await consumer.nothing_within(0.2)  # the transient message is gone


async def test_durable_subscriptions_survive_a_restart(
    tmp_path: Path, hasher: SecretHasher
) -> None:
    named = {"subscription-name": "audit-trail"}
    async with broker(tmp_path, hasher) as port:
        subscriber = await Client.connected(port)
        await subscriber.send(subscribe("/topic/events", **named))
        await subscriber.receipt("sub")
        await subscriber.close()
        producer = await Client.connected(port)
        await producer.send(send("/topic/events", b"while away", receipt="r"))
        await producer.receipt("r")
    async with broker(tmp_path, hasher) as port:
        subscriber = await Client.connected(port)
        await subscriber.send(subscribe("/topic/events", **named))
        await subscriber.receipt("sub")
        assert (await subscriber.expect(Message)).body == b"while away"
        # UNSUBSCRIBE with durable:true deletes it; a new one starts empty
        await subscriber.send(Unsubscribe("s1", "gone", (("id", "s1"), ("durable", "true"))))
        await subscriber.receipt("gone")
        producer = await Client.connected(port)
        await producer.send(send("/topic/events", b"nobody keeps this", receipt="r"))
        await producer.receipt("r")
        await subscriber.send(subscribe("/topic/events", sub_id="s2", receipt="again", **named))
        await subscriber.receipt("again")
        assert await subscriber.nothing_within(0.2)


async def test_receipts_follow_their_frames_in_order(tmp_path: Path, hasher: SecretHasher) -> None:
    async with broker(tmp_path, hasher) as port:
        client = await Client.connected(port)
        await client.send(
            send("/queue/a", b"durable", receipt="1"),
            Subscribe(
                "/topic/x", "t", headers=(("destination", "/topic/x"), ("id", "t")), receipt="2"
            ),
            send("/queue/a", b"also durable", receipt="3"),
        )
        receipts = [await client.expect(Receipt) for _ in range(3)]
        assert [r.receipt_id for r in receipts] == ["1", "2", "3"]
