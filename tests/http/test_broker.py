"""The broker as a whole over HTTP: health, overview and open connections."""

from __future__ import annotations

import time
from datetime import datetime

import httpx

from buzon import __version__
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Message
from tests.http.helpers import (
    USER_PASSWORD,
    Auth,
    bearer,
    create,
    error_of,
    new_user,
    publish,
    stomp_send,
    stomp_subscribe,
)
from tests.server.harness import ADMIN, Client


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
