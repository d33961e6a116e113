"""Queues and channels as owned resources: create, list, inspect, change the key, delete;
and the queue bindings of channels.

A queue whose dead-letter queue is someone else's protected queue is created with that
queue's key in ``dead_letter_access_key`` (dead-lettering publishes there); after that key
changes, its owner presents the new one with PATCH.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from buzon.broker.addresses import MAX_KEY_BYTES
from buzon.server.bindings import BindingView
from buzon.server.context import ServerContext
from buzon.server.http.schemas import (
    BindingInfo,
    ChannelInfo,
    DestinationPatch,
    DurableSubscription,
    NewBinding,
    NewChannel,
    NewQueue,
    Policy,
    Purged,
    QueueInfo,
    Rates,
)
from buzon.server.http.security import Caller, Ctx, CurrentCaller
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
    stats = view.queue
    return QueueInfo(
        **_common(view, rates),
        depth=view.depth,
        in_flight=view.in_flight,
        consumers=view.consumers,
        scheduled=0 if stats is None else stats.scheduled,
        scheduled_total=0 if stats is None else stats.scheduled_total,
        retried=0 if stats is None else stats.retried,
        dead_lettered_by_reason={} if stats is None else dict(stats.dead_lettered_by_reason),
        lease_expired=0 if stats is None else stats.lease_expired,
        late_settles=0 if stats is None else stats.late_settles,
        policy=Policy(**dataclasses.asdict(view.policy)),
    )


def channel_info(view: DestinationView, rates: RateMeter) -> ChannelInfo:
    return ChannelInfo(
        **_common(view, rates),
        type=view.channel_type,
        subscribers=view.consumers,
        bindings=view.bindings,
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
    policy (durability, maximum length, TTL, dead-lettering) is fixed at creation. A
    dead-letter queue must be one the caller may publish to: public, their own, any as an
    admin, or someone else's protected queue whose key is in ``dead_letter_access_key``
    (403 otherwise)."""
    policy = QueuePolicy(**body.policy.model_dump())
    view = await ctx.resources.create(
        caller.principal,
        DestinationKind.QUEUE,
        body.name,
        body.access_key,
        policy,
        body.dead_letter_access_key,
        client_address=caller.address,
    )
    return queue_info(view, ctx.rates)


async def _update(
    kind: DestinationKind, name: str, body: DestinationPatch, caller: Caller, request: Request
) -> DestinationView:
    ctx: ServerContext = request.app.state.ctx
    new_key = "access_key" in body.model_fields_set
    view = await ctx.resources.update(
        caller.principal,
        kind,
        name,
        access_key=body.access_key,
        remove_key=new_key and body.access_key is None,
        dead_letter_key=body.dead_letter_access_key,
        client_address=caller.address,
    )
    return view


@router.patch("/queues/{name}", tags=["queues"], summary="Change the access key (owner or admin)")
async def update_queue(
    name: Name, body: DestinationPatch, ctx: Ctx, caller: CurrentCaller, request: Request
) -> QueueInfo:
    """A new ``access_key`` takes effect at once: connections that used the old key, or
    consume without being owner or admin, get an ERROR (``PERMISSIONS_CHANGED``) and are
    closed, and remembered HTTP grants are forgotten. ``null`` removes the key.
    ``dead_letter_access_key`` presents the dead-letter queue's key again after it changed
    (until then, messages dead-lettered there are dropped and counted)."""
    view = await _update(DestinationKind.QUEUE, name, body, caller, request)
    return queue_info(view, ctx.rates)


@router.patch(
    "/channels/{name}", tags=["channels"], summary="Change the access key (owner or admin)"
)
async def update_channel(
    name: Name, body: DestinationPatch, ctx: Ctx, caller: CurrentCaller, request: Request
) -> ChannelInfo:
    """As for queues: a new key closes the connections that used the old one."""
    view = await _update(DestinationKind.CHANNEL, name, body, caller, request)
    return channel_info(view, ctx.rates)


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
async def create_channel(body: NewChannel, ctx: Ctx, caller: CurrentCaller) -> ChannelInfo:
    """The caller owns the new channel; with an access key, others must present it. Its
    ``type`` is fixed: creating it again with another type is a 409 naming both."""
    view = await ctx.resources.create(
        caller.principal,
        DestinationKind.CHANNEL,
        body.name,
        body.access_key,
        channel_type=body.type,
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


def binding_info(view: BindingView) -> BindingInfo:
    return BindingInfo(
        channel=view.channel,
        queue=view.queue,
        routing_key=view.key,
        owner=view.owner,
        created_at=utc(view.created_at),
        active=view.active,
    )


@router.get("/channels/{name}/bindings", tags=["channels"], summary="List its queue bindings")
async def list_bindings(name: Name, ctx: Ctx, caller: CurrentCaller) -> list[BindingInfo]:
    return [binding_info(view) for view in await ctx.resources.bindings.list(name)]


@router.post(
    "/channels/{name}/bindings",
    status_code=status.HTTP_201_CREATED,
    tags=["channels"],
    summary="Bind a queue",
)
async def bind_queue(name: Name, body: NewBinding, ctx: Ctx, caller: CurrentCaller) -> BindingInfo:
    """Every message of the channel whose routing key the binding key matches is also
    enqueued in the queue (once, however many of its bindings match). The caller needs the
    right to consume from the channel and to publish into the queue: public, their own, an
    admin, or the access key (``channel_access_key``, ``queue_access_key``). When either
    key changes later, the binding stops routing (``active: false``) until bound again
    with the new key. Binding again with the same key is not an error."""
    view = await ctx.resources.bindings.bind(
        caller.principal,
        name,
        body.queue,
        body.routing_key,
        channel_key=body.channel_access_key,
        queue_key=body.queue_access_key,
        client_address=caller.address,
    )
    return binding_info(view)


@router.delete(
    "/channels/{name}/bindings",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["channels"],
    summary="Remove a queue binding (its maker, either owner or an admin)",
)
async def unbind_queue(
    name: Name,
    ctx: Ctx,
    caller: CurrentCaller,
    queue: Annotated[str, Query(max_length=200, description="the bound queue")],
    routing_key: Annotated[
        str, Query(max_length=MAX_KEY_BYTES, description="its binding key (URL-encoded)")
    ] = "",
) -> Response:
    """404 when the queue is not bound with that key."""
    await ctx.resources.bindings.unbind(caller.principal, name, queue, routing_key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
