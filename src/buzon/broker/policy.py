"""What a queue's policy means for one message: persistence, expiry, room, dead-letters.

Kept apart from the queue's dispatch so each rule reads in one place. A message may ask
to expire at some time (:class:`PublishOptions`); a queue's ``message_ttl_ms`` gives
messages without one (or with a later one) a shorter life.

Dead-lettering writes into another queue, so it needs the right to publish there, checked
twice: when the policy is set (by the server, which verifies a presented key) and each
time a message is moved (:func:`may_feed`). A right that came from a key or from being an
admin is kept as a grant bound to the dead-letter queue's id and key hash: when that queue
is deleted and created again, or its key changes, the grant no longer matches and the
messages are dropped (and counted), never delivered.
"""

from __future__ import annotations

from buzon.auth.access import fingerprint
from buzon.broker.config import MAX_DELAY_MS
from buzon.broker.message import Headers, PublishOptions
from buzon.errors import BrokerError, ErrorCode
from buzon.store import BindingRecord, DestinationRecord, QueuePolicy

# Headers the broker adds to a dead-lettered message (first of repeated headers wins, so
# they go in front of the original ones).
REASON_HEADER = "x-dead-letter-reason"
ORIGIN_HEADER = "x-original-destination"
ORIGINAL_ID_HEADER = "x-original-message-id"
DELIVERY_COUNT_HEADER = "x-delivery-count"
LAST_ERROR_HEADER = "x-last-error"
DEAD_LETTERED_AT_HEADER = "x-dead-lettered-at"
ADDRESS_HEADER = "x-original-address"
"""Where a dead-lettered message was first published, when that is not the queue it was
dead-lettered from (a channel and routing key that routed it there)."""
_DEAD_LETTER_HEADERS = frozenset(
    {
        ADDRESS_HEADER,
        REASON_HEADER,
        ORIGIN_HEADER,
        ORIGINAL_ID_HEADER,
        DELIVERY_COUNT_HEADER,
        LAST_ERROR_HEADER,
        DEAD_LETTERED_AT_HEADER,
    }
)


def dead_lettering(policy: QueuePolicy) -> bool:
    """Whether a queue with ``policy`` moves its retired messages somewhere (a dead-letter
    queue or channel) rather than dropping them."""
    return policy.dead_letter_queue is not None or policy.dead_letter_exchange is not None


def first(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def scheduled_at(options: PublishOptions, now: float, most_ms: int) -> float | None:
    """When a message published ``now`` with these options may be delivered: None for at
    once (no delay, a delay of 0, or a ``deliver_at`` already past).

    Raises:
        BrokerError: BAD_HEADER_VALUE when it is further ahead than ``most_ms``.
    """
    delay = options.delay_ms
    if delay is not None:
        if delay > most_ms:
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, f"delay must be at most {most_ms} ms")
        return now + delay / 1000 if delay else None
    when = options.deliver_at
    if when is None:
        return None
    if when > now + most_ms / 1000:
        raise BrokerError(
            ErrorCode.BAD_HEADER_VALUE, f"deliver-at must be at most {most_ms} ms from now"
        )
    return when if when > now else None


def expiry(expires_at: float | None, policy: QueuePolicy, now: float) -> float | None:
    """When a message published ``now`` that asked to expire at ``expires_at`` (or never,
    None) expires in a queue or channel of ``policy``, or None."""
    deadline = expires_at
    if policy.message_ttl_ms is not None:
        by_ttl = now + policy.message_ttl_ms / 1000
        deadline = by_ttl if deadline is None else min(deadline, by_ttl)
    return deadline


def backoff_ms(policy: QueuePolicy, nacks: int) -> int:
    """How long the ``nacks``-th NACK of a message waits before it is redelivered:
    ``retry_delay_ms * retry_multiplier ** (nacks - 1)``, at most ``retry_max_delay_ms``
    (0: at once, when the policy sets no retry delay)."""
    base = policy.retry_delay_ms
    if not base:
        return 0
    wait = base * policy.retry_multiplier ** (nacks - 1)
    cap = policy.retry_max_delay_ms
    if cap is not None and wait > cap:
        return cap
    return int(min(wait, MAX_DELAY_MS))


def over_limit(policy: QueuePolicy, count: int, size: int) -> bool:
    """Whether ``count`` messages of ``size`` body bytes in total break the queue's bounds."""
    return (policy.max_length is not None and count > policy.max_length) or (
        policy.max_length_bytes is not None and size > policy.max_length_bytes
    )


def dead_letter_headers(
    headers: Headers,
    *,
    reason: str,
    origin: str,
    published: str,
    message_id: str,
    deliveries: int,
    error: str | None,
    at: float,
) -> Headers:
    """The headers of a message moved to a dead-letter queue: why, from where (``origin``,
    the queue; ``published``, where it was published if elsewhere), after how many
    deliveries, the last consumer error, and when (ms since the epoch).

    The broker's own headers of an earlier dead-lettering (a message redriven and
    dead-lettered again) are replaced, not repeated. Its ``expires`` becomes
    ``x-original-expires``: a message dead-lettered because it expired must not expire
    again in the dead-letter queue before anyone looks at it.
    """
    ours: list[tuple[str, str]] = [
        (REASON_HEADER, reason),
        (ORIGIN_HEADER, origin),
        (ORIGINAL_ID_HEADER, message_id),
        (DELIVERY_COUNT_HEADER, str(deliveries)),
        (DEAD_LETTERED_AT_HEADER, str(int(at * 1000))),
    ]
    if error is not None:
        ours.append((LAST_ERROR_HEADER, error))
    if published != origin:
        ours.append((ADDRESS_HEADER, published))
    kept = tuple(
        ("x-original-expires", value) if name == "expires" else (name, value)
        for name, value in headers
        if name not in _DEAD_LETTER_HEADERS
    )
    return (*ours, *kept)


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


def binding_holds(
    binding: BindingRecord, channel: DestinationRecord, queue: DestinationRecord
) -> bool:
    """Whether a queue binding may route now: its maker may still read the channel and
    publish into the queue without a key (public, or their own), or holds the grant of
    each as it is (a key changed since the binding was made revokes it)."""
    return _holds(channel, binding.owner_id, binding.channel_grant) and _holds(
        queue, binding.owner_id, binding.queue_grant
    )


def _holds(target: DestinationRecord, user_id: str, grant: str | None) -> bool:
    return target.key_hash is None or target.owner_id == user_id or grant == feed_grant(target)
