"""``GET /metrics``: what a Prometheus scrape sees after real STOMP and HTTP traffic."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Ack, Message, Receipt
from buzon.store.sqlite import SQLiteStore
from tests.http.helpers import Auth, admin_auth, api, error_of, new_user, publish, pull
from tests.http.scrape import scrape, scrape_until, value
from tests.server.harness import ADMIN, PASSWORD, TIMEOUT, Client, running_server
from tests.server.test_messaging import send, subscribed


async def test_queue_counters_follow_publishes_deliveries_and_acks(
    server: BuzonServer, admin: Auth
) -> None:
    consumer = await subscribed(server.stomp_port, "/queue/q", ack="client-individual")
    producer = await Client.connected(server.stomp_port)
    await producer.send(send("/queue/q", b"12345"), send("/queue/q", b"67"))
    await producer.send(send("/queue/q", b"8", receipt="sent"))
    await producer.expect(Receipt)
    messages = [await consumer.expect(Message) for _ in range(3)]
    for message in messages[:2]:
        assert message.ack is not None
        await consumer.send(Ack(id=message.ack, transaction=None, receipt=None))
    await consumer.send(send("/queue/other", b"x", receipt="after-acks"))
    await consumer.receipt("after-acks")

    samples = await scrape(server.http_port, admin)
    q = {"kind": "queue", "name": "q"}
    assert value(samples, "buzon_messages_published_total", **q) == 3
    assert value(samples, "buzon_messages_delivered_total", **q) == 3
    assert value(samples, "buzon_messages_acked_total", **q) == 2
    assert value(samples, "buzon_messages_redelivered_total", **q) == 0
    assert value(samples, "buzon_queue_depth", **q) == 0
    assert value(samples, "buzon_queue_in_flight", **q) == 1
    assert value(samples, "buzon_queue_bytes", **q) == 1  # the unacked b"8"
    assert value(samples, "buzon_consumers", **q) == 1
    assert value(samples, "buzon_queue_depth", kind="queue", name="other") == 1
    assert value(samples, "buzon_queued_bytes") == 2
    assert value(samples, "buzon_broker_messages_published_total") == 4
    assert value(samples, "buzon_connections", transport="tcp", protocol="stomp/1.2") == 2


async def test_channel_counters_count_each_subscriber(server: BuzonServer, admin: Auth) -> None:
    listeners = [await subscribed(server.stomp_port, "/topic/news") for _ in range(2)]
    producer = await Client.connected(server.stomp_port)
    await producer.send(send("/topic/news", b"hello", receipt="sent"))
    await producer.expect(Receipt)
    for listener in listeners:
        await listener.expect(Message)

    samples = await scrape(server.http_port, admin)
    news = {"kind": "channel", "name": "news"}
    assert value(samples, "buzon_messages_published_total", **news) == 1
    assert value(samples, "buzon_messages_delivered_total", **news) == 2
    assert value(samples, "buzon_messages_dropped_total", **news) == 0
    assert value(samples, "buzon_consumers", **news) == 2
    assert value(samples, "buzon_queue_depth", **news) is None  # a channel has no depth


async def test_a_dead_lettered_message_is_counted_on_its_queue(
    http: httpx.AsyncClient, server: BuzonServer, admin: Auth
) -> None:
    policy = {"message_ttl_ms": 60_000, "dead_letter_queue": "graveyard"}
    created = await http.post("/queues", json={"name": "fresh", "policy": policy}, headers=admin)
    assert created.status_code == 201, created.text
    past = str(int((time.time() - 1) * 1000))
    await publish(http, admin, "queues", "fresh", "stale", headers={"expires": past})
    assert await pull(http, admin, "fresh", max=10) == []  # retires the stale one on the way

    samples = await scrape(server.http_port, admin)
    fresh = {"kind": "queue", "name": "fresh"}
    assert value(samples, "buzon_messages_retired_total", **fresh) == 1
    assert value(samples, "buzon_messages_dead_lettered_total", **fresh) == 1
    assert value(samples, "buzon_queue_depth", kind="queue", name="graveyard") == 1


async def test_lapsed_deliveries_and_late_acks_are_counted_on_their_queue(
    server: BuzonServer, admin: Auth
) -> None:
    consumer = await subscribed(
        server.stomp_port, "/queue/leased", ack="client-individual", **{"ack-timeout-ms": "50"}
    )
    producer = await Client.connected(server.stomp_port)
    await producer.send(send("/queue/leased", b"job", receipt="sent"))
    await producer.expect(Receipt)
    first = await consumer.expect(Message)
    again = await consumer.expect(Message)  # it lapsed and came back to the only consumer
    assert again.redelivered
    assert first.ack is not None
    assert again.ack is not None
    await consumer.send(Ack(id=again.ack, transaction=None, receipt="acked"))
    await consumer.receipt("acked")
    await consumer.send(Ack(id=first.ack, transaction=None, receipt="late"))
    await consumer.receipt("late")

    samples = await scrape(server.http_port, admin)
    leased = {"kind": "queue", "name": "leased"}
    assert value(samples, "buzon_messages_lease_expired_total", **leased) == 1
    assert value(samples, "buzon_late_settles_total", **leased) == 1
    assert value(samples, "buzon_messages_acked_total", **leased) == 1


async def test_a_retired_message_without_dead_letter_queue_is_not_dead_lettered(
    http: httpx.AsyncClient, server: BuzonServer, admin: Auth
) -> None:
    await http.post("/queues", json={"name": "brief"}, headers=admin)
    past = str(int((time.time() - 1) * 1000))
    await publish(http, admin, "queues", "brief", "stale", headers={"expires": past})
    assert await pull(http, admin, "brief", max=10) == []

    samples = await scrape(server.http_port, admin)
    brief = {"kind": "queue", "name": "brief"}
    assert value(samples, "buzon_messages_retired_total", **brief) == 1
    assert value(samples, "buzon_messages_dead_lettered_total", **brief) == 0


async def test_store_commit_latency_is_measured_with_sqlite(
    hasher: SecretHasher, tmp_path: Path
) -> None:
    async with running_server(hasher, store=SQLiteStore(tmp_path)) as server:
        producer = await Client.connected(server.stomp_port)
        await producer.send(send("/queue/durable", b"kept", receipt="stored"))
        await producer.expect(Receipt)  # only once committed
        async with api(server.http_port) as http:
            samples = await scrape(server.http_port, await admin_auth(http))
    count = value(samples, "buzon_store_commit_seconds_count")
    assert count is not None
    assert count >= 1
    total = value(samples, "buzon_store_commit_seconds_sum")
    assert total is not None
    assert total > 0
    assert value(samples, "buzon_store_commit_seconds_bucket", le="+Inf") == count
    on_disk = value(samples, "buzon_store_bytes")  # what the files hold: tests/store
    assert on_disk is not None
    assert on_disk > 0
    assert value(samples, "buzon_storage_full") == 0  # the real disk is over its floor


async def test_a_memory_store_reports_no_commit_latency(server: BuzonServer, admin: Auth) -> None:
    samples = await scrape(server.http_port, admin)
    assert value(samples, "buzon_store_commit_seconds_count") is None
    assert value(samples, "buzon_store_bytes") is None
    assert value(samples, "buzon_storage_full") is None


async def test_a_blocked_event_loop_shows_as_lag(server: BuzonServer, admin: Auth) -> None:
    # Longer than the sampling period, so one sample's wake-up falls inside the block and
    # comes at least 0.3 s late.
    time.sleep(0.8)  # noqa: ASYNC251 - blocking the loop the broker runs on is the point
    samples = await scrape_until(
        server.http_port,
        admin,
        lambda s: (value(s, "buzon_event_loop_lag_max_seconds") or 0) >= 0.2,
    )
    over_all = value(samples, "buzon_event_loop_lag_seconds_bucket", le="+Inf") or 0
    under_100ms = value(samples, "buzon_event_loop_lag_seconds_bucket", le="0.1") or 0
    assert over_all - under_100ms >= 1  # the sample that waited for us is over 100 ms
    assert (value(samples, "buzon_event_loop_lag_last_seconds") or 0) >= 0


async def test_process_memory_uptime_and_version_are_reported(
    server: BuzonServer, admin: Auth
) -> None:
    samples = await scrape(server.http_port, admin)
    assert (value(samples, "process_resident_memory_bytes") or 0) > 1024 * 1024
    uptime = value(samples, "buzon_uptime_seconds")
    assert uptime is not None
    assert 0 <= uptime < 60
    assert any(name == "buzon_info" for name, _ in samples)


async def test_metrics_need_an_admin_by_default(server: BuzonServer, admin: Auth) -> None:
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        error_of(await client.get(url), ErrorCode.NOT_AUTHENTICATED)
        error_of(
            await client.get(url, headers={"Authorization": "Bearer not-a-token"}),
            ErrorCode.NOT_AUTHENTICATED,
        )
        async with api(server.http_port) as http:
            user = await new_user(http, "watcher")
        error_of(await client.get(url, headers=user), ErrorCode.ACCESS_DENIED)
        basic = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
        answer = await client.get(url, headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200
    assert "buzon_connections_opened_total" in answer.text


async def test_metrics_auth_off_lets_a_scraper_in_without_credentials(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, metrics_auth=False) as server:
        samples = await scrape(server.http_port, {})
    assert value(samples, "buzon_connections_opened_total") == 0


async def test_metrics_stay_out_of_the_api_document(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert not any("metrics" in path for path in spec["paths"])


async def test_openmetrics_is_served_to_a_scraper_that_asks(
    server: BuzonServer, admin: Auth
) -> None:
    accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        answer = await client.get(
            f"http://127.0.0.1:{server.http_port}/metrics", headers={**admin, "Accept": accept}
        )
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")
