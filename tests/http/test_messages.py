"""Messages over HTTP: publish as JSON, base64 or raw; pull with a lease; ack and nack."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.server.config import Settings
from buzon.stomp import Message
from tests.http.helpers import (
    KEY,
    Auth,
    admin_auth,
    api,
    create,
    error_of,
    inspect,
    new_user,
    publish,
    pull,
    stomp_subscribe,
    until_slowed,
)
from tests.server.harness import ADMIN, PASSWORD, Client, running_server

BINARY = bytes(range(256)) + b"\x00\xff"


async def counts(http: httpx.AsyncClient, auth: Auth, queue: str) -> tuple[int, int, int]:
    """A queue's (depth, in_flight, published)."""
    view = await inspect(http, auth, "queues", queue)
    return view["depth"], view["in_flight"], view["published"]


async def settle(
    http: httpx.AsyncClient, auth: Auth, queue: str, verb: str, receipts: list[str]
) -> httpx.Response:
    return await http.post(f"/queues/{queue}/{verb}", json={"receipts": receipts}, headers=auth)


async def test_json_message_round_trips_through_a_pull(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "jobs")
    headers = {"x-urgency": "high", "x-trace": "a:b\nc ñ"}
    message_id = await publish(http, admin, "queues", "jobs", "hello wörld", headers)
    before = time.time()
    [pulled] = await pull(http, admin, "jobs", lease_ms=60_000)
    assert pulled["message_id"] == message_id
    assert pulled["destination"] == "/queue/jobs"
    assert pulled["body"] == "hello wörld"
    assert pulled["body_base64"] is None
    assert pulled["headers"] == headers
    assert pulled["redelivered"] is False
    assert pulled["receipt"]
    lease_end = datetime.fromisoformat(pulled["lease_expires_at"]).timestamp()
    assert 55 < lease_end - before < 65


async def test_base64_body_carries_binary_data(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "bin")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/bin"))
    await consumer.receipt("sub")
    published = await http.post(
        "/queues/bin/messages",
        json={"body_base64": base64.b64encode(BINARY).decode()},
        headers=admin,
    )
    assert published.status_code == 201
    delivered = await consumer.expect(Message)
    assert delivered.body == BINARY
    assert delivered.message_id == published.json()["message_id"]


@pytest.mark.parametrize(
    ("content", "content_type", "text"),
    [
        (BINARY, "application/octet-stream", None),
        ("plain text ✓".encode(), "text/plain; charset=utf-8", "plain text ✓"),
        (b"<a/>", "application/xml", "<a/>"),
    ],
)
async def test_raw_bodies_keep_their_content_type(
    http: httpx.AsyncClient, admin: Auth, content: bytes, content_type: str, text: str | None
) -> None:
    await create(http, admin, "queues", "raw")
    response = await http.post(
        "/queues/raw/messages", content=content, headers={**admin, "Content-Type": content_type}
    )
    assert response.status_code == 201
    [pulled] = await pull(http, admin, "raw")
    assert pulled["headers"] == {"content-type": content_type}
    assert pulled["body"] == text
    if text is None:
        assert base64.b64decode(pulled["body_base64"]) == content


async def test_an_empty_json_message_is_an_empty_body(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "empty")
    assert (await http.post("/queues/empty/messages", json={}, headers=admin)).status_code == 201
    [pulled] = await pull(http, admin, "empty")
    assert (pulled["body"], pulled["headers"]) == ("", {})


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ({"body": "x", "body_base64": "eA=="}, "give body or body_base64, not both"),
        ({"body_base64": "not base64!"}, "body_base64 is not base64"),
        ({"body": "x", "headers": {"destination": "/queue/other"}}, "is reserved"),
        ({"body": "x", "headers": {"message-id": "forged"}}, "is reserved"),
        ({"body": "x", "headers": {"access-key": "leak"}}, "is reserved"),
        ({"body": "x", "headers": {"": "empty name"}}, "is empty or too long"),
        ({"body": "x", "headers": {"big": "v" * 8193}}, "is empty or too long"),
        ({"body": "x", "headers": {f"h{i}": "v" for i in range(65)}}, "at most 64 headers"),
        ({"body": "x", "headers": {"n": 1}}, "headers.n: "),
        ({"body": 5}, "body: "),
        ({"body": "x", "urgency": "high"}, "urgency: Extra inputs"),
        ({"body": "x", "priority": 10}, "priority: Input should be less than or equal to 9"),
        ({"body": "x", "priority": -1}, "priority: Input should be greater than or equal to 0"),
        ({"body": "x", "priority": "4"}, "priority: Input should be a valid integer"),
        ({"body": "x", "priority": 4.5}, "priority: Input should be a valid integer"),
        ([], "Input should be"),
    ],
)
async def test_invalid_json_messages_are_refused_and_not_published(
    http: httpx.AsyncClient, admin: Auth, message: Any, detail: str
) -> None:
    await create(http, admin, "queues", "strict")
    response = await http.post("/queues/strict/messages", json=message, headers=admin)
    assert detail in error_of(response, ErrorCode.BAD_REQUEST)
    assert await counts(http, admin, "strict") == (0, 0, 0)


async def test_malformed_json_message_is_refused(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "strict")
    response = await http.post(
        "/queues/strict/messages",
        content=b'{"body": "unterminated',
        headers={**admin, "Content-Type": "application/json"},
    )
    error_of(response, ErrorCode.BAD_REQUEST)
    assert await counts(http, admin, "strict") == (0, 0, 0)


@pytest.mark.parametrize("kind", ["queues", "channels"])
async def test_publishing_never_creates_a_destination(
    http: httpx.AsyncClient, admin: Auth, kind: str
) -> None:
    response = await http.post(f"/{kind}/nowhere/messages", json={"body": "x"}, headers=admin)
    error_of(response, ErrorCode.DESTINATION_NOT_FOUND)
    error_of(await http.get(f"/{kind}/nowhere", headers=admin), ErrorCode.DESTINATION_NOT_FOUND)


async def test_http_publishes_reach_stomp_consumers(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "work")
    await create(http, admin, "channels", "news")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/work"))
    await consumer.receipt("sub")
    listeners = [await Client.connected(server.stomp_port) for _ in range(2)]
    for listener in listeners:
        await listener.send(stomp_subscribe("/topic/news"))
        await listener.receipt("sub")

    await publish(http, admin, "queues", "work", "job", {"kind": "resize"})
    await publish(http, admin, "channels", "news", "extra!", {"edition": "late"})
    job = await consumer.expect(Message)
    assert (job.destination, job.body) == ("/queue/work", b"job")
    assert ("kind", "resize") in job.headers
    for listener in listeners:
        news = await listener.expect(Message)
        assert (news.destination, news.body) == ("/topic/news", b"extra!")
        assert ("edition", "late") in news.headers


async def test_a_channel_message_with_no_subscriber_is_gone(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "channels", "void")
    await publish(http, admin, "channels", "void", "into the void")
    late = await Client.connected(server.stomp_port)
    await late.send(stomp_subscribe("/topic/void"))
    await late.receipt("sub")
    assert await late.nothing_within(0.1)
    assert (await inspect(http, admin, "channels", "void"))["published"] == 1


async def test_pull_takes_the_oldest_messages_up_to_max(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "fifo")
    for i in range(5):
        await publish(http, admin, "queues", "fifo", f"m{i}")
    first = await pull(http, admin, "fifo", max=3)
    assert [m["body"] for m in first] == ["m0", "m1", "m2"]
    assert len({m["receipt"] for m in first}) == 3
    rest = await pull(http, admin, "fifo", max=100)
    assert [m["body"] for m in rest] == ["m3", "m4"]
    assert await counts(http, admin, "fifo") == (0, 5, 5)


async def test_pull_without_a_body_takes_one_message(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "defaults")
    await publish(http, admin, "queues", "defaults", "one")
    await publish(http, admin, "queues", "defaults", "two")
    response = await http.post("/queues/defaults/pull", headers=admin)
    assert [m["body"] for m in response.json()["messages"]] == ["one"]


async def test_pull_from_an_empty_queue_waits_at_most_wait_ms(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "idle")
    started = time.monotonic()
    assert await pull(http, admin, "idle") == []
    assert await pull(http, admin, "idle", wait_ms=200) == []
    assert 0.2 <= time.monotonic() - started < 2


async def test_a_waiting_pull_returns_as_soon_as_a_message_arrives(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "poll")
    waiting = asyncio.create_task(pull(http, admin, "poll", wait_ms=20_000))
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done
    await publish(http, admin, "queues", "poll", "finally")
    messages = await asyncio.wait_for(waiting, 5)
    assert [m["body"] for m in messages] == ["finally"]


async def test_a_waiting_pull_ends_when_its_queue_is_deleted(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "doomed")
    waiting = asyncio.create_task(
        http.post("/queues/doomed/pull", json={"wait_ms": 20_000}, headers=admin)
    )
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done
    assert (await http.delete("/queues/doomed", headers=admin)).status_code == 204
    response = await asyncio.wait_for(waiting, 5)
    assert error_of(response, ErrorCode.DESTINATION_NOT_FOUND) == "/queue/doomed does not exist"


async def test_an_expired_lease_returns_the_message_marked_redelivered(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "lease")
    message_id = await publish(http, admin, "queues", "lease", "slow work")
    [first] = await pull(http, admin, "lease", lease_ms=1_000)
    assert first["redelivered"] is False
    assert await pull(http, admin, "lease") == []
    [again] = await pull(http, admin, "lease", wait_ms=5_000)
    assert (again["message_id"], again["body"], again["redelivered"]) == (
        message_id,
        "slow work",
        True,
    )
    late = await settle(http, admin, "lease", "ack", [first["receipt"]])
    error_of(late, ErrorCode.UNKNOWN_RECEIPT)
    assert (await settle(http, admin, "lease", "ack", [again["receipt"]])).status_code == 200
    assert await counts(http, admin, "lease") == (0, 0, 1)


async def test_ack_removes_messages_for_good(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "done")
    for body in ("a", "b"):
        await publish(http, admin, "queues", "done", body)
    pulled = await pull(http, admin, "done", max=2)
    acked = await settle(http, admin, "done", "ack", [m["receipt"] for m in pulled])
    assert acked.json() == {"settled": 2}
    assert await counts(http, admin, "done") == (0, 0, 2)
    twice = await settle(http, admin, "done", "ack", [pulled[0]["receipt"]])
    error_of(twice, ErrorCode.UNKNOWN_RECEIPT)
    assert await pull(http, admin, "done") == []


async def test_nack_returns_messages_in_their_original_order(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "retry")
    for body in ("a", "b", "c", "d"):
        await publish(http, admin, "queues", "retry", body)
    pulled = await pull(http, admin, "retry", max=3)
    nacked = await settle(
        http, admin, "retry", "nack", [pulled[2]["receipt"], pulled[0]["receipt"]]
    )
    assert nacked.json() == {"settled": 2}
    assert await counts(http, admin, "retry") == (3, 1, 4)
    again = await pull(http, admin, "retry", max=10)
    assert [(m["body"], m["redelivered"]) for m in again] == [
        ("a", True),
        ("c", True),
        ("d", False),
    ]


async def test_settling_is_all_or_none(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "atomic")
    await publish(http, admin, "queues", "atomic", "keep me")
    [pulled] = await pull(http, admin, "atomic")
    for verb in ("ack", "nack"):
        mixed = await settle(http, admin, "atomic", verb, [pulled["receipt"], "bogus"])
        assert "bogus" in error_of(mixed, ErrorCode.UNKNOWN_RECEIPT)
        twice = await settle(http, admin, "atomic", verb, [pulled["receipt"]] * 2)
        assert error_of(twice, ErrorCode.BAD_REQUEST) == "a receipt is listed twice"
    assert await counts(http, admin, "atomic") == (0, 1, 1)
    assert (await settle(http, admin, "atomic", "ack", [pulled["receipt"]])).status_code == 200


async def test_receipts_settle_only_the_pullers_own_leases(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, "alice")
    bob = await new_user(http, "bob")
    await create(http, alice, "queues", "shared")
    await create(http, alice, "queues", "elsewhere")
    await publish(http, alice, "queues", "shared", "alice's")
    [pulled] = await pull(http, alice, "shared")
    receipt = pulled["receipt"]
    for who in (bob, admin):
        for verb in ("ack", "nack"):
            error_of(await settle(http, who, "shared", verb, [receipt]), ErrorCode.UNKNOWN_RECEIPT)
    wrong_queue = await settle(http, alice, "elsewhere", "ack", [receipt])
    error_of(wrong_queue, ErrorCode.UNKNOWN_RECEIPT)
    assert await counts(http, alice, "shared") == (0, 1, 1)
    assert (await settle(http, alice, "shared", "ack", [receipt])).status_code == 200


@pytest.mark.parametrize(
    ("request_body", "detail"),
    [
        ({"max": 0}, "max: "),
        ({"max": 101}, "max: "),
        ({"lease_ms": 999}, "lease_ms: "),
        ({"lease_ms": 12 * 3600 * 1000 + 1}, "lease_ms: "),
        ({"wait_ms": -1}, "wait_ms: "),
        ({"wait_ms": 20_001}, "wait_ms: "),
        ({"max": "ten"}, "max: "),
        ({"batch": 3}, "batch: Extra inputs"),
    ],
)
async def test_invalid_pulls_are_refused_and_take_nothing(
    http: httpx.AsyncClient, admin: Auth, request_body: dict[str, Any], detail: str
) -> None:
    await create(http, admin, "queues", "guarded")
    await publish(http, admin, "queues", "guarded", "untouched")
    response = await http.post("/queues/guarded/pull", json=request_body, headers=admin)
    assert error_of(response, ErrorCode.BAD_REQUEST).startswith(detail)
    assert await counts(http, admin, "guarded") == (1, 0, 1)


@pytest.mark.parametrize("receipts", [[], [f"r{i}" for i in range(101)], "r1", [1]])
async def test_invalid_receipt_lists_are_refused(
    http: httpx.AsyncClient, admin: Auth, receipts: Any
) -> None:
    await create(http, admin, "queues", "guarded")
    response = await http.post("/queues/guarded/ack", json={"receipts": receipts}, headers=admin)
    assert error_of(response, ErrorCode.BAD_REQUEST).startswith("receipts")


async def test_a_full_broker_answers_429_with_retry_after(hasher: SecretHasher) -> None:
    async with (
        running_server(hasher, max_queued_bytes=4096) as server,
        api(server.http_port) as http,
    ):
        admin = await admin_auth(http)
        await create(http, admin, "queues", "full")
        await publish(http, admin, "queues", "full", "x" * 5000)
        refused = await http.post("/queues/full/messages", json={"body": "more"}, headers=admin)
        error_of(refused, ErrorCode.LIMIT_EXCEEDED)
        assert int(refused.headers["retry-after"]) >= 1
        assert await counts(http, admin, "full") == (1, 0, 1)
        [pulled] = await pull(http, admin, "full")
        await settle(http, admin, "full", "ack", [pulled["receipt"]])
        await publish(http, admin, "queues", "full", "room again")


async def test_guessing_an_access_key_is_rate_limited(
    http: httpx.AsyncClient, admin: Auth, server: BuzonServer
) -> None:
    await create(http, admin, "queues", "vault", key=KEY)
    guesser = await new_user(http, "guesser")
    await until_slowed(
        lambda: http.post(
            "/queues/vault/messages",
            json={"body": "x"},
            headers={**guesser, "X-Access-Key": "guess-0000"},
        ),
        ErrorCode.ACCESS_KEY_WRONG,
    )
    # another account registered from the same address gets no fresh tries
    second = await new_user(http, "guesser-2")
    for auth in (guesser, second):
        right = await http.post(
            "/queues/vault/messages", json={"body": "x"}, headers={**auth, "X-Access-Key": KEY}
        )
        error_of(right, ErrorCode.TOO_MANY_ATTEMPTS)
        assert 1 <= int(right.headers["retry-after"]) <= 300
    async with api(server.http_port, source="127.0.0.2") as elsewhere:
        honest = await new_user(elsewhere, "honest")
        pulled = await elsewhere.post(
            "/queues/vault/pull", json={}, headers={**honest, "X-Access-Key": KEY}
        )
    assert pulled.json() == {"messages": []}
    assert await counts(http, admin, "vault") == (0, 0, 0)


async def test_a_message_published_over_http_survives_a_restart(
    hasher: SecretHasher, tmp_path: Path
) -> None:
    settings = Settings(
        stomp_port=0,
        http_port=0,
        amqp_port=0,
        admin_user=ADMIN,
        admin_password=PASSWORD,
        data_dir=tmp_path,
    )
    for step in ("publish", "pull after a restart"):
        server = BuzonServer(settings, hasher=hasher)
        await server.start()
        try:
            async with api(server.http_port) as http:
                admin = await admin_auth(http)
                if step == "publish":
                    await create(http, admin, "queues", "kept")
                    await publish(http, admin, "queues", "kept", "survives")
                else:
                    assert [m["body"] for m in await pull(http, admin, "kept")] == ["survives"]
        finally:
            await server.stop(grace=1.0)
