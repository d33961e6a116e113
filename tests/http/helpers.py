"""An HTTP client on a real broker's ``/api/v1``, and the checks every HTTP test repeats."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from buzon.errors import ErrorCode
from buzon.stomp import Send, Subscribe
from tests.server.harness import ADMIN, PASSWORD, TIMEOUT

Auth = dict[str, str]
"""Request headers that authenticate a caller (empty for nobody)."""

USER_PASSWORD = "correct horse battery"
KEY = "open sesame 42"

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A user or destination name no other test in this process uses."""
    return f"{prefix}-{next(_names)}"


@contextlib.asynccontextmanager
async def api(port: int, source: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose relative URLs are under ``/api/v1`` of the broker on ``port``.

    ``source`` is the local address to connect from: on Linux any 127.x.y.z is loopback,
    so ``127.0.0.2`` is a second client address for the broker's per-address limits.
    """
    transport = None if source is None else httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}/api/v1", timeout=TIMEOUT, transport=transport
    ) as client:
        yield client


def bearer(token: str) -> Auth:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, name: str, password: str = USER_PASSWORD) -> Auth:
    """Log in; return the headers that carry the new token."""
    response = await http.post("/sessions", json={"username": name, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return bearer(token)


async def admin_auth(http: httpx.AsyncClient) -> Auth:
    return await login(http, ADMIN, PASSWORD)


async def new_user(http: httpx.AsyncClient, name: str, password: str = USER_PASSWORD) -> Auth:
    """Register ``name`` and log in as them."""
    response = await http.post("/users", json={"username": name, "password": password})
    assert response.status_code == 201, response.text
    return await login(http, name, password)


async def create(
    http: httpx.AsyncClient, auth: Auth, kind: str, name: str, key: str | None = None
) -> dict[str, Any]:
    """Create a queue (``kind="queues"``) or channel (``"channels"``); return its view."""
    body: dict[str, Any] = {"name": name}
    if key is not None:
        body["access_key"] = key
    response = await http.post(f"/{kind}", json=body, headers=auth)
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    return view


async def inspect(http: httpx.AsyncClient, auth: Auth, kind: str, name: str) -> dict[str, Any]:
    response = await http.get(f"/{kind}/{name}", headers=auth)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def publish(
    http: httpx.AsyncClient,
    auth: Auth,
    kind: str,
    name: str,
    body: str,
    headers: dict[str, str] | None = None,
) -> str:
    """Publish a text body as JSON; return the message id."""
    response = await http.post(
        f"/{kind}/{name}/messages", json={"body": body, "headers": headers or {}}, headers=auth
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["message_id"]
    return message_id


async def pull(
    http: httpx.AsyncClient, auth: Auth, queue: str, **request: int
) -> list[dict[str, Any]]:
    """Pull from a queue (``max``, ``lease_ms``, ``wait_ms``); return the messages."""
    response = await http.post(f"/queues/{queue}/pull", json=request, headers=auth)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def error_of(response: httpx.Response, code: ErrorCode) -> str:
    """Assert ``response`` is the JSON error ``code`` with its status; return the detail."""
    assert response.status_code == code.http_status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert sorted(error) == ["code", "detail", "message"], error
    assert (error["code"], error["message"]) == (code.name, code.message)
    detail = error["detail"]
    assert isinstance(detail, str)
    return detail


async def until_slowed(
    attempt: Callable[[], Awaitable[httpx.Response]], wrong: ErrorCode, at_least: int = 4
) -> httpx.Response:
    """Repeat a wrong guess until the broker asks to wait ``at_least`` seconds; return that
    429. Shorter waits on the way are waited out, so the failures climb the ladder."""
    for _ in range(30):
        response = await attempt()
        if response.status_code != ErrorCode.TOO_MANY_ATTEMPTS.http_status:
            error_of(response, wrong)
            continue
        error_of(response, ErrorCode.TOO_MANY_ATTEMPTS)
        wait = int(response.headers["retry-after"])
        if wait >= at_least:
            return response
        await asyncio.sleep(wait)
    raise AssertionError(f"never asked to wait {at_least} s")


def stomp_send(destination: str, body: bytes, receipt: str | None = None, **headers: str) -> Send:
    """A SEND frame; ``headers`` are extra (``access_key`` becomes ``access-key``)."""
    extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
    return Send(
        destination=destination,
        headers=(("destination", destination), *extra),
        body=body,
        receipt=receipt,
    )


def stomp_subscribe(
    destination: str, receipt: str = "sub", sub_id: str = "s1", ack: str = "auto", **headers: str
) -> Subscribe:
    """A SUBSCRIBE frame; ``headers`` as for :func:`stomp_send`."""
    extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
    return Subscribe(
        destination=destination,
        id=sub_id,
        ack=ack,
        headers=(("destination", destination), ("id", sub_id), ("ack", ack), *extra),
        receipt=receipt,
    )
