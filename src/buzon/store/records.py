"""Plain stored records: what the store keeps, with no behaviour of their own."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from buzon.priority import DEFAULT_PRIORITY


class Role(enum.StrEnum):
    """What a user may do beyond their own resources."""

    ADMIN = "admin"
    """Manages users and may delete or use any queue or channel without its key."""
    USER = "user"
    """Owns what they create; needs a destination's access key to use someone else's."""


class DestinationKind(enum.StrEnum):
    """The two messaging models, as stored and shown in the API."""

    QUEUE = "queue"
    CHANNEL = "channel"


class ChannelType(enum.StrEnum):
    """How a channel routes a message to its bindings (see ``broker/routing``); fixed
    when the channel is created."""

    FANOUT = "fanout"
    """Every binding and subscriber, whatever the routing key (the default)."""
    DIRECT = "direct"
    """Bindings whose key equals the routing key."""
    TOPIC = "topic"
    """Bindings whose pattern matches the routing key word by word (``*``, ``#``)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One account.

    Attributes:
        id: stable and never reused; ownership refers to it, so a name registered again
            after a deletion does not inherit the old account's queues and channels.
        name: the login name (unique).
        password_hash: argon2id PHC string; the password itself is never stored.
        role: admin or user.
        disabled: a disabled account cannot log in and its connections are closed.
        created_at: Unix time of registration.
    """

    id: str
    name: str
    password_hash: str
    role: Role
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A bearer token, stored by the SHA-256 of its text (the text is shown once, at login).

    Attributes:
        token_hash: hex SHA-256 of the token; tokens carry 256 random bits, so a fast hash
            is enough and lets a request be checked with one lookup.
        user_id: whose token it is.
        created_at: Unix time of the login.
        expires_at: Unix time after which it is refused.
    """

    token_hash: str
    user_id: str
    created_at: float
    expires_at: float


DEFAULT_DEDUP_WINDOW_MS = 600_000
"""Ten minutes: long enough for a publisher to reconnect and retry, short enough that the
keys of a busy queue fit in memory."""
MAX_DEDUP_WINDOW_MS = 7 * 24 * 3600 * 1000
"""A week: a queue's policy cannot ask to remember keys longer."""


class Overflow(enum.StrEnum):
    """What a queue at its maximum length does with one more message."""

    REJECT_PUBLISH = "reject-publish"
    """Refuse the publish: the publisher gets an error and nothing is lost silently."""
    DROP_HEAD = "drop-head"
    """Accept it and drop (or dead-letter) the oldest waiting message of the lowest
    priority waiting."""


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How a queue treats its messages; set at creation. Channels ignore it.

    Attributes:
        durable: messages (unless published ``persistent:false``) are stored on disk and
            survive restarts.
        max_length: most messages waiting at once (None: no bound but memory).
        max_length_bytes: most body bytes waiting at once.
        overflow: what happens past either bound.
        message_ttl_ms: default lifetime of a message, in ms; a message's own ``expires``
            header (ms since the epoch) wins when earlier.
        dead_letter_queue: where expired, dropped and too-often-delivered messages go.
        max_deliveries: deliveries after which a message is dead-lettered (or dropped)
            instead of delivered again.
        backlog_window: waiting messages a durable queue holds in memory (the rest stay
            in the store); None: the broker's ``--backlog-window``.
        backlog_window_bytes: body bytes of those; None: the broker's
            ``--backlog-window-bytes``.
        retry_delay_ms: a NACKed message without its own ``requeue-delay`` waits this long
            before its first redelivery (None: it is redelivered at once).
        retry_multiplier: each further NACK of the same message multiplies that wait
            (``retry_delay_ms * retry_multiplier ** (n - 1)`` for the n-th NACK; >= 1).
        retry_max_delay_ms: the longest such wait (None: no bound but the scheduling bound).
        ack_timeout_ms: a delivery not settled within this long goes back to the queue
            (the connection stays open); None: deliveries wait for their consumer.
        dedup_window_ms: how long a publish's ``idempotency-key`` is remembered: a second
            publish with the same key within it is not enqueued again (0: keys are ignored).
        auto_delete: the queue is deleted when its last consumer leaves (once it has had
            one).
        expires_ms: the queue is deleted once unused this long (no consumer, no pull, not
            declared again); None: it stays.
        dead_letter_exchange: a channel to publish dead letters to instead of a
            dead-letter queue (AMQP's ``x-dead-letter-exchange``); None: none.
        dead_letter_routing_key: the routing key they are published with there (None:
            the message's own, or the queue's name for a message published to the queue).
    """

    durable: bool = True
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: Overflow = Overflow.REJECT_PUBLISH
    message_ttl_ms: int | None = None
    dead_letter_queue: str | None = None
    max_deliveries: int | None = None
    backlog_window: int | None = None
    backlog_window_bytes: int | None = None
    retry_delay_ms: int | None = None
    retry_multiplier: float = 1.0
    retry_max_delay_ms: int | None = None
    ack_timeout_ms: int | None = None
    dedup_window_ms: int = DEFAULT_DEDUP_WINDOW_MS
    auto_delete: bool = False
    expires_ms: int | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None


DEFAULT_POLICY = QueuePolicy()


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    """A queue or channel as an owned resource.

    Attributes:
        id: stable and never reused (a destination deleted and created again gets a new
            one, so access granted to the old one does not carry over).
        kind: queue or channel.
        name: unique per kind (``jobs`` is ``/queue/jobs`` or ``/topic/jobs``).
        owner_id: the creator's user id.
        key_hash: argon2id hash of the access key, or None when anyone may use it.
        created_at: Unix time of creation.
        policy: the queue's policy (channels keep the default).
        dead_letter_grant: for a queue whose dead-letter queue is someone else's protected
            queue, the proof that its owner may publish there, bound to that queue's id and
            access key (see :mod:`buzon.broker.policy`); None otherwise.
        channel_type: how a channel routes (queues keep the default).
    """

    id: str
    kind: DestinationKind
    name: str
    owner_id: str
    key_hash: str | None
    created_at: float
    policy: QueuePolicy = DEFAULT_POLICY
    dead_letter_grant: str | None = None
    channel_type: ChannelType = ChannelType.FANOUT


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A persistent message as kept on disk, in one queue (or durable subscription).

    Attributes:
        queue_id: the id of the queue or durable subscription holding it.
        seq: broker-wide publish order; with ``queue_id``, the message's key.
        message_id: the id clients see.
        destination: the address it was published to.
        headers: the publisher's headers.
        body: the body.
        expires_at: Unix time after which it is never delivered, or None.
        redelivered: it was (or may have been) delivered before.
        persistent: False for a transient message spilled out of a full window of a paged
            backlog: kept only until it is read back, and forgotten at the next start.
        claimed: written as already claimed by the node that writes it (a cluster node
            whose own consumers take it: see ``broker/claimed_backlog``); other stores
            ignore it.
        deliveries: how often it was delivered before, as a cluster's store keeps it
            between nodes (for ``max_deliveries``); other stores keep 0.
        deliver_at: Unix time before which it must not be delivered (a delayed publish, a
            retry with back-off), or None for a message ready now. A scheduled message is
            not part of its queue's paged tail: ranged reads, counts, expiry and purges of
            the tail leave it out, and the start-up read returns it apart
            (:attr:`StoredBacklog.scheduled`).
        priority: 0 to 9 (see :mod:`buzon.priority`); tails are read one priority at a
            time.
    """

    queue_id: str
    seq: int
    message_id: str
    destination: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expires_at: float | None
    redelivered: bool
    persistent: bool = True
    claimed: bool = False
    deliveries: int = 0
    deliver_at: float | None = None
    priority: int = DEFAULT_PRIORITY


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A publisher's idempotency key, remembered for a queue until ``expires_at``.

    Attributes:
        queue_id: the queue the message went to (a key is per queue).
        key: the ``idempotency-key`` the publisher gave.
        message_id: the message it published (a duplicate publish is answered with it).
        expires_at: Unix time after which the key publishes a new message again.
    """

    queue_id: str
    key: str
    message_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Page:
    """What one ranged read of a backlog's tail returned.

    Attributes:
        messages: the messages read, oldest first.
        exhausted: no message of the range is left after them (False when the read
            stopped at its count or byte bound).
    """

    messages: list[StoredMessage]
    exhausted: bool


@dataclass(frozen=True, slots=True)
class TailCount:
    """One step of counting a stored tail at start.

    Attributes:
        messages: how many the step found.
        bytes: their body bytes.
        last_seq: the highest seq it counted (where the next step starts).
        first_expiry: the earliest ``expires_at`` among them, or None.
    """

    messages: int
    bytes: int
    last_seq: int
    first_expiry: float | None


@dataclass(frozen=True, slots=True)
class StoredBacklog:
    """A queue's stored messages of one priority as found at start: its head and the
    extent of the rest (a queue with messages of several priorities has one per priority).

    Attributes:
        queue_id: the queue (or durable subscription) they belong to.
        head: its first messages, oldest first (bounded by the reader's window).
        high_seq: the highest seq stored for it (of that priority; scheduled messages
            included when it carries them).
        more: whether ready messages beyond ``head`` are stored.
        scheduled: the queue's first scheduled messages (``deliver_at`` set, any
            priority), soonest first, by ``(deliver_at, seq)``, bounded as ``head`` is;
            only the first backlog found of a queue carries them.
        scheduled_count: how many scheduled messages the queue has in all (0 on the
            others).
        scheduled_bytes: their body bytes.
        priority: the priority of every message of ``head`` and of the tail.
    """

    queue_id: str
    head: list[StoredMessage]
    high_seq: int
    more: bool
    scheduled: list[StoredMessage] = field(default_factory=list)
    scheduled_count: int = 0
    scheduled_bytes: int = 0
    priority: int = DEFAULT_PRIORITY


@dataclass(frozen=True, slots=True)
class DurableSubscriptionRecord:
    """A channel subscription that keeps a backlog while its owner is away.

    Attributes:
        id: stable id; also the ``queue_id`` of its stored backlog.
        channel_id: the channel it listens to.
        owner_id: the user it belongs to (only they may attach to it).
        name: the ``subscription-name`` (or SUBSCRIBE ``id``) the owner chose.
        created_at: Unix time.
    """

    id: str
    channel_id: str
    owner_id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class BindingRecord:
    """A queue bound to a channel: the channel's messages whose routing key the binding
    key matches are also enqueued in the queue (see ``broker/routing``).

    Attributes:
        channel_id: the channel.
        queue_id: the queue; with ``channel_id`` and ``key``, the binding's identity.
        key: the binding key (a pattern for a topic channel; ignored by a fanout one).
        owner_id: who bound it (may remove it, as may either destination's owner).
        created_at: Unix time.
        channel_grant: when the binder used the channel's access key (or was an admin),
            the proof of it, bound to the channel's id and key as it was; None when the
            binder needed no key (see ``broker/policy.feed_grant``).
        queue_grant: the same for publishing into the queue.
    """

    channel_id: str
    queue_id: str
    key: str
    owner_id: str
    created_at: float
    channel_grant: str | None = None
    queue_grant: str | None = None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One broker process of a cluster (nodes sharing one PostgreSQL database).

    Attributes:
        id: this run's id (a node started again gets a new one); messages it claimed
            carry it.
        name: ``--node-name`` (by default the host name and STOMP port).
        listeners: the URLs clients reach it at.
        started_at: Unix time it started.
        heartbeat_at: Unix time of its last heartbeat (by the database's clock).
        connections: client connections it had then.
        alive: it stopped neither cleanly nor by going silent longer than the node
            timeout.
    """

    id: int
    name: str
    listeners: tuple[str, ...]
    started_at: float
    heartbeat_at: float
    connections: int
    alive: bool
