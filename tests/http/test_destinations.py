"""Queues and channels as owned resources over HTTP: create, list, inspect, delete."""

from __future__ import annotations

import httpx
import pytest

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
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

KINDS = [("queues", "/queue/"), ("channels", "/topic/")]


@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_the_creator_owns_a_new_destination(
    http: httpx.AsyncClient, kind: str, prefix: str
) -> None:
    alice = await new_user(http, "alice")
    view = await create(http, alice, kind, "jobs.v1:eu-west_2")
    assert view["name"] == "jobs.v1:eu-west_2"
    assert view["address"] == f"{prefix}jobs.v1:eu-west_2"
    assert view["owner"] == "alice"
    assert view["protected"] is False
    assert (view["published"], view["delivered"]) == (0, 0)
    if kind == "queues":
        assert (view["depth"], view["in_flight"], view["consumers"]) == (0, 0, 0)
    else:
        assert view["subscribers"] == 0
    assert await inspect(http, alice, kind, "jobs.v1:eu-west_2") == view


@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_an_access_key_protects_and_is_never_shown(
    http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str
) -> None:
    view = await create(http, admin, kind, "vault", key=KEY)
    assert view["protected"] is True
    for response in (
        await http.get(f"/{kind}/vault", headers=admin),
        await http.get(f"/{kind}", headers=admin),
    ):
        assert "vault" in response.text
        assert KEY not in response.text
        assert "$argon2" not in response.text


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "slash/inside"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "fine", "access_key": "short"}, "access_key"),
        ({"name": "fine", "owner": "someone"}, "owner"),
        ({}, "name"),
    ],
)
async def test_invalid_creations_are_refused(
    http: httpx.AsyncClient, admin: Auth, body: dict[str, str], detail: str
) -> None:
    response = await http.post("/queues", json=body, headers=admin)
    assert error_of(response, ErrorCode.BAD_REQUEST).startswith(detail)
    assert (await http.get("/queues", headers=admin)).json() == []


async def test_names_are_unique_per_kind(http: httpx.AsyncClient, admin: Auth) -> None:
    alice = await new_user(http, "alice")
    await create(http, alice, "queues", "orders")
    taken = await http.post("/queues", json={"name": "orders"}, headers=admin)
    assert "/queue/orders" in error_of(taken, ErrorCode.DESTINATION_EXISTS)
    channel = await create(http, admin, "channels", "orders")
    assert channel["owner"] == "admin"
    assert (await inspect(http, admin, "queues", "orders"))["owner"] == "alice"


async def test_anyone_logged_in_lists_and_inspects_sorted_by_name(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    alice = await new_user(http, "alice")
    bob = await new_user(http, "bob")
    await create(http, alice, "queues", "zeta")
    await create(http, bob, "queues", "alpha", key=KEY)
    await create(http, admin, "channels", "news")
    listed = await http.get("/queues", headers=alice)
    assert [(q["name"], q["owner"], q["protected"]) for q in listed.json()] == [
        ("alpha", "bob", True),
        ("zeta", "alice", False),
    ]
    channels = await http.get("/channels", headers=bob)
    assert [c["name"] for c in channels.json()] == ["news"]
    assert (await inspect(http, alice, "queues", "alpha"))["owner"] == "bob"
    error_of(await http.get("/queues"), ErrorCode.NOT_AUTHENTICATED)
    error_of(await http.get("/channels/news"), ErrorCode.NOT_AUTHENTICATED)


@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_unknown_destinations_are_not_found(
    http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str
) -> None:
    for response in (
        await http.get(f"/{kind}/missing", headers=admin),
        await http.delete(f"/{kind}/missing", headers=admin),
    ):
        assert error_of(response, ErrorCode.DESTINATION_NOT_FOUND) == (
            f"{prefix}missing does not exist"
        )


async def test_a_queue_and_a_channel_of_one_name_are_different_things(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "channels", "only-a-channel")
    error_of(
        await http.get("/queues/only-a-channel", headers=admin), ErrorCode.DESTINATION_NOT_FOUND
    )
    missing = await http.post("/queues/only-a-channel/pull", json={}, headers=admin)
    error_of(missing, ErrorCode.DESTINATION_NOT_FOUND)


@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_only_the_owner_or_an_admin_deletes(
    http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str
) -> None:
    alice = await new_user(http, "alice")
    bob = await new_user(http, "bob")
    await create(http, alice, kind, "mine")
    await create(http, alice, kind, "also-mine", key=KEY)
    refused = await http.delete(f"/{kind}/mine", headers=bob)
    assert error_of(refused, ErrorCode.ACCESS_DENIED) == (
        f"only the owner or an admin may delete {prefix}mine"
    )
    keyed = await http.delete(f"/{kind}/also-mine", headers={**bob, "X-Access-Key": KEY})
    error_of(keyed, ErrorCode.ACCESS_DENIED)
    assert (await http.get(f"/{kind}/mine", headers=bob)).status_code == 200

    assert (await http.delete(f"/{kind}/mine", headers=alice)).status_code == 204
    assert (await http.delete(f"/{kind}/also-mine", headers=admin)).status_code == 204
    assert (await http.get(f"/{kind}", headers=alice)).json() == []
    error_of(await http.get(f"/{kind}/mine", headers=alice), ErrorCode.DESTINATION_NOT_FOUND)


async def test_deleting_a_queue_drops_its_messages(http: httpx.AsyncClient, admin: Auth) -> None:
    first = await create(http, admin, "queues", "scratch")
    for body in ("a", "b", "c"):
        await publish(http, admin, "queues", "scratch", body)
    assert (await inspect(http, admin, "queues", "scratch"))["depth"] == 3
    assert (await http.delete("/queues/scratch", headers=admin)).status_code == 204
    again = await create(http, admin, "queues", "scratch")
    assert again["id"] != first["id"]
    assert (again["depth"], again["published"]) == (0, 0)
    assert await pull(http, admin, "scratch", max=10) == []


async def test_inspect_shows_live_numbers(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await create(http, admin, "queues", "busy")
    await create(http, admin, "channels", "loud")
    for body in ("1", "2", "3"):
        await publish(http, admin, "queues", "busy", body)
    await pull(http, admin, "busy", max=1)
    queue = await inspect(http, admin, "queues", "busy")
    assert (queue["depth"], queue["in_flight"], queue["published"], queue["delivered"]) == (
        2,
        1,
        3,
        1,
    )

    listeners = [await Client.connected(server.stomp_port) for _ in range(2)]
    for listener in listeners:
        await listener.send(stomp_subscribe("/topic/loud"))
        await listener.receipt("sub")
    await publish(http, admin, "channels", "loud", "hello")
    channel = await inspect(http, admin, "channels", "loud")
    assert (channel["subscribers"], channel["published"], channel["delivered"]) == (2, 1, 2)
