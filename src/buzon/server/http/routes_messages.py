"""Messages over HTTP: publish to a queue or channel, and pull from a queue with a lease.

Publishing takes either JSON (``{"body": ..., "headers": {...}, "priority": 0..9}``, or
``body_base64`` for binary data) or any other content type as the raw body, whose type is
kept in the ``content-type`` header. When the queues are over their memory bound the
broker answers 429 with Retry-After instead of buffering: an HTTP publisher is slowed like
a STOMP one.

Publishing to a queue may schedule the message (``delay_ms`` or ``deliver_at_ms``): it is
stored at once and delivered no earlier than that time.

Pulling leases messages: each comes with a receipt to ack or nack it; a lease that runs
out returns the message to the queue, marked redelivered. ``wait_ms`` long-polls until a
first message arrives. A nack may delay the redelivery, dead-letter the messages
(``requeue: false``) and say why they failed (``error``).

Peeking (``GET .../messages``) shows the oldest waiting messages and leaves them waiting;
it needs the same right as consuming, since it reads the bodies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, status
from pydantic import ValidationError

from buzon.auth import Action, Principal
from buzon.broker import ACCEPT, RELEASE, Channel, Disposition, Lease, Message, Outcome, Queue
from buzon.broker.addresses import check_key as check_routing_key
from buzon.broker.addresses import keyed
from buzon.broker.dedup import IDEMPOTENCY_HEADER, MAX_KEY_BYTES, check_key
from buzon.errors import BrokerError, ErrorCode, RequestError
from buzon.priority import PRIORITY_HEADER
from buzon.server.context import ServerContext
from buzon.server.durable import until_durable
from buzon.server.http.schemas import (
    MAX_BATCH,
    MAX_HEADERS,
    NackRequest,
    NewMessage,
    Peeked,
    PeekedMessage,
    Published,
    Pulled,
    PulledMessage,
    PullRequest,
    Receipts,
    Settled,
)
from buzon.server.http.security import Caller, Ctx, CurrentCaller, grants_for, header_text
from buzon.server.http.timefmt import utc
from buzon.server.publish_headers import SCHEDULE_HEADERS, split_publish
from buzon.server.queue_waits import wait_ready
from buzon.server.stomp_commands import RESERVED_HEADERS
from buzon.store import DestinationKind

router = APIRouter(tags=["messages"])

Name = Annotated[str, Path(max_length=200)]
AccessKey = Annotated[
    str | None,
    Header(alias="X-Access-Key", max_length=1024, description="the destination's access key"),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=1024,
        description="publish at most once per queue within its dedup_window_ms: a repeat"
        " answers 200 with the first message's id instead of 201 (at most 256 bytes)",
    ),
]
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8 * 1024

_MESSAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,  # an empty body is an empty message
        "content": {
            # inline: no route takes NewMessage as its body, so FastAPI never adds it to
            # the document's components and a $ref to it would dangle
            "application/json": {"schema": NewMessage.model_json_schema()},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


async def read_message(
    request: Request, max_delay_ms: int
) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """The headers and body a publish request carries; ``delay_ms`` and ``deliver_at_ms``
    become the engine's ``delay`` and ``deliver-at`` headers.

    Raises:
        RequestError: BAD_REQUEST for invalid JSON, both or bad base64, bad headers, or a
            delay that is negative, further than ``max_delay_ms`` or given twice.
    """
    content_type = request.headers.get("content-type", "application/octet-stream")
    raw = await request.body()
    if content_type.split(";")[0].strip().lower() != "application/json":
        return (("content-type", content_type[:MAX_HEADER_VALUE]),), raw
    try:
        message = NewMessage.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        detail = "invalid JSON body"
        if errors:
            where = ".".join(str(part) for part in errors[0]["loc"])
            detail = f"{where}: {errors[0]['msg']}" if where else errors[0]["msg"]
        raise RequestError(ErrorCode.BAD_REQUEST, detail[:300]) from None
    headers = _checked_headers(message.headers)
    if message.priority is not None:  # the field wins over a header of the same name
        headers = ((PRIORITY_HEADER, str(message.priority)), *headers)
    return headers + _schedule(message, headers, max_delay_ms), _body_of(message)


def _schedule(
    message: NewMessage, headers: tuple[tuple[str, str], ...], max_delay_ms: int
) -> tuple[tuple[str, str], ...]:
    """The engine headers for the message's ``delay_ms`` or ``deliver_at_ms``."""
    delay, at = message.delay_ms, message.deliver_at_ms
    if delay is None and at is None:
        return ()
    if delay is not None and at is not None:
        raise RequestError(ErrorCode.BAD_REQUEST, "give delay_ms or deliver_at_ms, not both")
    if any(name in SCHEDULE_HEADERS for name, _ in headers):
        raise RequestError(
            ErrorCode.BAD_REQUEST,
            "give delay_ms or deliver_at_ms, or the delay or deliver-at header, not both",
        )
    if delay is not None:
        at_most("delay_ms", delay, max_delay_ms)
        return (("delay", str(delay)),)
    assert at is not None
    at_most("deliver_at_ms", at - int(time.time() * 1000), max_delay_ms, " from now")
    return (("deliver-at", str(at)),)


def at_most(field: str, value: int, most_ms: int, suffix: str = "") -> None:
    """Refuse a time further ahead than the broker's ``--max-delay-ms``.

    Raises:
        RequestError: BAD_REQUEST naming ``field``.
    """
    if value > most_ms:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{field}: must be at most {most_ms} ms{suffix}")


def _body_of(message: NewMessage) -> bytes:
    if message.body is not None and message.body_base64 is not None:
        raise RequestError(ErrorCode.BAD_REQUEST, "give body or body_base64, not both")
    if message.body_base64 is not None:
        try:
            return base64.b64decode(message.body_base64, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(ErrorCode.BAD_REQUEST, "body_base64 is not base64") from None
    return (message.body or "").encode()


def _checked_headers(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    if len(headers) > MAX_HEADERS:
        raise RequestError(ErrorCode.BAD_REQUEST, f"at most {MAX_HEADERS} headers")
    for name, value in headers.items():
        if not 0 < len(name) <= MAX_HEADER_NAME or len(value) > MAX_HEADER_VALUE:
            raise RequestError(ErrorCode.BAD_REQUEST, f"header {name[:40]!r} is empty or too long")
        if name in RESERVED_HEADERS:
            raise RequestError(
                ErrorCode.BAD_REQUEST,
                f"header {name!r} is reserved (set by the broker or the protocol)",
            )
    return tuple(headers.items())


async def _publish(
    ctx: ServerContext,
    request: Request,
    response: Response,
    caller: Caller,
    kind: DestinationKind,
    name: str,
    key: str | None,
    idempotency_key: str | None = None,
    *,
    routing_key: str = "",
) -> Published:
    headers, body = await read_message(request, ctx.broker.config.max_delay_ms)
    if idempotency_key is not None:
        headers = ((IDEMPOTENCY_HEADER, _checked_key(header_text(idempotency_key))), *headers)
    target = ctx.resources.target(kind, name)
    grants = await grants_for(
        ctx, caller, target.record, Action.PUBLISH, key, request.app.state.grants
    )
    if ctx.broker.over_high_water:  # after the access check: a stranger learns nothing
        raise BrokerError(ErrorCode.LIMIT_EXCEEDED, "the broker is full; retry shortly")
    headers, options = split_publish(headers)
    destination = keyed(target.address, routing_key)
    published = ctx.broker.publish(caller.principal, destination, headers, body, grants, options)
    if published.ticket is not None:
        await until_durable(published.ticket)
    if published.duplicate:
        response.status_code = status.HTTP_200_OK
    return Published(message_id=published.message_id)


def _checked_key(key: str) -> str:
    """The ``Idempotency-Key`` request header, refused (400 naming it) when empty or over
    256 bytes, before anything is published."""
    try:
        return check_key(key)
    except BrokerError:
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"Idempotency-Key must be 1 to {MAX_KEY_BYTES} bytes of UTF-8"
        ) from None


@router.post(
    "/queues/{name}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Publish to a queue",
    openapi_extra=_MESSAGE_BODY,
    responses={200: {"model": Published, "description": "a repeat of an Idempotency-Key"}},
)
async def publish_to_queue(
    name: Name,
    request: Request,
    response: Response,
    ctx: Ctx,
    caller: CurrentCaller,
    key: AccessKey = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Published:
    """201 with the new message's id; with an ``Idempotency-Key`` the queue saw within its
    ``dedup_window_ms``, 200 with the first message's id (nothing is enqueued)."""
    return await _publish(
        ctx, request, response, caller, DestinationKind.QUEUE, name, key, idempotency_key
    )


@router.post(
    "/channels/{name}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Publish to a channel",
    openapi_extra=_MESSAGE_BODY,
)
async def publish_to_channel(
    name: Name,
    request: Request,
    response: Response,
    ctx: Ctx,
    caller: CurrentCaller,
    key: AccessKey = None,
    routing_key: Annotated[
        str,
        Query(
            max_length=1024,
            description="what a direct or topic channel routes the message by (at most 255"
            " bytes of UTF-8, no control characters)",
        ),
    ] = "",
) -> Published:
    """Delivered to every subscriber connected now whose binding matches (all of them on
    a fanout channel) and to the queues bound to it; nobody listening means nobody gets
    it (so ``delay_ms`` and ``deliver_at_ms`` are refused)."""
    check_routing_key(routing_key, "routing_key")  # 400 BAD_DESTINATION, naming it
    return await _publish(
        ctx, request, response, caller, DestinationKind.CHANNEL, name, key, routing_key=routing_key
    )


@router.get("/queues/{name}/messages", summary="Peek at the head of a queue")
async def peek(
    name: Name,
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    key: AccessKey = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH, description="most messages")] = 10,
) -> Peeked:
    """The oldest waiting messages, left in the queue (those in flight are not shown).
    Allowed to whoever may consume from the queue."""
    target, grants = await consumer_grants(ctx, request, caller, name, key)
    shown = ctx.broker.peek(caller.principal, name, limit, grants)
    if ctx.cluster is not None and len(shown) < limit:
        # in a cluster, most waiting messages are in the database, held by no node
        shown += await ctx.cluster.peek_unclaimed(target.record.id, limit - len(shown))
        shown = sorted(shown, key=lambda pair: pair[0].seq)[:limit]
    return Peeked(messages=[_peeked(message, redelivered) for message, redelivered in shown])


async def consumer_grants(
    ctx: ServerContext, request: Request, caller: Caller, name: str, key: str | None
) -> tuple[Queue | Channel, frozenset[str]]:
    """The queue ``name`` and the grants with which ``caller`` may consume from it (or read
    its messages), the access ``key`` checked.

    Raises:
        BrokerError: DESTINATION_NOT_FOUND.
        AccessDenied: ACCESS_KEY_WRONG (the engine answers a missing key).
    """
    target = ctx.resources.target(DestinationKind.QUEUE, name)
    grants = await grants_for(
        ctx, caller, target.record, Action.CONSUME, key, request.app.state.grants
    )
    return target, grants


CLAIM_WAIT = 1.0
"""Seconds a pull waits at least, in a cluster, when the queue has waiting messages."""


@router.post("/queues/{name}/pull", summary="Pull messages with a lease")
async def pull(
    name: Name,
    request: Request,
    ctx: Ctx,
    caller: CurrentCaller,
    key: AccessKey = None,
    body: Annotated[PullRequest | None, Body()] = None,
) -> Pulled:
    """Returns at most ``max`` messages, waiting up to ``wait_ms`` for a first one."""
    asked = body or PullRequest()
    target, grants = await consumer_grants(ctx, request, caller, name, key)
    loop = asyncio.get_running_loop()
    wait = asked.wait_ms / 1000
    if ctx.cluster is not None and isinstance(target, Queue) and target.statistics().depth:
        # in a cluster, waiting messages are claimed from the database on demand: give
        # that round trip its time, so a pull without a wait still finds them
        wait = max(wait, CLAIM_WAIT)
    deadline = loop.time() + wait
    lease_seconds = asked.lease_ms / 1000
    while True:
        leases = ctx.broker.pull(
            caller.principal, name, asked.max, lease_seconds, loop.time(), grants
        )
        if leases or loop.time() >= deadline:
            break
        queue = ctx.resources.target(DestinationKind.QUEUE, name)
        if isinstance(queue, Queue):
            await wait_ready(queue, deadline)
    expires = time.time() + lease_seconds
    return Pulled(messages=[_pulled(lease, expires) for lease in leases])


def _pulled(lease: Lease, expires_at: float) -> PulledMessage:
    message = lease.message
    text, binary = text_or_base64(message.body)
    return PulledMessage(
        message_id=message.id,
        receipt=lease.receipt,
        destination=message.destination,
        headers=headers_of(message),
        body=text,
        body_base64=binary,
        redelivered=lease.redelivered,
        lease_expires_at=utc(expires_at),
    )


def _peeked(message: Message, redelivered: bool) -> PeekedMessage:
    text, binary = text_or_base64(message.body)
    return PeekedMessage(
        message_id=message.id,
        headers=headers_of(message),
        body=text,
        body_base64=binary,
        redelivered=redelivered,
    )


def headers_of(message: Message) -> dict[str, str]:
    return dict(reversed(message.headers))  # the first of repeated headers wins


def text_or_base64(body: bytes) -> tuple[str | None, str | None]:
    """The body as text when it is UTF-8, else as base64."""
    try:
        return body.decode(), None
    except UnicodeDecodeError:
        return None, base64.b64encode(body).decode()


@router.post("/queues/{name}/ack", summary="Acknowledge pulled messages")
async def ack(name: Name, body: Receipts, ctx: Ctx, caller: CurrentCaller) -> Settled:
    """All receipts or none: an unknown or expired receipt fails the whole request."""
    await _settle(ctx, caller.principal, name, body.receipts, ACCEPT)
    return Settled(settled=len(body.receipts))


@router.post("/queues/{name}/nack", summary="Return pulled messages to the queue")
async def nack(name: Name, body: NackRequest, ctx: Ctx, caller: CurrentCaller) -> Settled:
    """They are redelivered, marked redelivered, in their original order: after
    ``requeue_delay_ms``, or else the queue's retry back-off (at once without one). With
    ``requeue: false`` they go to the dead-letter queue (reason ``rejected``). ``error`` is
    kept with each message (``x-last-error`` once dead-lettered)."""
    outcome = RELEASE
    if not body.requeue and body.requeue_delay_ms is not None:
        raise RequestError(
            ErrorCode.BAD_REQUEST, "requeue_delay_ms: a redelivery's delay, not with requeue false"
        )
    if not body.requeue or body.requeue_delay_ms is not None or body.error is not None:
        if body.requeue_delay_ms is not None:
            at_most("requeue_delay_ms", body.requeue_delay_ms, ctx.broker.config.max_delay_ms)
        disposition = Disposition.RELEASE if body.requeue else Disposition.REJECT
        outcome = Outcome(disposition, body.requeue_delay_ms, body.error)
    await _settle(ctx, caller.principal, name, body.receipts, outcome)
    return Settled(settled=len(body.receipts))


async def _settle(
    ctx: ServerContext,
    principal: Principal,
    name: str,
    receipts: list[str],
    outcome: Outcome,
) -> None:
    """Settle leases here, and in a cluster those another node holds, through it (all or
    none per node: the other nodes' first, then this one's)."""
    cluster = ctx.cluster
    if cluster is None:
        ctx.broker.settle(principal, name, receipts, outcome)
        return
    elsewhere: dict[int, list[str]] = {}
    here = []
    for receipt in receipts:
        node = cluster.holder_node(receipt)
        if node is None:
            here.append(receipt)
        else:
            elsewhere.setdefault(node, []).append(receipt)
    for node, held in elsewhere.items():
        await cluster.settle_remote(node, principal.id, name, held, outcome)
    if here:
        ctx.broker.settle(principal, name, here, outcome)
