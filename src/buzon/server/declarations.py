"""Declaring a queue: make it if missing, else check it is what the declarer expects.

AMQP clients declare every queue they use, each time they connect, with the properties
they expect; the broker creates a missing one and refuses one that exists with other
properties (406 PRECONDITION_FAILED in AMQP), so two programs that disagree about a queue
find out at once instead of losing messages. A passive declare only asks whether the
queue exists. The properties compared are the ones a declaration can state; what only
buzon's HTTP API sets (max deliveries, retry back-off, ...) is not part of a declaration.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

from buzon.auth import Principal
from buzon.broker import Queue
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.server.resources import Resources
from buzon.store import DestinationKind, QueuePolicy

SERVER_NAMED_PREFIX = "amq.gen-"
"""Names the broker chooses for a declare without one start with this."""

DECLARED_FIELDS = (
    "durable",
    "auto_delete",
    "expires_ms",
    "message_ttl_ms",
    "max_length",
    "max_length_bytes",
    "overflow",
    "dead_letter_queue",
    "dead_letter_exchange",
    "dead_letter_routing_key",
)
"""The policy fields a declaration states, and so must match the existing queue's."""


@dataclass(frozen=True, slots=True)
class Declared:
    """What a declare answers.

    Attributes:
        name: the queue's name (chosen by the broker when the declare gave none).
        messages: messages waiting ready for a consumer.
        consumers: subscriptions consuming from it.
        created: whether this declare made it.
    """

    name: str
    messages: int
    consumers: int
    created: bool


async def declare_queue(
    resources: Resources,
    principal: Principal,
    name: str,
    policy: QueuePolicy,
    *,
    passive: bool = False,
    exclusive_to: str | None = None,
    connection: str | None = None,
) -> Declared:
    """Declare the queue ``name`` (``""``: a new one with a name the broker chooses).

    Args:
        resources: where queues are created.
        principal: who declares; the owner of a queue this creates.
        name: the queue's name.
        policy: the properties expected (a new queue gets them).
        passive: only check that it exists.
        exclusive_to: the declaring connection, for an exclusive queue (it is deleted
            when that connection closes, and is never stored: its messages are not
            either).
        connection: the declaring connection (it may use its own exclusive queues).

    Raises:
        BrokerError: DESTINATION_NOT_FOUND (passive, missing), PRECONDITION_FAILED
            (exists with other properties, or exclusive while this declare is not, or the
            reverse), BAD_DESTINATION.
        AccessDenied: RESOURCE_LOCKED: exclusive to another connection.
    """
    if not name:
        if passive:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, "a passive declare needs a name")
        name = SERVER_NAMED_PREFIX + secrets.token_urlsafe(16)
    existing = resources.target_or_none(DestinationKind.QUEUE, name)
    if existing is None:
        if passive:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"/queue/{name[:80]} does not exist")
        if exclusive_to is not None:
            policy = dataclasses.replace(policy, durable=False)
        await resources.create(
            principal, DestinationKind.QUEUE, name, None, policy, exclusive_to=exclusive_to
        )
        return Declared(name, 0, 0, created=True)
    assert isinstance(existing, Queue)
    _check_lock(existing, exclusive_to, connection)
    if not passive:
        _check_same(existing, policy, exclusive_to)
    if existing.lifetime is not None:
        existing.lifetime.touched()
    return Declared(name, existing.ready(), existing.consumers, created=False)


def _check_lock(queue: Queue, exclusive_to: str | None, connection: str | None) -> None:
    lifetime = queue.lifetime
    owner = None if lifetime is None else lifetime.exclusive_to
    if owner is not None and owner not in (exclusive_to, connection):
        raise AccessDenied(
            ErrorCode.RESOURCE_LOCKED, f"{queue.address[:80]} is exclusive to another connection"
        )


def _check_same(queue: Queue, policy: QueuePolicy, exclusive_to: str | None) -> None:
    lifetime = queue.lifetime
    exclusive = lifetime is not None and lifetime.exclusive_to is not None
    if exclusive != (exclusive_to is not None):
        raise BrokerError(
            ErrorCode.PRECONDITION_FAILED,
            f"{queue.address[:80]} exists and is {'' if exclusive else 'not '}exclusive",
        )
    fields = DECLARED_FIELDS[1:] if exclusive else DECLARED_FIELDS  # exclusive: never durable
    for field in fields:
        have, want = getattr(queue.policy, field), getattr(policy, field)
        if have != want:
            raise BrokerError(
                ErrorCode.PRECONDITION_FAILED,
                f"{queue.address[:80]} exists with {field} {have!r}, not {want!r}",
            )
