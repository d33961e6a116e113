"""The records the engine hands out: a published message, and the sink deliveries go to."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from buzon.errors import ErrorCode
from buzon.priority import DEFAULT_PRIORITY

Headers = tuple[tuple[str, str], ...]
"""User headers in the order the publisher sent them (repeats allowed, first one wins)."""


@dataclass(slots=True)
class Message:
    """One published message; shared, never copied, by every delivery of it.

    Treat it as immutable. It is not a frozen dataclass only because one is made per
    published message, and a frozen one's constructor costs several times more.

    Attributes:
        id: unique within one broker run (``<random prefix>-<seq>``).
        destination: where it was published, e.g. ``/queue/jobs`` or ``/topic/news``.
        headers: the user headers as published.
        body: the payload.
        seq: broker-wide publish order; queues keep and return messages in this order.
        persistent: kept in the message log until settled (durable queues, unless the
            publisher said ``persistent:false``).
        expires_at: Unix time after which it is never delivered, or None.
        deliver_at: Unix time before which it is not delivered (published with ``delay``
            or ``deliver-at``), or None.
        priority: 0 (lowest) to 9; a queue hands out higher priorities first.
        routing_key: what a channel routes it by ("" when published without one); part
            of ``destination`` too (``/topic/<channel>/<key>``), which is how a stored
            message keeps it.
    """

    id: str
    destination: str
    headers: Headers
    body: bytes
    seq: int
    persistent: bool = False
    expires_at: float | None = None
    deliver_at: float | None = None
    priority: int = DEFAULT_PRIORITY
    routing_key: str = ""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """What a publisher asks of its message, beyond headers and body.

    Each front end builds these from its own input (STOMP and HTTP from headers such as
    ``persistent`` or ``delay``, checked there); the engine reads no header. Bounds that
    depend on the broker (how far ahead a message may be scheduled, whether its target
    can hold it) are the engine's to check.

    Attributes:
        persistent: the message may be stored; a non-durable queue keeps it in memory
            whatever this says.
        expires_at: Unix time after which it is never delivered (None: no expiry of its
            own; a queue's ``message_ttl_ms`` may still give it one).
        priority: 0 (lowest) to 9.
        delay_ms: deliver it no sooner than this long after publishing (queues only).
        deliver_at: deliver it no sooner than this Unix time (queues only); not with
            ``delay_ms``.
        idempotency_key: publish it at most once per queue within the queue's
            ``dedup_window_ms`` (1 to 256 bytes of UTF-8).
    """

    persistent: bool = True
    expires_at: float | None = None
    priority: int = DEFAULT_PRIORITY
    delay_ms: int | None = None
    deliver_at: float | None = None
    idempotency_key: str | None = None


NO_OPTIONS = PublishOptions()
"""A message that asks for nothing (shared: most publishes allocate no options)."""


class Disposition(enum.Enum):
    """What becomes of a delivery its consumer settles."""

    ACCEPT = "accept"
    """Done with: forgotten for good."""
    RELEASE = "release"
    """Back to its queue at its original place (publish order within its priority),
    marked redelivered, at once or after a delay; a channel's is dropped."""
    REJECT = "reject"
    """Dead-lettered at once (reason ``rejected``) where its queue has a dead-letter
    queue, else dropped."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a consumer settles deliveries (an ACK, a NACK, a lease's ack or nack).

    Attributes:
        disposition: accept, release or reject.
        delay_ms: for a release, wait this long before redelivering (None: the queue's
            retry back-off decides; 0: at once).
        error: for a release or reject, why they failed, remembered with each message
            (``x-last-error`` if it is dead-lettered, now or later).
    """

    disposition: Disposition = Disposition.RELEASE
    delay_ms: int | None = None
    error: str | None = None


ACCEPT = Outcome(Disposition.ACCEPT)
"""A plain ACK."""
RELEASE = Outcome()
"""A plain NACK: back to the queue, as the retry policy says."""
REJECT = Outcome(Disposition.REJECT)
"""Dead-letter (or drop) without an error text."""


class DeliverySink(Protocol):
    """Where one session's output goes; implemented by the transport side (the server)."""

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        """Take one delivery of ``message`` on a subscription.

        Args:
            subscription_id: the id the session chose when subscribing.
            message: the message (shared with every other delivery of it).
            ack_id: what the session passes to ``settle``; None in ack mode auto.
            redelivered: the message was handed out before and came back.

        It may call the session's ``set_writable(False)`` synchronously (its buffer
        filled), and may ack, nack or publish synchronously.
        """

    def close_session(self, code: ErrorCode, detail: str) -> None:
        """The engine wants this session ended (slow consumer). The engine closes the
        session itself right after this returns; calling ``Session.close`` here is fine."""
