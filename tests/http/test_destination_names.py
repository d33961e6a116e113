"""A destination name is one path segment of the HTTP API, so names a URL cannot carry
unambiguously (``.``, ``..``: clients resolve them away) are refused at creation, over
HTTP and over STOMP alike, while names with dots among other characters stay usable."""

from __future__ import annotations

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.broker.destinations import new_record
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Error, Receipt
from buzon.store import DestinationKind, MemoryStore
from tests.http.helpers import Auth, admin_auth, api, error_of, stomp_send, stomp_subscribe
from tests.server.harness import Client, running_server

ALL_DOTS = [".", "..", "..."]
KINDS = [("queues", "/queue/"), ("channels", "/topic/")]


async def nothing_exists(http: httpx.AsyncClient, auth: Auth) -> bool:
    return [(await http.get(f"/{kind}", headers=auth)).json() for kind, _ in KINDS] == [[], []]


@pytest.mark.parametrize("name", ALL_DOTS)
@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_http_refuses_to_create_an_all_dot_name(
    http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str, name: str
) -> None:
    response = await http.post(f"/{kind}", json={"name": name}, headers=admin)
    assert "not only dots" in error_of(response, ErrorCode.BAD_DESTINATION)
    assert await nothing_exists(http, admin)


async def test_http_refuses_an_all_dot_dead_letter_queue(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    body = {"name": "work", "policy": {"dead_letter_queue": ".."}}
    response = await http.post("/queues", json=body, headers=admin)
    assert "not only dots" in error_of(response, ErrorCode.BAD_DESTINATION)
    assert await nothing_exists(http, admin)


@pytest.mark.parametrize("name", ALL_DOTS)
@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_stomp_send_and_subscribe_refuse_an_all_dot_name(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str, name: str
) -> None:
    for frame in (stomp_send(prefix + name, b"x", receipt="r"), stomp_subscribe(prefix + name)):
        client = await Client.connected(server.stomp_port)
        await client.send(frame)
        error = await client.expect(Error)
        assert error.message == "invalid destination"
        assert b"not only dots" in error.body
        await client.close()
    assert await nothing_exists(http, admin)


@pytest.mark.parametrize("name", [".hidden", "v1..v2", "trailing.", "a:b"])
@pytest.mark.parametrize(("kind", "prefix"), KINDS)
async def test_names_with_dots_among_other_characters_are_managed_over_http(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth, kind: str, prefix: str, name: str
) -> None:
    client = await Client.connected(server.stomp_port)
    await client.send(stomp_subscribe(prefix + name, receipt="made"))
    await client.receipt("made")
    await client.close()
    assert (await http.get(f"/{kind}/{name}", headers=admin)).json()["address"] == prefix + name
    assert (await http.delete(f"/{kind}/{name}", headers=admin)).status_code == 204
    assert await nothing_exists(http, admin)


async def test_a_stored_all_dot_name_from_an_earlier_version_still_loads(
    hasher: SecretHasher,
) -> None:
    """Refusing it at start would keep the broker from starting and lose its messages."""
    store = MemoryStore()
    await store.add_destination(new_record(DestinationKind.QUEUE, "..", "id-old", None, 0.0))
    async with running_server(hasher, store=store) as server:
        client = await Client.connected(server.stomp_port)
        await client.send(stomp_send("/queue/..", b"still here", receipt="sent"))
        assert isinstance(await client.expect(Receipt), Receipt)
        async with api(server.http_port) as http:
            auth = await admin_auth(http)
            names = [view["name"] for view in (await http.get("/queues", headers=auth)).json()]
        assert names == [".."]
