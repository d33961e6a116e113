"""The FastAPI application: routes under ``/api/v1``, errors, limits, OpenAPI and docs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp

from buzon import __version__
from buzon.server.context import ServerContext
from buzon.server.http import docs, errors
from buzon.server.http.limits import BodyLimit, HeadLimit
from buzon.server.http.routes_admin import router as admin_routes
from buzon.server.http.routes_dashboard import router as dashboard_routes
from buzon.server.http.routes_destinations import router as destination_routes
from buzon.server.http.routes_info import router as info_routes
from buzon.server.http.routes_messages import router as message_routes
from buzon.server.http.routes_metrics import router as metrics_routes
from buzon.server.http.routes_redrive import router as redrive_routes
from buzon.server.http.routes_scheduled import router as scheduled_routes
from buzon.server.http.routes_users import router as user_routes
from buzon.server.http.routes_websocket import router as websocket_routes
from buzon.server.http.schemas import Problem
from buzon.server.http.security import TokenGrants
from buzon.server.http.security_headers import SecurityHeaders
from buzon.server.metrics import metrics_registry

PREFIX = "/api/v1"

DESCRIPTION = (
    "Management and messaging API of the buzon broker: accounts, queues and channels as owned"
    " resources, publishing, and pulling from queues with leases. Authenticate with a bearer"
    " token from POST /api/v1/sessions, or HTTP Basic. Every error is a JSON body"
    ' {"error": {"code", "message", "detail"}}.'
)


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # outermost, around Starlette's error middleware, so that even a 500 has them
        return SecurityHeaders(super().build_middleware_stack())


def build_app(ctx: ServerContext) -> FastAPI:
    """The HTTP application of one server."""
    app = _App(
        title="buzon",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses={
            status: {"model": Problem, "description": text}
            for status, text in (
                (400, "invalid request"),
                (401, "authentication required or failed"),
                (403, "not allowed"),
                (404, "not found"),
                (409, "conflict"),
                (413, "request too large"),
                (429, "too many attempts, or the broker is full"),
            )
        },
    )
    app.state.ctx = ctx
    app.state.grants = TokenGrants()
    app.state.metrics = metrics_registry(ctx)
    errors.install(app)
    for router in (
        user_routes,
        destination_routes,
        message_routes,
        scheduled_routes,
        redrive_routes,
        admin_routes,
        info_routes,
    ):
        app.include_router(router, prefix=PREFIX)
    app.include_router(metrics_routes)  # /metrics, where scrapers look
    app.include_router(dashboard_routes)  # the web dashboard at /
    app.include_router(websocket_routes)  # STOMP over WebSocket at /ws

    def openapi() -> dict[str, Any]:
        """The generated document, corrected where FastAPI cannot express the API."""
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # registering needs no credentials while registration is open
            spec["paths"][f"{PREFIX}/users"]["post"]["security"] = [
                {},
                {"HTTPBearer": []},
                {"HTTPBasic": []},
            ]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(
            docs.render(app.openapi()),
            headers={"Content-Security-Policy": docs.CONTENT_SECURITY_POLICY},
        )

    app.add_middleware(BodyLimit, max_bytes=ctx.settings.http_max_body)
    app.add_middleware(HeadLimit)
    return app
