"""Queues and channels as owned resources: create, list, inspect, delete."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from buzon.server.http.schemas import (
    ChannelInfo,
    DurableSubscription,
    NewDestination,
    NewQueue,
    Policy,
    Purged,
    QueueInfo,
    Rates,
)
from buzon.server.http.security import Ctx, CurrentCaller
from buzon.server.http.timefmt import utc
from buzon.server.rates import RateMeter
from buzon.server.resources import DestinationView
from buzon.store import DestinationKind, QueuePolicy

router = APIRouter()

Name = Annotated[str, Path(max_length=200, description="the queue or channel name")]


def _common(view: DestinationView, rates: RateMeter) -> dict[str, Any]:
    published, delivered = rates.destinations.rates(view.address)
    return {
        "id": view.id,
        "name": view.name,
        "address": view.address,
        "owner": view.owner,
        "protected": view.protected,
        "created_at": utc(view.created_at),
        "published": view.published,
        "delivered": view.delivered,
        "rates": Rates(published_per_s=round(published, 3), delivered_per_s=round(delivered, 3)),
    }


def queue_info(view: DestinationView, rates: RateMeter) -> QueueInfo:
    return QueueInfo(
        **_common(view, rates),
        depth=view.depth,
        in_flight=view.in_flight,
        consumers=view.consumers,
        policy=Policy(**dataclasses.asdict(view.policy)),
    )


def channel_info(view: DestinationView, rates: RateMeter) -> ChannelInfo:
    return ChannelInfo(
        **_common(view, rates),
        subscribers=view.consumers,
        durable_subscriptions=[
            DurableSubscription(name=name, owner=owner, backlog=backlog)
            for name, owner, backlog in view.durables
        ],
    )


@router.get("/queues", tags=["queues"], summary="List queues")
async def list_queues(ctx: Ctx, caller: CurrentCaller) -> list[QueueInfo]:
    return [queue_info(v, ctx.rates) for v in await ctx.resources.list(DestinationKind.QUEUE)]


@router.post("/queues", status_code=status.HTTP_201_CREATED, tags=["queues"], summary="Create")
async def create_queue(body: NewQueue, ctx: Ctx, caller: CurrentCaller) -> QueueInfo:
    """The caller owns the new queue; with an access key, others must present it. The
    policy (durability, maximum length, TTL, dead-lettering) is fixed at creation."""
    policy = QueuePolicy(**body.policy.model_dump())
    view = await ctx.resources.create(
        caller.principal, DestinationKind.QUEUE, body.name, body.access_key, policy
    )
    return queue_info(view, ctx.rates)


@router.post("/queues/{name}/purge", tags=["queues"], summary="Purge (owner or admin)")
async def purge_queue(name: Name, ctx: Ctx, caller: CurrentCaller) -> Purged:
    """Drops the waiting messages; those delivered and not yet acknowledged stay."""
    return Purged(purged=await ctx.resources.purge(caller.principal, name))


@router.get("/queues/{name}", tags=["queues"], summary="Inspect a queue")
async def get_queue(name: Name, ctx: Ctx, caller: CurrentCaller) -> QueueInfo:
    return queue_info(await ctx.resources.describe(DestinationKind.QUEUE, name), ctx.rates)


@router.delete(
    "/queues/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["queues"],
    summary="Delete a queue (owner or admin)",
)
async def delete_queue(name: Name, ctx: Ctx, caller: CurrentCaller) -> Response:
    """Its messages are dropped; its consumers get an ERROR and are disconnected."""
    await ctx.resources.delete(caller.principal, DestinationKind.QUEUE, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/channels", tags=["channels"], summary="List channels")
async def list_channels(ctx: Ctx, caller: CurrentCaller) -> list[ChannelInfo]:
    return [channel_info(v, ctx.rates) for v in await ctx.resources.list(DestinationKind.CHANNEL)]


@router.post("/channels", status_code=status.HTTP_201_CREATED, tags=["channels"], summary="Create")
async def create_channel(body: NewDestination, ctx: Ctx, caller: CurrentCaller) -> ChannelInfo:
    """The caller owns the new channel; with an access key, others must present it."""
    view = await ctx.resources.create(
        caller.principal, DestinationKind.CHANNEL, body.name, body.access_key
    )
    return channel_info(view, ctx.rates)


@router.get("/channels/{name}", tags=["channels"], summary="Inspect a channel")
async def get_channel(name: Name, ctx: Ctx, caller: CurrentCaller) -> ChannelInfo:
    return channel_info(await ctx.resources.describe(DestinationKind.CHANNEL, name), ctx.rates)


@router.delete(
    "/channels/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["channels"],
    summary="Delete a channel (owner or admin)",
)
async def delete_channel(name: Name, ctx: Ctx, caller: CurrentCaller) -> Response:
    """Its subscribers get an ERROR and are disconnected."""
    await ctx.resources.delete(caller.principal, DestinationKind.CHANNEL, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
