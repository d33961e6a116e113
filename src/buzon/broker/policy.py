"""What a queue's policy means for one message: persistence, expiry, room, dead-letters.

Kept apart from the queue's dispatch so each rule reads in one place. The ``expires``
header is the STOMP convention (ActiveMQ's): an absolute time in ms since the epoch, 0 for
never; a queue's ``message_ttl_ms`` gives messages without one (or with a later one) a
shorter life.

Dead-lettering writes into another queue, so it needs the right to publish there, checked
twice: when the policy is set (by the server, which verifies a presented key) and each
time a message is moved (:func:`may_feed`). A right that came from a key or from being an
admin is kept as a grant bound to the dead-letter queue's id and key hash: when that queue
is deleted and created again, or its key changes, the grant no longer matches and the
messages are dropped (and counted), never delivered.
"""

from __future__ import annotations

from buzon.auth.access import fingerprint
from buzon.broker.message import Headers
from buzon.errors import BrokerError, ErrorCode
from buzon.store import DestinationRecord, QueuePolicy

# Headers the broker adds to a dead-lettered message (first of repeated headers wins, so
# they go in front of the original ones).
REASON_HEADER = "x-dead-letter-reason"
ORIGIN_HEADER = "x-original-destination"
ORIGINAL_ID_HEADER = "x-original-message-id"


def first(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def publish_options(headers: Headers) -> tuple[bool, str | None]:
    """What a publisher asked of its message, in one pass over the headers (this runs for
    every message): whether it may be stored (not ``persistent:false``), and ``expires``."""
    persistent: str | None = None
    expires: str | None = None
    for name, value in headers:
        if name == "persistent":
            if persistent is None:
                persistent = value
        elif name == "expires" and expires is None:
            expires = value
    return persistent != "false", expires


def expiry(header: str | None, policy: QueuePolicy, now: float) -> float | None:
    """When a message published ``now`` with that ``expires`` header expires, or None.

    Raises:
        BrokerError: BAD_HEADER_VALUE when ``expires`` is not a number of ms.
    """
    deadline = None
    if header is not None:
        if not (header.isascii() and header.isdigit() and len(header) <= 15):
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "expires must be ms since the epoch")
        if int(header):
            deadline = int(header) / 1000
    if policy.message_ttl_ms is not None:
        by_ttl = now + policy.message_ttl_ms / 1000
        deadline = by_ttl if deadline is None else min(deadline, by_ttl)
    return deadline


def over_limit(policy: QueuePolicy, count: int, size: int) -> bool:
    """Whether ``count`` messages of ``size`` body bytes in total break the queue's bounds."""
    return (policy.max_length is not None and count > policy.max_length) or (
        policy.max_length_bytes is not None and size > policy.max_length_bytes
    )


def dead_letter_headers(headers: Headers, reason: str, origin: str, message_id: str) -> Headers:
    """The headers of a message moved to a dead-letter queue: why, and from where.

    Its ``expires`` becomes ``x-original-expires``: a message dead-lettered because it
    expired must not expire again in the dead-letter queue before anyone looks at it.
    """
    ours = ((REASON_HEADER, reason), (ORIGIN_HEADER, origin), (ORIGINAL_ID_HEADER, message_id))
    kept = tuple(
        ("x-original-expires", value) if name == "expires" else (name, value)
        for name, value in headers
    )
    return ours + kept


def feed_grant(target: DestinationRecord) -> str:
    """The grant that lets another queue feed ``target`` as it is now: its id and a
    fingerprint of its key hash (the hash is salted, so any new key gives a new grant)."""
    return f"{target.id}:{fingerprint(target.key_hash or '')}"


def may_feed(source: DestinationRecord, target: DestinationRecord) -> bool:
    """Whether messages of ``source`` may be moved into ``target`` now: ``target`` is
    public, has the same owner, or ``source`` holds the grant of ``target`` as it is."""
    return (
        target.key_hash is None
        or target.owner_id == source.owner_id
        or source.dead_letter_grant == feed_grant(target)
    )
