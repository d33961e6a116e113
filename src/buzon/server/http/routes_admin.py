"""The broker as a whole: overview with rates and their history, open connections
(an admin may close one), the cluster's nodes, health."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from buzon import __version__
from buzon.errors import AccessDenied, ErrorCode, RequestError
from buzon.server.cluster_view import cluster_nodes
from buzon.server.http.schemas import (
    Cluster,
    Connection,
    Health,
    Node,
    Overview,
    RateHistory,
    RatePoint,
    Rates,
    Totals,
)
from buzon.server.http.security import Ctx, CurrentCaller
from buzon.server.http.timefmt import utc
from buzon.server.process_memory import resident_bytes

log = logging.getLogger("buzon.http")

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
        memory_bytes=resident_bytes(),
        store_bytes=ctx.store.size_on_disk(),
    )


@router.get("/overview/history", summary="Message rates second by second, for charts")
async def history(ctx: Ctx, caller: CurrentCaller) -> RateHistory:
    # samples carry the loop's monotonic time; shown as wall-clock time
    offset = time.time() - asyncio.get_running_loop().time()
    return RateHistory(
        points=[
            RatePoint(
                at=utc(at + offset),
                published_per_s=round(published, 3),
                delivered_per_s=round(delivered, 3),
            )
            for at, published, delivered in ctx.rates.per_second()
        ]
    )


@router.get("/connections", summary="Open client connections")
async def connections(ctx: Ctx, caller: CurrentCaller) -> list[Connection]:
    """Admins see every connection; others see their own. Connections no longer open
    (told to go, waiting for the peer, or gone) are left out."""
    principal = caller.principal
    shown = []
    for connection in sorted(ctx.connections, key=lambda c: c.connected_at):
        if not connection.open:
            continue  # told to go: it only waits for the peer
        user = connection.principal
        if not principal.is_admin and (user is None or user.id != principal.id):
            continue
        stats = connection.statistics()
        shown.append(
            Connection(
                id=connection.id,
                user=None if user is None else user.name,
                peer=connection.peer,
                protocol=connection.protocol,
                transport=connection.transport_name,
                connected_at=utc(connection.connected_at),
                subscriptions=stats.subscriptions,
                published=stats.published,
                delivered=stats.delivered,
            )
        )
    return shown


@router.delete(
    "/connections/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Close a connection (admin)",
)
async def close_connection(
    connection_id: Annotated[str, Path(max_length=64)], ctx: Ctx, caller: CurrentCaller
) -> Response:
    """The client gets its protocol's error (CONNECTION_CLOSED_BY_ADMIN) and is disconnected; its
    unacknowledged messages go back to their queues. It may connect again. One no longer
    open (as the listing says) is not found."""
    if not caller.principal.is_admin:
        raise AccessDenied(ErrorCode.ACCESS_DENIED, "only an admin may close connections")
    for connection in ctx.connections:
        if connection.id == connection_id and connection.open:
            log.info("%s closed by admin %s", connection.id, caller.principal.name)
            connection.fail(ErrorCode.CONNECTION_CLOSED_BY_ADMIN)
            return Response(status_code=status.HTTP_204_NO_CONTENT)
    raise RequestError(ErrorCode.CONNECTION_NOT_FOUND, f"no open connection {connection_id!r}")


@router.get("/cluster", summary="The cluster's nodes (admin)")
async def cluster(ctx: Ctx, caller: CurrentCaller) -> Cluster:
    """Each node's listeners, last heartbeat, connections and whether it is alive. A
    broker on SQLite or memory storage is a cluster of one: itself."""
    if not caller.principal.is_admin:
        raise AccessDenied(ErrorCode.ACCESS_DENIED, "only an admin may see the cluster's nodes")
    return Cluster(
        nodes=[
            Node(
                name=node.name,
                alive=node.alive,
                listeners=list(node.listeners),
                heartbeat_at=utc(node.heartbeat_at),
                started_at=utc(node.started_at),
                connections=node.connections,
                id=node.id,
            )
            for node in await cluster_nodes(ctx)
        ]
    )


@router.get("/healthz", summary="Liveness (no authentication)")
async def healthz() -> Health:
    return Health(status="ok")


@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    """Load balancers often probe with HEAD."""
    return Response()
