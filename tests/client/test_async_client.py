"""The asyncio STOMP client against a real broker on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.client import (
    ApiError,
    AsyncClient,
    BuzonConnectionError,
    LoginRefused,
    SubscriptionClosed,
)
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.server.config import Settings
from buzon.store import DestinationKind
from tests.server.harness import ADMIN, PASSWORD, running_server


@pytest.fixture
async def server(hasher: SecretHasher) -> AsyncIterator[BuzonServer]:
    async with running_server(hasher) as server:
        yield server


def url(server: BuzonServer, login: str = ADMIN, passcode: str = PASSWORD) -> str:
    return f"stomp://{login}:{passcode}@127.0.0.1:{server.stomp_port}"


async def test_publish_and_consume_a_queue_with_acks(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        jobs = await client.subscribe("/queue/jobs", ack="client-individual", prefetch=10)
        for n in range(3):
            await client.publish("/queue/jobs", f"job {n}", headers={"n": str(n)})
        got = [await jobs.get(timeout=5) for _ in range(3)]
        assert [m.text for m in got] == ["job 0", "job 1", "job 2"]
        assert [m.headers["n"] for m in got] == ["0", "1", "2"]
        assert got[0].headers["content-type"] == "text/plain;charset=utf-8"
        await got[1].nack(confirm=True)
        again = await jobs.get(timeout=5)
        assert (again.text, again.redelivered) == ("job 1", True)
        for message in (got[0], got[2], again):
            await message.ack(confirm=True)
    queue = server.broker.statistics().queues[0]
    assert (queue.depth, queue.in_flight, queue.acked) == (0, 0, 3)


async def test_publish_priority_reaches_consumers_highest_first(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        for text, priority in [("routine", None), ("later", 0), ("urgent", 9), ("soon", 6)]:
            await client.publish("/queue/triage", text, priority=priority)
        for bad in (10, -1, True):
            with pytest.raises(ValueError, match="priority must be an integer from 0 to 9"):
                await client.publish("/queue/triage", "refused here", priority=bad)
        jobs = await client.subscribe("/queue/triage", ack="auto")
        got = [await jobs.get(timeout=5) for _ in range(4)]
        assert [m.text for m in got] == ["urgent", "soon", "routine", "later"]
        assert [m.headers.get("priority") for m in got] == ["9", "6", None, "0"]
    assert server.broker.statistics().queues[0].published == 4


async def test_channel_fan_out_and_binary_bodies(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as first, AsyncClient(url(server)) as second:
        subs = [await c.subscribe("/topic/news") for c in (first, second)]
        body = bytes(range(256)) + b"\x00tail"
        await first.publish("/topic/news", body, content_type="application/octet-stream")
        for sub in subs:
            message = await sub.get(timeout=5)
            assert message.body == body
            assert message.headers["content-type"] == "application/octet-stream"


async def test_async_iteration_ends_on_unsubscribe(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        sub = await client.subscribe("/queue/iter")
        for n in range(3):
            await client.publish("/queue/iter", str(n))
        seen = []
        async for message in sub:
            seen.append(message.text)
            if len(seen) == 3:
                await sub.unsubscribe()
        assert seen == ["0", "1", "2"]
        with pytest.raises(SubscriptionClosed):
            await sub.get(timeout=1)


async def publish_then_fail(client: AsyncClient) -> None:
    async with client.transaction() as tx:
        await tx.publish("/queue/tx", "never")
        raise RuntimeError("changed my mind")


async def test_transactions_commit_or_abort_together(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        sub = await client.subscribe("/queue/tx")
        with pytest.raises(RuntimeError):
            await publish_then_fail(client)
        async with client.transaction() as tx:
            await tx.publish("/queue/tx", "one")
            await tx.publish("/queue/tx", "two")
            with pytest.raises(TimeoutError):
                await sub.get(timeout=0.2)  # nothing before the commit
        assert [(await sub.get(timeout=5)).text for _ in range(2)] == ["one", "two"]
        with pytest.raises(TimeoutError):
            await sub.get(timeout=0.2)  # and the aborted one never


async def test_broker_refusals_raise_api_errors_with_their_code(server: BuzonServer) -> None:
    with pytest.raises(ApiError) as refused:
        await AsyncClient(url(server, passcode="wrong-password")).connect()
    assert refused.value.code is ErrorCode.AUTH_FAILED
    base = f"http://127.0.0.1:{server.http_port}/api/v1"
    async with httpx.AsyncClient(auth=(ADMIN, PASSWORD)) as http:
        await http.post(f"{base}/queues", json={"name": "vault", "access_key": "open-sesame"})
        await http.post(f"{base}/users", json={"username": "bob", "password": "bob-password"})
    async with AsyncClient(url(server, "bob", "bob-password")) as bob:
        with pytest.raises(ApiError) as denied:
            await bob.publish("/queue/vault", "no key")
        assert denied.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        # the ERROR ended that connection; the client reconnected for the next call
        await bob.publish("/queue/vault", "with key", access_key="open-sesame")
    queue = server.broker.destination(DestinationKind.QUEUE, "vault")
    assert queue is not None
    assert queue.statistics().published == 1


async def test_an_error_ends_subscriptions_with_that_error(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        sub = await client.subscribe("/queue/doomed")
        base = f"http://127.0.0.1:{server.http_port}/api/v1"
        async with httpx.AsyncClient(auth=(ADMIN, PASSWORD)) as http:
            assert (await http.delete(f"{base}/queues/doomed")).status_code == 204
        with pytest.raises(ApiError) as ended:
            await sub.get(timeout=5)
        assert ended.value.code is ErrorCode.DESTINATION_DELETED


async def test_reconnects_and_resubscribes_after_a_broker_restart(hasher: SecretHasher) -> None:
    settings = Settings(
        stomp_port=0,
        http_port=0,
        amqp_port=0,
        amqps_port=0,
        admin_user=ADMIN,
        admin_password=PASSWORD,
    )
    first = BuzonServer(settings, hasher=hasher)
    await first.start()
    port = first.stomp_port
    client = AsyncClient(f"stomp://{ADMIN}:{PASSWORD}@127.0.0.1:{port}", max_reconnect_delay=0.2)
    await client.connect()
    sub = await client.subscribe("/topic/alive")
    await first.stop(grace=1.0)
    second = BuzonServer(dataclasses.replace(settings, stomp_port=port), hasher=hasher)
    await second.start()
    try:
        # publishing waits for the reconnect, then the resubscribed channel receives it
        await client.publish("/topic/alive", "after restart", timeout=10)
        message = await sub.get(timeout=5)
        assert message.text == "after restart"
    finally:
        await client.close()
        await second.stop(grace=1.0)


async def test_unreachable_broker_and_silent_broker_fail_in_time() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(BuzonConnectionError) as refused:
        await AsyncClient(f"stomp://127.0.0.1:{port}").connect()
    assert "cannot reach the broker" in str(refused.value)
    loop = asyncio.get_running_loop()
    silent = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)  # accepts, says nothing
    silent_port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(BuzonConnectionError) as timed_out:
            await AsyncClient(f"stomp://127.0.0.1:{silent_port}", timeout=0.3).connect()
        assert "timed out" in str(timed_out.value)
    finally:
        silent.close()
        await silent.wait_closed()


async def test_a_full_buffer_pauses_reading_and_nothing_is_lost(server: BuzonServer) -> None:
    body = b"x" * 8192
    async with AsyncClient(url(server)) as consumer, AsyncClient(url(server)) as producer:
        sub = await consumer.subscribe("/queue/slow", buffer=10)
        for n in range(200):
            await producer.publish("/queue/slow", body, headers={"n": str(n)}, confirm=n == 199)
        await asyncio.sleep(0.3)  # let everything that will arrive, arrive
        # reading stopped at the buffer's bound plus what one read brought (256 KiB here)
        assert sub.buffered <= 10 + 256 * 1024 // len(body)
        got = [(await sub.get(timeout=5)).headers["n"] for _ in range(200)]
        assert got == [str(n) for n in range(200)]


async def test_publishing_while_the_buffer_is_full_does_not_wait_for_ever(
    server: BuzonServer,
) -> None:
    async with AsyncClient(url(server)) as client:
        requests = await client.subscribe("/queue/requests", buffer=2)
        for n in range(20):
            await client.publish("/queue/requests", str(n), confirm=False)
        await asyncio.sleep(0.1)
        # the buffer is full, yet a confirmed publish (a reply, say) still gets its receipt
        await client.publish("/queue/replies", "reply", timeout=2)
        assert [(await requests.get(timeout=5)).text for _ in range(20)] == [
            str(n) for n in range(20)
        ]


async def test_durable_subscriptions_keep_messages_while_away_until_forgotten(
    server: BuzonServer,
) -> None:
    async with AsyncClient(url(server)) as client:
        first = await client.subscribe("/topic/audit", durable="trail")
        await first.unsubscribe()  # detach only: the broker keeps collecting
        await client.publish("/topic/audit", "while away")
        again = await client.subscribe("/topic/audit", durable="trail")
        assert (await again.get(timeout=5)).text == "while away"
        await again.unsubscribe(forget=True)
        await client.publish("/topic/audit", "nobody keeps this")
        fresh = await client.subscribe("/topic/audit", durable="trail")
        with pytest.raises(TimeoutError):
            await fresh.get(timeout=0.2)


async def test_errors_name_the_broker_without_credentials(server: BuzonServer) -> None:
    client = AsyncClient(url(server, passcode="wrong-password"))
    assert client.url == f"stomp://127.0.0.1:{server.stomp_port}"
    with pytest.raises(LoginRefused) as refused:
        await client.connect()
    assert refused.value.code is ErrorCode.AUTH_FAILED
    assert str(refused.value) == (
        f"127.0.0.1:{server.stomp_port} refused the login: authentication failed"
    )


async def test_client_ack_mode_is_cumulative(server: BuzonServer) -> None:
    async with AsyncClient(url(server)) as client:
        sub = await client.subscribe("/queue/batch", ack="client", prefetch=10)
        for n in range(4):
            await client.publish("/queue/batch", str(n))
        got = [await sub.get(timeout=5) for _ in range(4)]
        await got[2].ack(confirm=True)  # settles 0, 1 and 2 at once
        await sub.unsubscribe()  # 3 goes back
        again = await client.subscribe("/queue/batch", ack="client")
        rest = await again.get(timeout=5)
        assert (rest.text, rest.redelivered) == ("3", True)
        with pytest.raises(TimeoutError):
            await again.get(timeout=0.2)
