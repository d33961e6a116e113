"""A queue's scheduled messages: those published with a delay, and NACKed ones waiting
for their retry. Listing shows their bodies, so it needs the right to consume (as a peek
does); delivering one now or cancelling it changes the queue, so only its owner or an
admin may (as for a purge).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from buzon.server.http.routes_messages import (
    AccessKey,
    consumer_grants,
    headers_of,
    text_or_base64,
)
from buzon.server.http.schemas import MAX_BATCH, Scheduled, ScheduledMessage
from buzon.server.http.security import Ctx, CurrentCaller
from buzon.server.http.timefmt import utc

router = APIRouter(tags=["queues"])

Name = Annotated[str, Path(max_length=200, description="the queue name")]
MessageId = Annotated[str, Path(max_length=200, description="the scheduled message's id")]


@router.get("/queues/{name}/scheduled", summary="List a queue's scheduled messages")
async def list_scheduled(
    name: Name,
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    key: AccessKey = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH, description="most messages")] = 20,
) -> Scheduled:
    """The messages waiting for their time, soonest first. Allowed to whoever may
    consume from the queue."""
    _, grants = await consumer_grants(ctx, request, caller, name, key)
    now = time.time()
    shown = []
    for when, message in ctx.broker.scheduled(caller.principal, name, limit, grants):
        text, binary = text_or_base64(message.body)
        shown.append(
            ScheduledMessage(
                message_id=message.id,
                headers=headers_of(message),
                body=text,
                body_base64=binary,
                deliver_at=utc(when),
                deliver_at_ms=int(when * 1000),
                seconds_left=round(max(0.0, when - now), 3),
            )
        )
    return Scheduled(messages=shown)


@router.post(
    "/queues/{name}/scheduled/{message_id}/deliver",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Deliver a scheduled message now (owner or admin)",
)
async def deliver_scheduled(
    name: Name, message_id: MessageId, ctx: Ctx, caller: CurrentCaller
) -> Response:
    """It joins the queue's waiting messages at once, in its place by age. 404 when no
    message with that id is scheduled (delivered or cancelled already)."""
    await ctx.resources.settle_scheduled(caller.principal, name, message_id, deliver=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/queues/{name}/scheduled/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Cancel a scheduled message (owner or admin)",
)
async def cancel_scheduled(
    name: Name, message_id: MessageId, ctx: Ctx, caller: CurrentCaller
) -> Response:
    """The message is dropped for good, never delivered. 404 when no message with that id
    is scheduled."""
    await ctx.resources.settle_scheduled(caller.principal, name, message_id, deliver=False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
