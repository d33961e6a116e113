"""``GET /metrics``: Prometheus metrics, for an admin unless ``--no-metrics-auth``.

The metrics name every queue and channel, so by default only an admin may read them
(Bearer token or HTTP Basic, as for the API: a Prometheus scrape config can send either).
``metrics_auth`` off opens the endpoint for a scraper on a trusted network; credentials a
request still sends are checked all the same.

Not under ``/api/v1`` and not in the OpenAPI document: the body is Prometheus text, not
JSON, and scrapers look for ``/metrics`` by convention.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from buzon.errors import AccessDenied, AuthenticationFailed, ErrorCode
from buzon.server.http.security import Ctx, OptionalCaller

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, ctx: Ctx, caller: OptionalCaller) -> Response:
    if ctx.settings.metrics_auth:
        if caller is None:
            raise AuthenticationFailed(
                ErrorCode.NOT_AUTHENTICATED, "send 'Authorization: Bearer <token>' or Basic"
            )
        if not caller.principal.is_admin:
            raise AccessDenied(ErrorCode.ACCESS_DENIED, "metrics are for admins")
    registry: CollectorRegistry = request.app.state.metrics
    # text format 0.0.4, or OpenMetrics when the scraper asks for it
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=content_type)
