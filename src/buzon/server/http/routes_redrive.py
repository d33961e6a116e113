"""Redrive over HTTP: move a dead-letter queue's messages back, follow it, cancel it.

``POST /queues/{name}/redrive`` starts a redrive in the server and answers 202 with its
id at once; ``GET /redrives/{id}`` shows its progress and ``DELETE /redrives/{id}``
cancels it. The target's access key, when the target is another user's protected
queue, comes in ``X-Access-Key`` as for publishing. See ``buzon.server.redrive``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, status
from pydantic import BaseModel, Field

from buzon.auth import Action
from buzon.server.http.schemas import NAME_PATTERN
from buzon.server.http.schemas import Request as RequestBody
from buzon.server.http.security import Ctx, CurrentCaller, grants_for
from buzon.server.http.timefmt import utc
from buzon.server.redrive_mover import Redrive, RedriveState
from buzon.store import DestinationRecord

router = APIRouter(tags=["redrive"])

MAX_RATE = 100_000
"""Messages per second a redrive may be asked for (beyond it, simply unpaced)."""

Name = Annotated[str, Path(max_length=200, description="the dead-letter queue")]
RedriveId = Annotated[str, Path(max_length=100, description="the id POST answered with")]
TargetKey = Annotated[
    str | None,
    Header(
        alias="X-Access-Key",
        max_length=1024,
        description="the target queue's access key, when it is another user's protected queue",
    ),
]


class RedriveRequest(RequestBody):
    to: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="the queue (its name) to move the messages to; null: each message's"
        " x-original-destination (where it was dead-lettered from)",
    )
    rate_per_s: int | None = Field(
        None,
        ge=1,
        le=MAX_RATE,
        strict=True,
        description="messages per second at most, evenly spaced; null: as fast as it goes",
    )
    limit: int | None = Field(
        None,
        ge=1,
        le=2**53,
        strict=True,
        description="most messages to move; null: all waiting now",
    )


class RedriveStatus(BaseModel):
    id: str
    state: RedriveState = Field(description="running, done or failed")
    moved: int = Field(description="messages now in their target (gone from the queue)")
    total: int = Field(description="messages it moves: min(limit, waiting at the start)")
    queue: str = Field(description="the dead-letter queue")
    to: str | None = Field(description="the target queue; null: the original destinations")
    rate_per_s: int | None
    limit: int | None
    error: str | None = Field(description="why it failed (a cancel says who cancelled it)")
    cancelled_by: str | None = Field(description="who cancelled it, if it was cancelled")
    started_by: str
    started_at: datetime
    finished_at: datetime | None


def _status(redrive: Redrive) -> RedriveStatus:
    return RedriveStatus(
        id=redrive.id,
        state=redrive.state,
        moved=redrive.moved,
        total=redrive.total,
        queue=redrive.queue,
        to=redrive.to,
        rate_per_s=redrive.rate_per_s,
        limit=redrive.limit,
        error=redrive.error,
        cancelled_by=redrive.cancelled_by,
        started_by=redrive.started_by,
        started_at=utc(redrive.started_at),
        finished_at=None if redrive.finished_at is None else utc(redrive.finished_at),
    )


@router.post(
    "/queues/{name}/redrive",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Move a dead-letter queue's messages back (owner or admin)",
)
async def start_redrive(
    name: Name,
    body: RedriveRequest,
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    key: TargetKey = None,
) -> RedriveStatus:
    """Moves the messages waiting now (at most ``limit``) to ``to``, or each back to its
    ``x-original-destination``, at most ``rate_per_s`` a second. Each keeps its headers
    and gets ``x-redrive-count``; it is a new message in the target (delivery count 0,
    the target's TTL). A message leaves this queue only once its copy is stored
    (at-least-once). Only the queue's owner or an admin may redrive it, and the target
    must accept the caller's publishes: theirs, public, or with its key in
    ``X-Access-Key``. Refusals seen at once (the queue, ``to``, the first messages'
    original destinations) are this request's answer; one met later fails the redrive,
    leaving that message and the rest in the queue. Follow it with GET
    /redrives/{id}; it runs on the node that got this request."""

    async def authorize(record: DestinationRecord) -> frozenset[str]:
        return await grants_for(ctx, caller, record, Action.PUBLISH, key, request.app.state.grants)

    redrive = await ctx.redrives.start(
        caller.principal,
        name,
        body.to,
        body.rate_per_s,
        body.limit,
        authorize,
        clustered=ctx.cluster is not None,
    )
    return _status(redrive)


@router.get("/redrives/{redrive_id}", summary="Follow a redrive")
async def get_redrive(redrive_id: RedriveId, ctx: Ctx, caller: CurrentCaller) -> RedriveStatus:
    """Visible to who started it and to admins (404 for anyone else), for an hour after
    it ends."""
    return _status(ctx.redrives.get(caller.principal, redrive_id))


@router.delete("/redrives/{redrive_id}", summary="Cancel a redrive")
async def cancel_redrive(redrive_id: RedriveId, ctx: Ctx, caller: CurrentCaller) -> RedriveStatus:
    """Stops it and answers once it has: it ends ``failed`` with ``cancelled_by`` set;
    moved messages stay moved, the rest stay in the queue. A finished redrive is left
    as it is."""
    return _status(await ctx.redrives.cancel(caller.principal, redrive_id))
