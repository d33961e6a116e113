"""The broker as a whole over HTTP: health, overview and open connections."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from buzon import __version__
from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Error, Message
from buzon.store.sqlite import SQLiteStore
from tests.http.helpers import (
    USER_PASSWORD,
    Auth,
    admin_auth,
    api,
    bearer,
    create,
    error_of,
    new_user,
    publish,
    stomp_send,
    stomp_subscribe,
)
from tests.server.harness import ADMIN, TIMEOUT, Client, running_server


async def test_health_needs_no_credentials(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_overview_counts_what_the_broker_holds(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, "alice")
    await create(http, alice, "queues", "a")
    await create(http, alice, "queues", "b")
    await create(http, admin, "channels", "c")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/a"))
    await consumer.receipt("sub")
    for body in ("1", "2", "3"):
        await publish(http, alice, "queues", "a", body)
    await consumer.events(3)
    await publish(http, alice, "queues", "b", "waits")

    overview = (await http.get("/overview", headers=alice)).json()
    assert overview["version"] == __version__
    assert 0 <= overview["uptime_s"] < 60
    assert (overview["connections"], overview["users"]) == (1, 2)
    assert (overview["queues"], overview["channels"]) == (2, 1)
    assert overview["messages"] == {"published": 4, "delivered": 3, "queued_bytes": 5}
    assert set(overview["rates"]) == {"published_per_s", "delivered_per_s"}
    error_of(await http.get("/overview"), ErrorCode.NOT_AUTHENTICATED)


async def test_admins_see_every_connection_and_users_their_own(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, "alice")
    await new_user(http, "bob")
    started = time.time()
    admins = await Client.connected(server.stomp_port)
    alices = await Client.connected(server.stomp_port, login="alice", passcode=USER_PASSWORD)
    await Client.connected(server.stomp_port, login="bob", passcode=USER_PASSWORD)
    await alices.send(
        stomp_subscribe("/topic/t", receipt="s1", sub_id="1"),
        stomp_subscribe("/queue/q", receipt="s2", sub_id="2"),
        stomp_send("/queue/elsewhere", b"x", receipt="sent"),
    )
    await alices.receipt("s1")
    await alices.receipt("s2")
    await alices.receipt("sent")
    await admins.send(stomp_send("/queue/q", b"for alice", receipt="sent"))
    await admins.receipt("sent")
    await alices.expect(Message)

    everyone = (await http.get("/connections", headers=admin)).json()
    assert [c["user"] for c in everyone] == [ADMIN, "alice", "bob"]
    assert len({c["id"] for c in everyone}) == 3
    own = (await http.get("/connections", headers=alice)).json()
    assert own == [everyone[1]]
    [shown] = own
    assert (shown["subscriptions"], shown["published"], shown["delivered"]) == (2, 1, 1)
    assert shown["protocol"] == "stomp/1.2"
    assert shown["peer"].startswith("127.0.0.1:")
    assert started - 1 <= datetime.fromisoformat(shown["connected_at"]).timestamp() <= time.time()
    error_of(await http.get("/connections"), ErrorCode.NOT_AUTHENTICATED)


async def test_credentials_that_do_not_authenticate_are_401(http: httpx.AsyncClient) -> None:
    for headers in (
        {},
        bearer("bzt_not-a-real-token"),
        bearer("no prefix"),
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer"},
    ):
        response = await http.get("/users/me", headers=headers)
        error_of(response, ErrorCode.NOT_AUTHENTICATED)
        assert response.headers["www-authenticate"] == 'Bearer realm="buzon"'


async def test_overview_shows_memory_and_store_size(
    http: httpx.AsyncClient, admin: Auth, hasher: SecretHasher, tmp_path: Path
) -> None:
    in_memory = (await http.get("/overview", headers=admin)).json()
    assert in_memory["memory_bytes"] > 1_000_000  # a Python process holds megabytes
    assert in_memory["store_bytes"] is None
    async with (
        running_server(hasher, store=SQLiteStore(tmp_path)) as server,
        api(server.http_port) as sqlite_http,
    ):
        overview = (
            await sqlite_http.get("/overview", headers=await admin_auth(sqlite_http))
        ).json()
    assert overview["store_bytes"] > 0


async def test_rates_second_by_second_for_charts_and_per_destination(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "busy")
    await create(http, admin, "queues", "idle")
    started = datetime.now(UTC)
    points: list[dict[str, Any]] = []
    async with asyncio.timeout(5):  # rates are sampled once a second
        while not any(point["published_per_s"] > 0 for point in points):
            await publish(http, admin, "queues", "busy", "tick")
            response = await http.get("/overview/history", headers=admin)
            assert response.status_code == 200
            points = response.json()["points"]
            await asyncio.sleep(0.1)
    assert all(sorted(point) == ["at", "delivered_per_s", "published_per_s"] for point in points)
    times = [datetime.fromisoformat(point["at"]) for point in points]
    assert times == sorted(times)
    assert started <= times[0] <= times[-1] <= datetime.now(UTC)
    listed = {q["name"]: q["rates"] for q in (await http.get("/queues", headers=admin)).json()}
    assert listed["busy"]["published_per_s"] > 0
    assert listed["idle"] == {"published_per_s": 0.0, "delivered_per_s": 0.0}
    error_of(await http.get("/overview/history"), ErrorCode.NOT_AUTHENTICATED)


async def test_an_admin_closes_a_connection_and_its_messages_go_back(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "work")
    await publish(http, admin, "queues", "work", "held")
    consumer = await Client.connected(server.stomp_port)
    await consumer.send(stomp_subscribe("/queue/work", ack="client"))
    await consumer.receipt("sub")
    assert (await consumer.expect(Message)).body == b"held"
    [listed] = (await http.get("/connections", headers=admin)).json()

    response = await http.delete(f"/connections/{listed['id']}", headers=admin)
    assert response.status_code == 204
    error = await consumer.expect(Error)
    assert error.message == ErrorCode.CONNECTION_CLOSED_BY_ADMIN.message
    assert ("code", "CONNECTION_CLOSED_BY_ADMIN") in error.headers
    with pytest.raises(ConnectionError):
        await consumer.next_event()
    await consumer.close()
    await asyncio.wait_for(server.context.idle.wait(), TIMEOUT)
    assert (await http.get("/connections", headers=admin)).json() == []
    waiting = (await http.get("/queues/work/messages", headers=admin)).json()["messages"]
    assert [(m["body"], m["redelivered"]) for m in waiting] == [("held", True)]


async def test_a_connection_told_to_go_is_neither_listed_nor_closed_again(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    client = await Client.connected(server.stomp_port)
    [listed] = (await http.get("/connections", headers=admin)).json()
    url = f"/connections/{listed['id']}"
    assert (await http.delete(url, headers=admin)).status_code == 204
    # The client has not read its ERROR yet: the connection lingers, but is no longer open.
    assert (await http.get("/connections", headers=admin)).json() == []
    error_of(await http.delete(url, headers=admin), ErrorCode.CONNECTION_NOT_FOUND)
    error = await client.expect(Error)
    assert ("code", "CONNECTION_CLOSED_BY_ADMIN") in error.headers
    await client.close()


async def test_only_an_admin_closes_connections(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, "alice")
    own = await Client.connected(server.stomp_port, login="alice", passcode=USER_PASSWORD)
    [listed] = (await http.get("/connections", headers=alice)).json()
    url = f"/connections/{listed['id']}"
    error_of(await http.delete(url), ErrorCode.NOT_AUTHENTICATED)
    error_of(await http.delete(url, headers=alice), ErrorCode.ACCESS_DENIED)
    assert await own.nothing_within(0.1)  # still connected
    error_of(
        await http.delete("/connections/c999999", headers=admin), ErrorCode.CONNECTION_NOT_FOUND
    )
