"""Engine settings: every bound the engine enforces, with its default and the reason for it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_BACKLOG_WINDOW = 1_000_000
"""The largest backlog window (messages): beyond it, paging no longer bounds memory much."""
MAX_BACKLOG_WINDOW_BYTES = 1024 * 1024 * 1024
"""The largest backlog window in bytes (1 GiB)."""
DEFAULT_BACKLOG_WINDOW = 10_000
DEFAULT_BACKLOG_WINDOW_BYTES = 8 * 1024 * 1024
MAX_DELAY_MS = 30 * 24 * 3600 * 1000
"""The longest a message may be scheduled ahead, by default (30 days)."""

DEFAULT_DEDUP_MAX_KEYS = 1_000_000


class SlowConsumerPolicy(enum.StrEnum):
    """What happens when a channel subscription's pending backlog passes its bound."""

    DISCONNECT = "disconnect"
    """End the session with ``SLOW_CONSUMER``: the subscriber learns it lost messages."""
    DROP_OLDEST = "drop-oldest"
    """Keep the session, drop the oldest pending messages and count them in the stats."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Limits and defaults of one :class:`~buzon.broker.Broker`.

    Attributes:
        default_prefetch: unacked messages a client-ack subscription may hold when it does
            not ask for a window. 100 keeps a consumer busy across a network round trip
            without letting one consumer hoard a queue's backlog from its peers.
        max_prefetch: the largest window a subscription may ask for. 10 000 bounds the
            per-subscription in-flight bookkeeping (and what is redelivered at once when a
            consumer dies) while leaving room for high-latency links.
        channel_max_pending: channel messages waiting for one subscription that cannot take
            them now (not writable, or its window is full). 10 000 absorbs short stalls of a
            busy subscriber; beyond that it is not keeping up and the policy applies.
        channel_max_pending_bytes: the same bound in body bytes (16 MiB), so a few large
            messages cannot pin a lot of memory under the count bound.
        slow_consumer_policy: what to do past either pending bound. Disconnecting is the
            default because silently dropping fan-out messages surprises more people than an
            error that says why the connection ended.
        queue_high_water_bytes: total body bytes held by all queues (waiting + in flight)
            above which publishers should be paused (512 MiB: large enough for bursts,
            small enough to stay well inside a modest server's memory).
        queue_low_water_bytes: the total under which paused publishers resume (384 MiB); the
            gap to the high-water mark stops publishers flapping on every message.
        max_subscriptions_per_session: 1 000 is far above what a real client opens and
            stops a single connection from growing the engine's tables without bound.
        max_open_transactions: transactions one session may hold open at once (32): real
            clients use one or two; the bound caps memory held by staged work.
        max_transaction_operations: staged sends, acks and nacks per transaction (10 000),
            for the same reason; a larger batch should be split into several commits.
        durable_backlog_max: messages a durable channel subscription keeps while its owner
            is away (10 000); past it the oldest are dropped, so an abandoned subscription
            cannot fill the disk.
        backlog_window: waiting messages a durable queue (or durable subscription) holds
            in memory when the store pages; the rest stay on disk until the window drains.
            10 000 keeps a window's worth of 128-byte messages under 10 MiB while giving
            consumers far more than one read's worth ahead.
        backlog_window_bytes: body bytes of that window (8 MiB), so large messages do not
            make the window big: with 1 MiB messages it holds 8.
        max_delay_ms: the longest a message may be scheduled ahead (``delay``,
            ``deliver-at``, ``requeue-delay``): 30 days. Further is refused, so a typo in
            units cannot park a message for centuries.
        dedup_max_keys: idempotency keys held in memory across the broker (1 000 000,
            300 to 750 MB); past it a queue forgets its oldest keys before their window ends
            (see ``dedup``).
        auto_create: SEND or SUBSCRIBE to a destination that does not exist creates it,
            owned by that user, without an access key. On by default: it is what STOMP
            users expect; turn it off to make creation an explicit, owned act.

    Raises:
        ValueError: a bound is not positive, the default prefetch is above the maximum, or
            the low-water mark is above the high-water mark.
    """

    default_prefetch: int = 100
    max_prefetch: int = 10_000
    channel_max_pending: int = 10_000
    channel_max_pending_bytes: int = 16 * 1024 * 1024
    slow_consumer_policy: SlowConsumerPolicy = SlowConsumerPolicy.DISCONNECT
    queue_high_water_bytes: int = 512 * 1024 * 1024
    queue_low_water_bytes: int = 384 * 1024 * 1024
    max_subscriptions_per_session: int = 1_000
    max_open_transactions: int = 32
    max_transaction_operations: int = 10_000
    auto_create: bool = True
    durable_backlog_max: int = 10_000
    backlog_window: int = DEFAULT_BACKLOG_WINDOW
    backlog_window_bytes: int = DEFAULT_BACKLOG_WINDOW_BYTES
    max_delay_ms: int = MAX_DELAY_MS
    dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS

    def __post_init__(self) -> None:
        for name in (
            "default_prefetch",
            "max_prefetch",
            "channel_max_pending",
            "channel_max_pending_bytes",
            "queue_high_water_bytes",
            "max_subscriptions_per_session",
            "max_open_transactions",
            "max_transaction_operations",
            "durable_backlog_max",
            "backlog_window",
            "backlog_window_bytes",
            "max_delay_ms",
            "dedup_max_keys",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.backlog_window > MAX_BACKLOG_WINDOW:
            raise ValueError(f"backlog_window must be at most {MAX_BACKLOG_WINDOW}")
        if self.backlog_window_bytes > MAX_BACKLOG_WINDOW_BYTES:
            raise ValueError(f"backlog_window_bytes must be at most {MAX_BACKLOG_WINDOW_BYTES}")
        if self.default_prefetch > self.max_prefetch:
            raise ValueError("default_prefetch must not exceed max_prefetch")
        if not 0 <= self.queue_low_water_bytes <= self.queue_high_water_bytes:
            raise ValueError("queue_low_water_bytes must be between 0 and queue_high_water_bytes")
