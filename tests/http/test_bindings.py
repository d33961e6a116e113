"""Channel types and queue bindings over HTTP, with messages sent over STOMP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Error, Message
from tests.http.helpers import (
    KEY,
    USER_PASSWORD,
    Auth,
    create,
    error_of,
    inspect,
    new_user,
    pull,
    stomp_send,
    stomp_subscribe,
    unique,
)
from tests.server.harness import Client


async def topic(http: httpx.AsyncClient, auth: Auth, name: str, kind: str = "topic") -> None:
    response = await http.post("/channels", json={"name": name, "type": kind}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["type"] == kind


async def bind(
    http: httpx.AsyncClient, auth: Auth, channel: str, queue: str, key: str = "", **keys: str
) -> httpx.Response:
    body: dict[str, Any] = {"queue": queue, "routing_key": key, **keys}
    return await http.post(f"/channels/{channel}/bindings", json=body, headers=auth)


async def bindings(http: httpx.AsyncClient, auth: Auth, channel: str) -> list[dict[str, Any]]:
    response = await http.get(f"/channels/{channel}/bindings", headers=auth)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def send(server: BuzonServer, *pairs: tuple[str, str]) -> None:
    """SEND each (destination, body) over STOMP as the admin, each with a receipt."""
    client = await Client.connected(server.stomp_port)
    for n, (destination, body) in enumerate(pairs):
        await client.send(stomp_send(destination, body.encode(), receipt=f"r{n}"))
        await client.receipt(f"r{n}")
    await client.close()


async def test_a_channel_type_is_shown_and_fixed_at_creation(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await topic(http, admin, "logs")
    assert (await inspect(http, admin, "channels", "logs"))["type"] == "topic"
    again = await http.post("/channels", json={"name": "logs", "type": "direct"}, headers=admin)
    detail = error_of(again, ErrorCode.DESTINATION_EXISTS)
    assert "topic" in detail
    assert "direct" in detail
    same = await http.post("/channels", json={"name": "logs", "type": "topic"}, headers=admin)
    error_of(same, ErrorCode.DESTINATION_EXISTS)
    plain = await create(http, admin, "channels", "plain")
    assert plain["type"] == "fanout"
    bad = await http.post("/channels", json={"name": "x", "type": "headers"}, headers=admin)
    assert bad.status_code == 400, bad.text


async def test_one_send_feeds_several_bound_queues_once_each(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await topic(http, admin, "orders")
    for queue in ("billing", "shipping"):
        await create(http, admin, "queues", queue)
    for queue, key in (("billing", "order.*"), ("billing", "order.#"), ("shipping", "*.shipped")):
        response = await bind(http, admin, "orders", queue, key)
        assert response.status_code == 201, response.text
    assert response.json() == {
        "channel": "orders",
        "queue": "shipping",
        "routing_key": "*.shipped",
        "owner": "admin",
        "created_at": response.json()["created_at"],
        "active": True,
    }
    listed = await bindings(http, admin, "orders")
    assert [(b["queue"], b["routing_key"]) for b in listed] == [
        ("billing", "order.#"),
        ("billing", "order.*"),
        ("shipping", "*.shipped"),
    ]
    assert (await inspect(http, admin, "channels", "orders"))["bindings"] == 3
    await send(
        server,
        ("/topic/orders/order.created", "created"),
        ("/topic/orders/order.shipped", "shipped"),
        ("/topic/orders/audit", "ignored"),
    )
    billing = await pull(http, admin, "billing", max=10)
    assert [m["body"] for m in billing] == ["created", "shipped"]
    assert billing[0]["destination"] == "/topic/orders/order.created"
    assert [m["body"] for m in await pull(http, admin, "shipping", max=10)] == ["shipped"]


async def test_an_http_publish_to_a_channel_routes_by_its_routing_key(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await topic(http, admin, "shop")
    await create(http, admin, "queues", "paid")
    assert (await bind(http, admin, "shop", "paid", "order.paid")).status_code == 201
    for key in ("order.paid", "order.created", ""):
        sent = await http.post(
            "/channels/shop/messages",
            params={"routing_key": key} if key else {},
            json={"body": key or "no key"},
            headers=admin,
        )
        assert sent.status_code == 201, sent.text
    got = await pull(http, admin, "paid", max=10)
    assert [(m["body"], m["destination"]) for m in got] == [
        ("order.paid", "/topic/shop/order.paid")
    ]
    bad = await http.post(
        "/channels/shop/messages", params={"routing_key": "a\x01b"}, json={}, headers=admin
    )
    assert "routing_key" in error_of(bad, ErrorCode.BAD_DESTINATION)
    long = await http.post(
        "/channels/shop/messages", params={"routing_key": "k" * 256}, json={}, headers=admin
    )
    assert "255 bytes" in error_of(long, ErrorCode.BAD_DESTINATION)


async def test_unbind_and_deleting_either_side(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "channels", "news")
    await create(http, admin, "queues", "inbox")
    assert (await bind(http, admin, "news", "inbox", "a.#")).status_code == 201
    gone = await http.delete(
        "/channels/news/bindings", params={"queue": "inbox", "routing_key": "a.#"}, headers=admin
    )
    assert gone.status_code == 204, gone.text
    again = await http.delete(
        "/channels/news/bindings", params={"queue": "inbox", "routing_key": "a.#"}, headers=admin
    )
    assert "not bound" in error_of(again, ErrorCode.NOT_FOUND)
    assert (await bind(http, admin, "news", "inbox")).status_code == 201
    assert (await http.delete("/queues/inbox", headers=admin)).status_code == 204
    assert await bindings(http, admin, "news") == []
    await create(http, admin, "queues", "inbox")
    assert (await bind(http, admin, "news", "inbox")).status_code == 201
    assert (await http.delete("/channels/news", headers=admin)).status_code == 204
    await send(server, ("/topic/news", "after"))  # created again on first use, unbound
    assert await pull(http, admin, "inbox", max=5) == []


async def test_clear_errors(http: httpx.AsyncClient, admin: Auth) -> None:
    await topic(http, admin, "logs")
    await create(http, admin, "queues", "q")
    assert "/queue/nope" in error_of(
        await bind(http, admin, "logs", "nope"), ErrorCode.DESTINATION_NOT_FOUND
    )
    assert "/topic/nope" in error_of(
        await bind(http, admin, "nope", "q"), ErrorCode.DESTINATION_NOT_FOUND
    )
    assert "255 bytes" in error_of(
        await bind(http, admin, "logs", "q", "é" * 200), ErrorCode.BAD_DESTINATION
    )
    assert "control" in error_of(
        await bind(http, admin, "logs", "q", "a\nb"), ErrorCode.BAD_DESTINATION
    )
    missing = await http.post("/channels/logs/bindings", json={"routing_key": "x"}, headers=admin)
    assert missing.status_code == 400, missing.text
    anonymous = await http.get("/channels/logs/bindings")
    assert anonymous.status_code == 401


@pytest.mark.parametrize("protected", ["channel", "queue"])
async def test_binding_needs_the_key_of_someone_elses_protected_side(
    http: httpx.AsyncClient, protected: str
) -> None:
    owner = await new_user(http, unique("owner"))
    mallory = await new_user(http, unique("mallory"))
    channel, queue = unique("chan"), unique("queue")
    await create(http, owner, "channels", channel, key=KEY if protected == "channel" else None)
    await create(http, owner, "queues", queue, key=KEY if protected == "queue" else None)
    detail = error_of(await bind(http, mallory, channel, queue), ErrorCode.ACCESS_KEY_REQUIRED)
    assert ("consume from" if protected == "channel" else "publish into") in detail
    field = f"{protected}_access_key"
    error_of(
        await bind(http, mallory, channel, queue, **{field: "wrong key 123"}),
        ErrorCode.ACCESS_KEY_WRONG,
    )
    assert await bindings(http, owner, channel) == []
    made = await bind(http, mallory, channel, queue, **{field: KEY})
    assert made.status_code == 201, made.text
    assert made.json()["owner"].startswith("mallory")
    # the binding does not let mallory read a protected queue
    if protected == "queue":
        response = await http.post(f"/queues/{queue}/pull", json={}, headers=mallory)
        error_of(response, ErrorCode.ACCESS_KEY_REQUIRED)


async def test_who_may_remove_a_binding(http: httpx.AsyncClient, admin: Auth) -> None:
    alice = await new_user(http, unique("alice"))
    bob = await new_user(http, unique("bob"))
    carol = await new_user(http, unique("carol"))
    await create(http, alice, "channels", "feed")
    await create(http, bob, "queues", "work")
    for remover in (alice, bob, carol, admin):  # carol makes it each time
        assert (await bind(http, carol, "feed", "work", "k")).status_code == 201
        response = await http.delete(
            "/channels/feed/bindings", params={"queue": "work", "routing_key": "k"}, headers=remover
        )
        assert response.status_code == 204, response.text
    dave = await new_user(http, unique("dave"))
    assert (await bind(http, carol, "feed", "work", "k")).status_code == 201
    response = await http.delete(
        "/channels/feed/bindings", params={"queue": "work", "routing_key": "k"}, headers=dave
    )
    error_of(response, ErrorCode.ACCESS_DENIED)


async def test_a_changed_queue_key_suspends_the_binding_until_bound_again(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    owner = await new_user(http, unique("owner"))
    binder = await new_user(http, unique("binder"))
    await create(http, binder, "channels", "src")
    await create(http, owner, "queues", "dst", key=KEY)
    assert (await bind(http, binder, "src", "dst", queue_access_key=KEY)).status_code == 201
    await send(server, ("/topic/src", "1"))
    new_key = "another key 99"
    changed = await http.patch("/queues/dst", json={"access_key": new_key}, headers=owner)
    assert changed.status_code == 200, changed.text
    assert [b["active"] for b in await bindings(http, binder, "src")] == [False]
    await send(server, ("/topic/src", "2"))
    assert (await bind(http, binder, "src", "dst", queue_access_key=new_key)).status_code == 201
    assert [b["active"] for b in await bindings(http, binder, "src")] == [True]
    await send(server, ("/topic/src", "3"))
    assert [m["body"] for m in await pull(http, owner, "dst", max=10)] == ["1", "3"]


async def test_a_protected_channel_takes_its_key_with_a_pattern_or_a_routing_key(
    server: BuzonServer, http: httpx.AsyncClient
) -> None:
    owner = await new_user(http, unique("owner"))
    reader_name = unique("reader")
    await new_user(http, reader_name)
    channel = unique("secret")
    response = await http.post(
        "/channels", json={"name": channel, "type": "topic", "access_key": KEY}, headers=owner
    )
    assert response.status_code == 201, response.text
    refused = await Client.connected(server.stomp_port, login=reader_name, passcode=USER_PASSWORD)
    await refused.send(stomp_subscribe(f"/topic/{channel}/a.*", receipt="no-key"))
    error = await refused.expect(Error)
    assert error.message == ErrorCode.ACCESS_KEY_REQUIRED.message
    reader = await Client.connected(server.stomp_port, login=reader_name, passcode=USER_PASSWORD)
    await reader.send(stomp_subscribe(f"/topic/{channel}/a.*", access_key=KEY))
    await reader.receipt("sub")
    await reader.send(stomp_send(f"/topic/{channel}/a.b", b"matched", receipt="s1"))
    await reader.receipt("s1")
    await reader.send(stomp_send(f"/topic/{channel}/b.b", b"not matched", receipt="s2"))
    await reader.receipt("s2")
    message = await reader.expect(Message)
    assert (message.body, message.destination) == (b"matched", f"/topic/{channel}/a.b")
    assert not reader.stash  # b.b would have come before the receipt of its SEND
