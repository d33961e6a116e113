"""The SDK's idempotent publish: a key by default, and a safe resend after a lost receipt."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from buzon.auth import SecretHasher
from buzon.client import ApiError, AsyncClient, BuzonConnectionError
from buzon.server.app import BuzonServer
from buzon.store.sqlite import SQLiteStore
from tests.server.harness import ADMIN, PASSWORD, running_server


@pytest.fixture
async def server(hasher: SecretHasher) -> AsyncIterator[BuzonServer]:
    async with running_server(hasher) as server:
        yield server


def depth_and_deduplicated(server: BuzonServer, name: str) -> tuple[int, int]:
    (queue,) = [q for q in server.broker.statistics().queues if q.name == name]
    return queue.depth, queue.deduplicated


class ReceiptLoss:
    """A TCP relay to the broker whose first connection dies right after the client's
    first SEND got through, before the broker's RECEIPT can come back (a network cut at
    the worst moment); later connections are relayed whole."""

    def __init__(self, server: BuzonServer) -> None:
        self._target = server.stomp_port
        self._server = server
        self._connections = 0
        self._relay: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ReceiptLoss:
        self._relay = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._relay.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._relay is not None
        self._relay.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        cut = self._connections == 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target)
        sent = asyncio.Event()
        tasks = [
            asyncio.create_task(self._pipe(reader, upstream_writer, sent if cut else None)),
            asyncio.create_task(self._pipe(upstream_reader, writer, None, stop=sent)),
        ]
        if cut:
            await sent.wait()
            await self._stored()
            for task in tasks:
                task.cancel()
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stored(self) -> None:
        """Until the broker holds the SEND's message (its receipt is then on its way)."""
        for _ in range(500):
            if any(q.depth for q in self._server.broker.statistics().queues):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the first SEND never arrived")

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        on_send: asyncio.Event | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if stop is not None and stop.is_set():
                    return  # what the broker says after the SEND is lost
                sink.write(data)
                await sink.drain()
                if on_send is not None and b"SEND\n" in data:
                    on_send.set()
        sink.close()


async def test_a_publish_whose_receipt_is_lost_is_resent_and_enqueued_once(
    server: BuzonServer,
) -> None:
    async with ReceiptLoss(server) as relay:
        url = f"stomp://{ADMIN}:{PASSWORD}@127.0.0.1:{relay.port}"
        async with AsyncClient(url, timeout=5) as client:
            await client.publish("/queue/payments", "pay 10")  # resent on the next connection
    assert depth_and_deduplicated(server, "payments") == (1, 1)


async def test_without_a_key_a_lost_receipt_is_an_error_not_a_resend(server: BuzonServer) -> None:
    async with ReceiptLoss(server) as relay:
        url = f"stomp://{ADMIN}:{PASSWORD}@127.0.0.1:{relay.port}"
        async with AsyncClient(url, timeout=5) as client:
            with pytest.raises(BuzonConnectionError):
                await client.publish("/queue/payments", "pay 10", idempotency_key=False)
    assert depth_and_deduplicated(server, "payments") == (1, 0)


async def test_a_refused_publish_fails_alone_the_others_on_its_connection_are_resent(
    hasher: SecretHasher, tmp_path: Path
) -> None:
    # on disk: the receipts wait for the commit, and the refusal overtakes them
    async with running_server(hasher, store=SQLiteStore(tmp_path)) as server:
        url = f"stomp://{ADMIN}:{PASSWORD}@127.0.0.1:{server.stomp_port}"
        async with AsyncClient(url, timeout=5) as client:
            good = [client.publish("/queue/many", f"m{n}") for n in range(200)]
            bad = client.publish("/queue/many", "bad", idempotency_key="")  # refused
            outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
        assert outcomes[:200] == [None] * 200  # each stored once, or resent with its key
        assert isinstance(outcomes[200], ApiError)
        assert depth_and_deduplicated(server, "many")[0] == 200


async def test_publish_sends_a_new_key_by_default_and_the_callers_when_given(
    server: BuzonServer,
) -> None:
    url = f"stomp://{ADMIN}:{PASSWORD}@127.0.0.1:{server.stomp_port}"
    async with AsyncClient(url) as client:
        jobs = await client.subscribe("/queue/jobs")
        news = await client.subscribe("/topic/news")
        await client.publish("/queue/jobs", "a")
        await client.publish("/queue/jobs", "a")  # a new publish: a new key
        await client.publish("/queue/jobs", "b", idempotency_key="order-1")
        await client.publish("/queue/jobs", "b", idempotency_key="order-1")  # the caller's retry
        await client.publish("/queue/jobs", "c", idempotency_key=False)
        await client.publish("/topic/news", "n")
        got = [await jobs.get(timeout=5) for _ in range(4)]
        (listened,) = [await news.get(timeout=5)]
    keys = [m.headers.get("idempotency-key") for m in got]
    assert [m.text for m in got] == ["a", "a", "b", "c"]
    assert uuid.UUID(str(keys[0])) != uuid.UUID(str(keys[1]))
    assert keys[2:] == ["order-1", None]
    assert "idempotency-key" not in listened.headers  # channels ignore keys: none is made up
    assert depth_and_deduplicated(server, "jobs") == (0, 1)
