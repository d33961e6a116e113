"""Caps on request heads and bodies, enforced before the request reaches a route.

A declared ``Content-Length`` over the cap is refused at once; a chunked body is counted
as it arrives and refused as soon as it passes the cap. Either way the answer is 413 with
the API's error body, and at most the cap (plus one read) is ever held.

A request head (request line and headers) is at most :data:`MAX_REQUEST_HEAD`. h11 refuses
a head that grows past it while still incomplete (``h11_protocol`` answers that with 431
and the API's error body), but accepts any head that arrives whole in one read;
:class:`HeadLimit` refuses those with 431 and the API's error body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buzon.errors import ErrorCode
from buzon.server.http.errors import problem

# 16 KiB: the same order as the STOMP header block and h11's own default.
MAX_REQUEST_HEAD = 16 * 1024
# What a head adds around its parts: " HTTP/1.1\r\n" after the target, ": " and "\r\n"
# per header, and the blank line.
_REQUEST_LINE_EXTRA = len(" HTTP/1.1\r\n")
_HEADER_EXTRA = len(": \r\n")


class HeadLimit:
    """ASGI middleware refusing requests whose head is over ``max_bytes`` with 431."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_HEAD) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _head_size(scope) > self.max_bytes:
            response = problem(
                ErrorCode.HEADERS_TOO_LARGE, f"request heads are at most {self.max_bytes} bytes"
            )
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _head_size(scope: Scope) -> int:
    target = len(scope.get("raw_path") or scope["path"].encode())
    if scope["query_string"]:
        target += 1 + len(scope["query_string"])
    size = len(scope["method"]) + 1 + target + _REQUEST_LINE_EXTRA + 2
    for name, value in scope["headers"]:
        size += len(name) + len(value) + _HEADER_EXTRA
    return size


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            ErrorCode.REQUEST_TOO_LARGE, f"bodies are at most {self.max_bytes} bytes"
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
