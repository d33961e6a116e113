"""What the HTTP API refuses before any route runs, and how: bounded bodies and heads,
unknown routes and methods, malformed or unexpected JSON, always as the JSON error shape."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from tests.http.helpers import Auth, admin_auth, api, create, error_of, inspect
from tests.server.harness import TIMEOUT, running_server

MAX_BODY = 1024


@pytest.fixture
async def small(hasher: SecretHasher) -> AsyncIterator[tuple[httpx.AsyncClient, Auth]]:
    """A broker taking bodies of at most MAX_BODY bytes, with a queue ``q``; as admin."""
    async with (
        running_server(hasher, http_max_body=MAX_BODY) as server,
        api(server.http_port) as http,
    ):
        admin = await admin_auth(http)
        await create(http, admin, "queues", "q")
        yield http, admin


async def test_a_body_at_the_cap_is_accepted(small: tuple[httpx.AsyncClient, Auth]) -> None:
    http, admin = small
    response = await http.post("/queues/q/messages", content=b"x" * MAX_BODY, headers=admin)
    assert response.status_code == 201
    assert (await inspect(http, admin, "queues", "q"))["depth"] == 1


async def test_a_declared_body_over_the_cap_is_413(small: tuple[httpx.AsyncClient, Auth]) -> None:
    http, admin = small
    response = await http.post("/queues/q/messages", content=b"x" * (MAX_BODY + 1), headers=admin)
    assert error_of(response, ErrorCode.REQUEST_TOO_LARGE) == f"bodies are at most {MAX_BODY} bytes"
    assert (await inspect(http, admin, "queues", "q"))["depth"] == 0


async def test_a_chunked_body_over_the_cap_is_413(small: tuple[httpx.AsyncClient, Auth]) -> None:
    http, admin = small

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 512

    response = await http.post("/queues/q/messages", content=chunks(), headers=admin)
    assert "content-length" not in response.request.headers
    error_of(response, ErrorCode.REQUEST_TOO_LARGE)
    assert (await inspect(http, admin, "queues", "q"))["depth"] == 0


async def test_every_route_caps_bodies(small: tuple[httpx.AsyncClient, Auth]) -> None:
    http, _ = small
    huge = {"username": "someone", "password": "p" * MAX_BODY}
    error_of(await http.post("/users", json=huge), ErrorCode.REQUEST_TOO_LARGE)


async def test_a_head_over_16_kib_is_431(http: httpx.AsyncClient) -> None:
    fine = await http.get("/healthz", headers={"X-Padding": "p" * (15 * 1024)})
    assert fine.status_code == 200
    response = await http.get("/healthz", headers={"X-Padding": "p" * (17 * 1024)})
    assert (
        error_of(response, ErrorCode.HEADERS_TOO_LARGE) == "request heads are at most 16384 bytes"
    )
    assert response.headers["connection"] == "close"
    long_url = await http.get("/healthz", params={"q": "p" * (17 * 1024)})
    error_of(long_url, ErrorCode.HEADERS_TOO_LARGE)


async def test_a_head_that_never_ends_is_cut_off(
    server: BuzonServer, http: httpx.AsyncClient
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    try:
        writer.write(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * (17 * 1024))
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/nowhere"),
        ("GET", "/dashboard/nothing.js"),
        ("POST", "/api/v2/users"),
        ("GET", "/api/v1/queues/a/b"),
        ("DELETE", "/api/v1/sessions/other"),
    ],
)
async def test_unknown_routes_are_404_json(
    server: BuzonServer, http: httpx.AsyncClient, method: str, url: str
) -> None:
    response = await http.request(method, f"http://127.0.0.1:{server.http_port}{url}")
    error_of(response, ErrorCode.NOT_FOUND)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/users", "GET, POST"),
        ("POST", "/users/alice", "DELETE, PATCH"),
        ("PATCH", "/queues", "GET, POST"),
        ("GET", "/queues/jobs/pull", "POST"),
        ("GET", "/sessions", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_is_405_json_naming_the_allowed_ones(
    http: httpx.AsyncClient, admin: Auth, method: str, path: str, allowed: str
) -> None:
    response = await http.request(method, path, headers=admin)
    assert response.status_code == 405
    error_of(response, ErrorCode.METHOD_NOT_ALLOWED)
    assert response.headers["allow"] == allowed


async def test_health_answers_head_for_load_balancers(http: httpx.AsyncClient) -> None:
    response = await http.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/sessions", b'{"username": "admin", '),
        ("/users", b"not json at all"),
        ("/queues", b"\xff\xfe{}"),
        ("/queues/jobs/pull", b"[1, 2"),
    ],
)
async def test_malformed_json_is_400(
    http: httpx.AsyncClient, admin: Auth, path: str, content: bytes
) -> None:
    response = await http.post(
        path, content=content, headers={**admin, "Content-Type": "application/json"}
    )
    assert "JSON decode error" in error_of(response, ErrorCode.BAD_REQUEST)


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("POST", "/sessions", {"username": "admin", "password": "x", "otp": 1}, "otp: Extra"),
        ("POST", "/users", {"username": "zed", "password": "long enough", "admin": True}, "admin"),
        ("POST", "/queues", {"name": "q", "durable": True}, "durable: Extra"),
        ("PATCH", "/users/admin", {"disabled": False, "password": "new"}, "password: Extra"),
        ("POST", "/queues/jobs/pull", {"max": 1, "auto_ack": True}, "auto_ack: Extra"),
        ("POST", "/queues/jobs/ack", {"receipts": ["r"], "all": True}, "all: Extra"),
        ("POST", "/sessions", {"username": "admin"}, "password: Field required"),
        ("POST", "/sessions", {"username": ["admin"], "password": "x"}, "username: "),
        ("POST", "/queues", None, "Field required"),
        ("PATCH", "/users/admin", {"role": "superuser"}, "role: "),
    ],
)
async def test_unexpected_or_missing_fields_are_400(
    http: httpx.AsyncClient,
    admin: Auth,
    method: str,
    path: str,
    body: object,
    detail: str,
) -> None:
    response = await http.request(method, path, json=body, headers=admin)
    assert detail in error_of(response, ErrorCode.BAD_REQUEST)
    assert (await http.get("/queues", headers=admin)).json() == []
    assert (await http.get("/users/me", headers=admin)).json()["disabled"] is False
