"""Bytes that are not HTTP get the API's JSON error body, over a raw socket to a real listener.

Such a request never reaches the application (h11 refuses it first), so this is the
listener's own answer: the same ``{"error": ...}`` shape as every other error, then the
connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from tests.http.helpers import error_of
from tests.server.harness import TIMEOUT


async def raw_answer(port: int, request: bytes) -> httpx.Response:
    """Send ``request`` as is and read until the server closes; the answer as a response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            answer = await reader.read()  # to EOF: returns only once the server closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = [(name, value) for name, _, value in (h.partition(": ") for h in header_lines)]
    return httpx.Response(int(status), headers=headers, content=body)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"NOT AN HTTP REQUEST\r\n\r\n", id="bad request line"),
        pytest.param(
            b"NOT AN HTTP REQUEST\r\n\r\n" + b"x" * (17 * 1024), id="bad request line, then 17 KiB"
        ),
        pytest.param(b"GET /api/v1/healthz HTTP/1.1\r\nX-Nul: a\0b\r\n\r\n", id="nul in value"),
        pytest.param(b"GET /api/v1/healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", id="bad header"),
        pytest.param(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", id="no colon"),
        pytest.param(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            id="conflicting content-length",
        ),
    ],
)
async def test_malformed_http_is_a_json_400_and_closes(
    server: BuzonServer, http: httpx.AsyncClient, request_bytes: bytes
) -> None:
    response = await raw_answer(server.http_port, request_bytes)
    assert error_of(response, ErrorCode.BAD_REQUEST) == "malformed HTTP request"
    assert response.headers["connection"] == "close"
    assert (await http.get("/healthz")).status_code == 200  # the listener serves on


async def test_a_head_that_never_ends_is_a_json_431(
    server: BuzonServer, http: httpx.AsyncClient
) -> None:
    unfinished = b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * (17 * 1024)
    response = await raw_answer(server.http_port, unfinished)
    detail = error_of(response, ErrorCode.HEADERS_TOO_LARGE)
    assert detail == "request heads are at most 16384 bytes"  # as for a head that ended
    assert response.headers["connection"] == "close"
    assert (await http.get("/healthz")).status_code == 200
