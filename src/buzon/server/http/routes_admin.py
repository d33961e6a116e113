"""The broker as a whole: overview with rates, open connections, health."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from buzon import __version__
from buzon.server.http.schemas import Connection, Health, Overview, Rates, Totals
from buzon.server.http.security import Ctx, CurrentCaller
from buzon.server.http.timefmt import utc

router = APIRouter(tags=["broker"])


@router.get("/overview", summary="Counts and message rates")
async def overview(ctx: Ctx, caller: CurrentCaller) -> Overview:
    stats = ctx.broker.statistics()
    published, delivered = ctx.rates.rates()
    return Overview(
        version=__version__,
        uptime_s=round(time.time() - ctx.started_at, 3),
        connections=len(ctx.connections),
        users=len(await ctx.store.users()),
        queues=len(stats.queues),
        channels=len(stats.channels),
        messages=Totals(
            published=stats.messages_published,
            delivered=stats.messages_delivered,
            queued_bytes=stats.queued_bytes,
        ),
        rates=Rates(published_per_s=round(published, 3), delivered_per_s=round(delivered, 3)),
    )


@router.get("/connections", summary="Open STOMP connections")
async def connections(ctx: Ctx, caller: CurrentCaller) -> list[Connection]:
    """Admins see every connection; others see their own."""
    principal = caller.principal
    shown = []
    for connection in sorted(ctx.connections, key=lambda c: c.connected_at):
        session = connection.session
        if not principal.is_admin and (session is None or session.principal.id != principal.id):
            continue
        stats = None if session is None else session.statistics()
        shown.append(
            Connection(
                id=connection.id,
                user=None if session is None else session.principal.name,
                peer=connection.peer,
                protocol=connection.protocol,
                connected_at=utc(connection.connected_at),
                subscriptions=0 if stats is None else stats.subscriptions,
                published=0 if stats is None else stats.published,
                delivered=0 if stats is None else stats.delivered,
            )
        )
    return shown


@router.get("/healthz", summary="Liveness (no authentication)")
async def healthz() -> Health:
    return Health(status="ok")


@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    """Load balancers often probe with HEAD."""
    return Response()
