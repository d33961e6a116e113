"""Peeking at the head of a queue over HTTP: read-only, and only for who may consume."""

from __future__ import annotations

import base64

import httpx

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Message
from tests.http.helpers import (
    KEY,
    Auth,
    create,
    error_of,
    inspect,
    new_user,
    publish,
    pull,
    stomp_subscribe,
)
from tests.server.harness import Client


async def peek(
    http: httpx.AsyncClient, auth: Auth, queue: str, **query: int
) -> list[dict[str, object]]:
    response = await http.get(f"/queues/{queue}/messages", params=query, headers=auth)
    assert response.status_code == 200, response.text
    messages: list[dict[str, object]] = response.json()["messages"]
    return messages


async def test_peek_shows_the_head_and_consumes_nothing(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "jobs")
    first = await publish(http, admin, "queues", "jobs", "<b>first</b>", {"x-note": "<i>n</i>"})
    await publish(http, admin, "queues", "jobs", "second")
    await publish(http, admin, "queues", "jobs", "third")

    shown = await peek(http, admin, "jobs", limit=2)
    assert shown[0] == {
        "message_id": first,
        "headers": {"x-note": "<i>n</i>"},
        "body": "<b>first</b>",
        "body_base64": None,
        "redelivered": False,
    }
    assert [m["body"] for m in shown] == ["<b>first</b>", "second"]
    assert await peek(http, admin, "jobs") == await peek(http, admin, "jobs", limit=100)
    assert (await inspect(http, admin, "queues", "jobs"))["depth"] == 3

    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/jobs"))
    received = [await consumer.expect(Message) for _ in range(3)]
    assert [m.body for m in received] == [b"<b>first</b>", b"second", b"third"]
    assert await peek(http, admin, "jobs") == []


async def test_peek_shows_binary_bodies_as_base64_and_returned_messages_as_redelivered(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "mixed")
    response = await http.post(
        "/queues/mixed/messages",
        content=b"\x00\xff",
        headers={**admin, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201
    await publish(http, admin, "queues", "mixed", "text")
    [leased] = await pull(http, admin, "mixed", max=1)
    nacked = await http.post(
        "/queues/mixed/nack", json={"receipts": [leased["receipt"]]}, headers=admin
    )
    assert nacked.status_code == 200
    binary, text = await peek(http, admin, "mixed")
    assert (binary["body"], binary["body_base64"]) == (None, base64.b64encode(b"\x00\xff").decode())
    assert binary["headers"] == {"content-type": "application/octet-stream"}
    assert (binary["redelivered"], text["redelivered"]) == (True, False)


async def test_peeking_needs_the_right_to_consume(http: httpx.AsyncClient, admin: Auth) -> None:
    await create(http, admin, "queues", "private", key=KEY)
    await publish(http, admin, "queues", "private", "secret")
    stranger = await new_user(http, "stranger")
    url = "/queues/private/messages"
    error_of(await http.get(url), ErrorCode.NOT_AUTHENTICATED)
    error_of(await http.get(url, headers=stranger), ErrorCode.ACCESS_KEY_REQUIRED)
    wrong = {**stranger, "X-Access-Key": "not the key"}
    error_of(await http.get(url, headers=wrong), ErrorCode.ACCESS_KEY_WRONG)
    [shown] = await peek(http, {**stranger, "X-Access-Key": KEY}, "private")
    assert shown["body"] == "secret"
    assert [m["body"] for m in await peek(http, stranger, "private")] == ["secret"]  # remembered
    error_of(
        await http.get("/queues/nowhere/messages", headers=admin), ErrorCode.DESTINATION_NOT_FOUND
    )
    for limit in ("0", "101", "ten"):
        response = await http.get(url, params={"limit": limit}, headers=admin)
        error_of(response, ErrorCode.BAD_REQUEST)
