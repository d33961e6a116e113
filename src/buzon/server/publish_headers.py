"""The publish options a message's headers carry, by buzon's STOMP conventions.

A SEND frame asks for its options with headers: ``persistent:false`` (do not store it),
``expires`` (ms since the epoch, 0 for never: ActiveMQ's convention), ``priority`` (0 to 9),
``delay`` or ``deliver-at`` (ms), ``idempotency-key``. An HTTP publish follows the same
conventions (its JSON fields become these headers), and so does a redrive, which publishes
a dead letter again with its headers. The engine reads no header: :func:`split_publish`
turns them into :class:`PublishOptions` here, in the one pass that also drops what
consumers must not see. Consumers see the option headers as sent, except the schedule
ones (a message dead-lettered or redriven later must not be delayed again by them).
"""

from __future__ import annotations

from buzon.broker import NO_OPTIONS, Headers, PublishOptions
from buzon.broker.dedup import IDEMPOTENCY_HEADER
from buzon.errors import BrokerError, ErrorCode
from buzon.priority import DEFAULT_PRIORITY, PRIORITY_HEADER, parse_priority

SCHEDULE_HEADERS = frozenset({"delay", "deliver-at"})
"""Headers that schedule a message; acted on, not passed on."""
OPTION_HEADERS = frozenset(
    {"persistent", "expires", PRIORITY_HEADER, IDEMPOTENCY_HEADER, *SCHEDULE_HEADERS}
)
"""Every header that asks something of the broker when a message is published."""


def milliseconds(name: str, value: str) -> int:
    """A header's whole number of milliseconds (>= 0).

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header.
    """
    if not (value.isascii() and value.isdigit() and len(value) <= 15):
        raise BrokerError(
            ErrorCode.BAD_HEADER_VALUE, f"{name} must be a whole number of milliseconds (>= 0)"
        )
    return int(value)


def split_publish(
    headers: Headers,
    watched: frozenset[str] = OPTION_HEADERS,
    dropped: frozenset[str] = frozenset(),
) -> tuple[Headers, PublishOptions]:
    """The headers consumers get and the options the publisher asked for, in one pass.

    Args:
        headers: as published (the first of repeated headers wins).
        watched: :data:`OPTION_HEADERS` and ``dropped`` (the caller's precomputed union:
            this runs for every message).
        dropped: headers that are not passed on (a frame's own, such as ``receipt``).

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header whose value is malformed.
    """
    kept = []
    found: dict[str, str] | None = None  # made only for a message that asks something
    for item in headers:
        name = item[0]
        if name not in watched:
            kept.append(item)
            continue
        if name in dropped:
            continue
        if found is None:
            found = {}
        found.setdefault(name, item[1])
        if name not in SCHEDULE_HEADERS:
            kept.append(item)
    return tuple(kept), NO_OPTIONS if found is None else _options(found)


def _options(found: dict[str, str]) -> PublishOptions:
    expires = found.get("expires")
    expires_at = None
    if expires is not None:
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 15):
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "expires must be ms since the epoch")
        expires_at = int(expires) / 1000 or None
    delay = found.get("delay")
    at = found.get("deliver-at")
    if delay is not None and at is not None:
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "give delay or deliver-at, not both")
    delay_ms = None if delay is None else milliseconds("delay", delay)
    deliver_at = None if at is None else milliseconds("deliver-at", at) / 1000
    priority = found.get(PRIORITY_HEADER)
    return PublishOptions(
        persistent=found.get("persistent") != "false",
        expires_at=expires_at,
        priority=DEFAULT_PRIORITY if priority is None else _priority(priority),
        delay_ms=delay_ms,
        deliver_at=deliver_at,
        idempotency_key=found.get(IDEMPOTENCY_HEADER),
    )


def _priority(value: str) -> int:
    try:
        return parse_priority(value)
    except ValueError as exc:
        raise BrokerError(ErrorCode.BAD_HEADER_VALUE, str(exc)) from None
