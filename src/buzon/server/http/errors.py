"""Every failure of the HTTP API as one JSON shape: ``{"error": {code, message, detail}}``.

This is the one place where errors become HTTP responses: buzon's own errors carry their
ErrorCode (and so their status); FastAPI's validation errors become 400 BAD_REQUEST naming
the first bad field; routing errors become 404 or 405; anything unexpected is logged and
answered 500 INTERNAL_ERROR without details. Bytes that are not HTTP never reach the app;
``h11_protocol`` answers them with :func:`problem` too.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from buzon.errors import GENERIC_BY_STATUS, AuthenticationFailed, BuzonError, ErrorCode

log = logging.getLogger("buzon.http")

# Every 429 says when to come back (RFC 6585); a full broker usually has room again within
# a second, and a failed-login limit says exactly how long.
DEFAULT_RETRY_AFTER = 1

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def problem(
    code: ErrorCode, detail: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error response for ``code``."""
    body = {"error": {"code": code.name, "message": code.message, "detail": detail}}
    headers = dict(headers or {})
    if code.http_status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="buzon"')
    return JSONResponse(body, status_code=code.http_status, headers=headers)


async def _buzon_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BuzonError)
    headers = {}
    if exc.code.http_status == 429:
        wait = exc.retry_after if isinstance(exc, AuthenticationFailed) else None
        seconds = DEFAULT_RETRY_AFTER if wait is None else max(1, math.ceil(wait))
        headers["Retry-After"] = str(seconds)
    return problem(exc.code, exc.detail, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = "invalid request"
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    return problem(ErrorCode.BAD_REQUEST, detail[:300])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = GENERIC_BY_STATUS.get(exc.status_code, ErrorCode.BAD_REQUEST)
    detail = exc.detail if isinstance(exc.detail, str) else ""
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem(code, detail[:300], headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path answers (RFC 9110 asks for all of them in ``Allow``).

    Starlette names only the methods of the first route whose path matched, and a path
    served by several routes (``PATCH`` and ``DELETE /users/{name}``) has more. So each
    method is tried against the app's routes as if the request had used it.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(ErrorCode.INTERNAL_ERROR)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(BuzonError, _buzon_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
