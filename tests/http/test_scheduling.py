"""Delayed delivery, retries with back-off and dead letters with reasons, over HTTP (and
STOMP beside it), on a real broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Error, Message, Nack
from tests.http.helpers import (
    Auth,
    admin_auth,
    api,
    create,
    error_of,
    inspect,
    new_user,
    publish,
    pull,
    stomp_send,
    stomp_subscribe,
    unique,
)
from tests.http.scrape import scrape, value
from tests.server.harness import Client, running_server

LATE = 2.0
"""Seconds a due message may take to arrive on a test machine (the broker aims at 0.1)."""


async def publish_later(
    http: httpx.AsyncClient, auth: Auth, queue: str, body: str, **timing: int
) -> str:
    answer = await http.post(
        f"/queues/{queue}/messages", json={"body": body, **timing}, headers=auth
    )
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["message_id"]
    return message_id


async def scheduled(http: httpx.AsyncClient, auth: Auth, queue: str) -> list[dict[str, Any]]:
    answer = await http.get(f"/queues/{queue}/scheduled", headers=auth)
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


async def test_a_delayed_message_waits_without_blocking_those_behind_it(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "later")
    sent = time.monotonic()
    delayed = await publish_later(http, admin, "later", "in a while", delay_ms=1000)
    await publish(http, admin, "queues", "later", "now")

    (first,) = await pull(http, admin, "later", max=10)
    assert first["body"] == "now"
    info = await inspect(http, admin, "queues", "later")
    assert (info["depth"], info["scheduled"], info["scheduled_total"]) == (0, 1, 1)

    (second,) = await pull(http, admin, "later", max=10, wait_ms=5000)
    waited = time.monotonic() - sent
    assert second["message_id"] == delayed
    assert second["body"] == "in a while"
    assert not second["redelivered"]
    assert "delay" not in second["headers"]
    assert 1.0 <= waited <= 1.0 + LATE
    assert (await inspect(http, admin, "queues", "later"))["scheduled"] == 0


async def test_delay_zero_and_a_past_time_deliver_at_once(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "prompt")
    await publish_later(http, admin, "prompt", "zero", delay_ms=0)
    past = int((time.time() - 60) * 1000)
    await publish_later(http, admin, "prompt", "past", deliver_at_ms=past)
    info = await inspect(http, admin, "queues", "prompt")
    assert (info["depth"], info["scheduled"], info["scheduled_total"]) == (2, 0, 0)
    assert [m["body"] for m in await pull(http, admin, "prompt", max=10)] == ["zero", "past"]


async def test_deliver_at_holds_a_message_until_that_time(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "at")
    when = time.time() + 1.5
    await publish_later(http, admin, "at", "on time", deliver_at_ms=int(when * 1000))
    (listed,) = await scheduled(http, admin, "at")
    assert listed["deliver_at_ms"] == int(when * 1000)
    (message,) = await pull(http, admin, "at", wait_ms=5000)
    assert message["body"] == "on time"
    assert when - 0.001 <= time.time() <= when + LATE


@pytest.fixture
async def bounded(hasher: SecretHasher) -> AsyncIterator[BuzonServer]:
    async with running_server(hasher, max_delay_ms=10_000) as server:
        yield server


async def test_bad_times_are_refused_naming_the_field_and_nothing_is_queued(
    bounded: BuzonServer,
) -> None:
    async with api(bounded.http_port) as http:
        admin = await admin_auth(http)
        await create(http, admin, "queues", "strict")
        await create(http, admin, "channels", "news")
        future = int(time.time() * 1000) + 60_000
        for fields, named in (
            ({"delay_ms": -1}, "delay_ms"),
            ({"delay_ms": "5"}, "delay_ms"),
            ({"delay_ms": 1.5}, "delay_ms"),
            ({"delay_ms": 10_001}, "delay_ms"),
            ({"deliver_at_ms": -5}, "deliver_at_ms"),
            ({"deliver_at_ms": future}, "deliver_at_ms"),
            ({"delay_ms": 5, "deliver_at_ms": future}, "delay_ms or deliver_at_ms"),
            ({"delay_ms": 5, "headers": {"delay": "5"}}, "delay_ms"),
        ):
            answer = await http.post(
                "/queues/strict/messages", json={"body": "x", **fields}, headers=admin
            )
            assert named in error_of(answer, ErrorCode.BAD_REQUEST), fields
        answer = await http.post(
            "/channels/news/messages", json={"body": "x", "delay_ms": 5}, headers=admin
        )
        assert "queues" in error_of(answer, ErrorCode.BAD_HEADER_VALUE)
        assert await publish_later(http, admin, "strict", "the bound itself", delay_ms=10_000)
        info = await inspect(http, admin, "queues", "strict")
        assert (info["depth"], info["scheduled"]) == (0, 1)


async def test_a_bad_delay_header_over_stomp_is_an_error_naming_it(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "stomped")
    for header, wrong in (("delay", "-1"), ("delay", "soon"), ("deliver-at", "1e9")):
        publisher = await Client.connected(server.stomp_port)
        await publisher.send(stomp_send("/queue/stomped", b"x", receipt="r", **{header: wrong}))
        error = await publisher.expect(Error)
        assert header in error.message + error.body.decode()
    good = await Client.connected(server.stomp_port)
    await good.send(stomp_send("/queue/stomped", b"fine", receipt="ok", delay="60000"))
    await good.receipt("ok")
    info = await inspect(http, admin, "queues", "stomped")
    assert (info["depth"], info["scheduled"]) == (0, 1)


async def test_the_owner_lists_delivers_now_and_cancels_scheduled_messages(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "parked")
    first = await publish_later(http, admin, "parked", "first", delay_ms=60_000)
    second = await http.post(
        "/queues/parked/messages",
        json={"body": "second", "headers": {"x-job": "7"}, "delay_ms": 120_000},
        headers=admin,
    )
    second_id = second.json()["message_id"]

    listed = await scheduled(http, admin, "parked")
    assert [m["message_id"] for m in listed] == [first, second_id]
    assert listed[1]["headers"] == {"x-job": "7"}
    assert listed[1]["body"] == "second"
    assert 55 < listed[0]["seconds_left"] <= 60
    assert 115 < listed[1]["seconds_left"] <= 120
    assert listed[0]["deliver_at"].startswith(time.strftime("%Y-", time.gmtime()))

    stranger = await new_user(http, unique("stranger"))
    for attempt in (
        http.post(f"/queues/parked/scheduled/{first}/deliver", headers=stranger),
        http.delete(f"/queues/parked/scheduled/{first}", headers=stranger),
    ):
        error_of(await attempt, ErrorCode.ACCESS_DENIED)
    assert len(await scheduled(http, stranger, "parked")) == 2  # a public queue: may consume

    delivered = await http.post(f"/queues/parked/scheduled/{first}/deliver", headers=admin)
    assert delivered.status_code == 204, delivered.text
    (now,) = await pull(http, admin, "parked", max=10)
    assert (now["message_id"], now["redelivered"]) == (first, False)

    cancelled = await http.delete(f"/queues/parked/scheduled/{second_id}", headers=admin)
    assert cancelled.status_code == 204, cancelled.text
    info = await inspect(http, admin, "queues", "parked")
    assert (info["depth"], info["scheduled"], info["in_flight"]) == (0, 0, 1)
    for gone in (
        http.delete(f"/queues/parked/scheduled/{second_id}", headers=admin),
        http.post(f"/queues/parked/scheduled/{first}/deliver", headers=admin),
    ):
        detail = error_of(await gone, ErrorCode.NOT_FOUND)
        assert "is not scheduled" in detail


async def test_a_protected_queue_lists_its_scheduled_messages_only_with_its_key(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "secret", key="open sesame 42")
    await publish_later(http, admin, "secret", "hidden", delay_ms=60_000)
    stranger = await new_user(http, unique("stranger"))
    error_of(
        await http.get("/queues/secret/scheduled", headers=stranger),
        ErrorCode.ACCESS_KEY_REQUIRED,
    )
    keyed = await http.get(
        "/queues/secret/scheduled", headers={**stranger, "X-Access-Key": "open sesame 42"}
    )
    assert [m["body"] for m in keyed.json()["messages"]] == ["hidden"]


async def test_a_nack_may_delay_the_redelivery(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "flaky")
    await publish(http, admin, "queues", "flaky", "try again")
    (taken,) = await pull(http, admin, "flaky")
    refused = time.monotonic()
    answer = await http.post(
        "/queues/flaky/nack",
        json={"receipts": [taken["receipt"]], "requeue_delay_ms": 500},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    info = await inspect(http, admin, "queues", "flaky")
    assert (info["depth"], info["in_flight"], info["scheduled"], info["retried"]) == (0, 0, 1, 1)
    (again,) = await pull(http, admin, "flaky", wait_ms=5000)
    assert 0.5 <= time.monotonic() - refused <= 0.5 + LATE
    assert (again["body"], again["redelivered"]) == ("try again", True)


async def test_a_nack_without_requeue_dead_letters_with_the_reason_and_the_error(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    policy = {"dead_letter_queue": "failed"}
    await http.post("/queues", json={"name": "work", "policy": policy}, headers=admin)
    original = await publish(http, admin, "queues", "work", "poison", {"x-job": "9"})
    (taken,) = await pull(http, admin, "work")
    answer = await http.post(
        "/queues/work/nack",
        json={"receipts": [taken["receipt"]], "requeue": False, "error": "bad input: no id"},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text

    peeked = await http.get("/queues/failed/messages", headers=admin)
    (dead,) = peeked.json()["messages"]
    headers = dead["headers"]
    assert dead["body"] == "poison"
    assert headers["x-dead-letter-reason"] == "rejected"
    assert headers["x-original-destination"] == "/queue/work"
    assert headers["x-original-message-id"] == original
    assert headers["x-delivery-count"] == "1"
    assert headers["x-last-error"] == "bad input: no id"
    assert abs(int(headers["x-dead-lettered-at"]) / 1000 - time.time()) < 60
    assert headers["x-job"] == "9"
    info = await inspect(http, admin, "queues", "work")
    assert (info["depth"], info["in_flight"]) == (0, 0)
    assert info["dead_lettered_by_reason"] == {"rejected": 1}

    samples = await scrape(server.http_port, admin)
    reason = {"kind": "queue", "name": "work", "reason": "rejected"}
    assert value(samples, "buzon_messages_dead_lettered_by_reason_total", **reason) == 1


async def test_bad_nack_fields_are_refused_and_the_lease_is_kept(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "held")
    await publish(http, admin, "queues", "held", "mine")
    (taken,) = await pull(http, admin, "held")
    receipt = taken["receipt"]
    for fields, named in (
        ({"requeue_delay_ms": -1}, "requeue_delay_ms"),
        ({"requeue_delay_ms": "10"}, "requeue_delay_ms"),
        ({"requeue_delay_ms": 31 * 24 * 3600 * 1000}, "requeue_delay_ms"),
        ({"requeue": "no"}, "requeue"),
        ({"requeue": False, "requeue_delay_ms": 1000}, "requeue_delay_ms"),
        ({"error": "x" * 1025}, "error"),
    ):
        answer = await http.post(
            "/queues/held/nack", json={"receipts": [receipt], **fields}, headers=admin
        )
        assert named in error_of(answer, ErrorCode.BAD_REQUEST), fields
    acked = await http.post("/queues/held/ack", json={"receipts": [receipt]}, headers=admin)
    assert acked.status_code == 200, acked.text


async def test_stomp_nack_requeue_false_dead_letters_and_the_peek_shows_why(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    policy = {"dead_letter_queue": "rejects"}
    await http.post("/queues", json={"name": "inbox", "policy": policy}, headers=admin)
    await publish(http, admin, "queues", "inbox", "unreadable")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/inbox", ack="client-individual"))
    await consumer.receipt("sub")
    delivered = await consumer.expect(Message)
    assert delivered.ack is not None
    refusal = (("requeue", "false"), ("error", "cannot parse"))
    await consumer.send(Nack(id=delivered.ack, receipt="gone", headers=refusal))
    await consumer.receipt("gone")

    (dead,) = (await http.get("/queues/rejects/messages", headers=admin)).json()["messages"]
    assert dead["headers"]["x-dead-letter-reason"] == "rejected"
    assert dead["headers"]["x-delivery-count"] == "1"
    assert dead["headers"]["x-last-error"] == "cannot parse"


async def test_retries_back_off_as_the_policy_says(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    policy = {"retry_delay_ms": 200, "retry_multiplier": 2.0, "retry_max_delay_ms": 10_000}
    created = await http.post("/queues", json={"name": "backoff", "policy": policy}, headers=admin)
    assert created.status_code == 201, created.text
    await publish(http, admin, "queues", "backoff", "again and again")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/backoff", ack="client-individual"))
    await consumer.receipt("sub")

    waits = []
    delivered = await consumer.expect(Message)
    for _ in range(2):
        assert delivered.ack is not None
        refused = time.monotonic()
        await consumer.send(Nack(id=delivered.ack))
        delivered = await consumer.expect(Message)
        waits.append(time.monotonic() - refused)
        assert delivered.redelivered
    assert 0.2 <= waits[0] <= 0.2 + LATE
    assert 0.4 <= waits[1] <= 0.4 + LATE
    info = await inspect(http, admin, "queues", "backoff")
    assert info["retried"] == 2

    samples = await scrape(server.http_port, admin)
    labels = {"kind": "queue", "name": "backoff"}
    assert value(samples, "buzon_messages_retried_total", **labels) == 2
    assert value(samples, "buzon_queue_scheduled", **labels) == 0


async def test_scheduled_messages_are_measured(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "timed")
    await publish_later(http, admin, "timed", "a", delay_ms=60_000)
    await publish_later(http, admin, "timed", "b", delay_ms=60_000)
    samples = await scrape(server.http_port, admin)
    labels = {"kind": "queue", "name": "timed"}
    assert value(samples, "buzon_queue_scheduled", **labels) == 2
    assert value(samples, "buzon_messages_scheduled_total", **labels) == 2
    assert value(samples, "buzon_queue_depth", **labels) == 0
    listed = (await http.get("/queues", headers=admin)).json()
    assert [(q["name"], q["scheduled"]) for q in listed] == [("timed", 2)]
