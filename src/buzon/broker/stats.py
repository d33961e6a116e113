"""Frozen snapshots of the engine's counters, for ``/api/stats``, metrics and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue.

    Attributes:
        name: the queue name, without ``/queue/``.
        depth: messages waiting for a consumer.
        in_flight: messages delivered and not yet acknowledged.
        consumers: current subscriptions.
        published: messages ever published to it.
        delivered: deliveries made, redeliveries included.
        acked: messages settled for good (acknowledged, or delivered in ack mode auto).
        redelivered: deliveries of messages that had come back to the queue.
        bytes: body bytes held (waiting and in flight).
        retired: messages that left without delivery: expired, over ``max_deliveries``
            or dropped from the head of a full queue (dead-lettered when configured).
        dead_lettered: those of the retired moved to the dead-letter queue (the others
            were dropped: no dead-letter queue, or it refused them).
        dead_letter_refused: those of the retired dropped because this queue may no longer
            publish to its dead-letter queue (its key changed, or it was created again by
            someone else).
        scheduled: messages waiting for their time (delayed publishes, retries with
            back-off); not in ``depth``.
        scheduled_total: messages ever published with a delay.
        retried: NACKed messages whose redelivery was delayed.
        dead_lettered_by_reason: ``dead_lettered`` by reason, as ``(reason, count)`` pairs.
        lease_expired: deliveries not settled within their ack timeout or HTTP pull lease
            (they came back).
        late_settles: ACKs, NACKs and lease extensions of such deliveries after they came
            back (ignored).
        deduplicated: publishes not enqueued: their ``idempotency-key`` was seen within
            the queue's ``dedup_window_ms`` (answered with the first message's id).
    """

    name: str
    depth: int
    in_flight: int
    consumers: int
    published: int
    delivered: int
    acked: int
    redelivered: int
    bytes: int
    retired: int = 0
    dead_lettered: int = 0
    dead_letter_refused: int = 0
    scheduled: int = 0
    scheduled_total: int = 0
    retried: int = 0
    dead_lettered_by_reason: tuple[tuple[str, int], ...] = ()
    lease_expired: int = 0
    late_settles: int = 0
    deduplicated: int = 0


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """One channel.

    Attributes:
        name: the channel name, without ``/topic/``.
        subscribers: current subscriptions.
        published: messages ever published to it.
        delivered: deliveries made (one message to ten subscribers counts ten).
        dropped: deliveries that never happened: discarded over a subscription's pending
            bound, or still pending when the subscription ended.
    """

    name: str
    subscribers: int
    published: int
    delivered: int
    dropped: int


@dataclass(frozen=True, slots=True)
class SessionStats:
    """One session.

    Attributes:
        id: the session id.
        principal: who logged in.
        subscriptions: current subscriptions.
        unacked: deliveries waiting for ACK or NACK, over all subscriptions.
        published: messages it published (transactional ones once committed).
        delivered: deliveries it received.
    """

    id: str
    principal: str
    subscriptions: int
    unacked: int
    published: int
    delivered: int


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """The whole engine: queues and channels sorted by name, sessions in opening order.

    Attributes:
        queues: every queue.
        channels: every channel.
        sessions: every open session.
        queued_bytes: body bytes held by all queues (what the water marks compare).
        messages_published: messages published to any destination since start (deleted
            destinations included, so the total never goes back).
        messages_delivered: deliveries made from any destination since start, likewise.
        idempotency_keys: publishers' idempotency keys held in memory now.
        idempotency_keys_evicted: keys forgotten before their window ended, to keep that
            number under the broker's bound, since start.
    """

    queues: tuple[QueueStats, ...]
    channels: tuple[ChannelStats, ...]
    sessions: tuple[SessionStats, ...]
    queued_bytes: int
    messages_published: int
    messages_delivered: int
    idempotency_keys: int = 0
    idempotency_keys_evicted: int = 0
