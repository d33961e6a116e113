"""What the management client returns: frozen records decoded from the API's JSON.

Each ``parse_*`` function turns one documented answer into its record and raises
``KeyError``, ``TypeError`` or ``ValueError`` on anything else; the client turns those into
an ApiError (another server answered, or a broker of another version).
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from buzon.store.records import DEFAULT_DEDUP_WINDOW_MS, Overflow, QueuePolicy

_T = TypeVar("_T")


class DestinationKind(enum.StrEnum):
    """The two messaging models: queues (``/queue/…``) and channels (``/topic/…``)."""

    QUEUE = "queue"
    CHANNEL = "channel"

    @property
    def collection(self) -> str:
        """The API path segment: ``queues`` or ``channels``."""
        return f"{self.value}s"


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``role`` is ``"admin"`` or ``"user"``."""

    username: str
    role: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token from :meth:`ManagementClient.login` (kept out of ``repr``)."""

    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Destination:
    """What queues and channels have in common.

    Attributes:
        id: stable id.
        kind: queue or channel.
        name: the name.
        address: the STOMP destination, e.g. ``/queue/jobs``.
        owner: the owner's username; None once that user is deleted.
        protected: whether an access key protects it.
        created_at: when it was created.
        published: messages published to it since the broker started.
        delivered: deliveries since the broker started.
        published_per_s: messages published per second, over about the last 5 seconds.
        delivered_per_s: deliveries per second, over about the last 5 seconds.
    """

    id: str
    kind: DestinationKind
    name: str
    address: str
    owner: str | None
    protected: bool
    created_at: datetime
    published: int
    delivered: int
    published_per_s: float
    delivered_per_s: float


@dataclass(frozen=True, slots=True)
class QueueInfo(Destination):
    """A queue: ``depth`` waiting, ``in_flight`` delivered and not acked, ``consumers``,
    and the ``policy`` it was created with.

    Also ``scheduled``: messages waiting for their time (delayed publishes, retries with
    back-off; not in ``depth``), and since the broker started: ``scheduled_total``
    published with a delay, ``retried`` NACKs whose redelivery waited, and
    ``dead_lettered_by_reason`` (``{"rejected": 2, ...}``). A broker older than these
    fields shows them as 0 and empty. ``lease_expired``: deliveries not acked within
    their ack timeout; ``late_settles``: ACKs, NACKs and extensions of those, ignored.
    """

    depth: int
    in_flight: int
    consumers: int
    policy: QueuePolicy
    scheduled: int = 0
    scheduled_total: int = 0
    retried: int = 0
    dead_lettered_by_reason: Mapping[str, int] = field(default_factory=dict)
    lease_expired: int = 0
    late_settles: int = 0


@dataclass(frozen=True, slots=True)
class DurableSubscriptionInfo:
    """A durable channel subscription: its name, owner, and messages kept for it."""

    name: str
    owner: str | None
    backlog: int


@dataclass(frozen=True, slots=True)
class ChannelInfo(Destination):
    """A channel, its number of live ``subscribers`` and its durable subscriptions; how it
    routes (``type``: fanout, direct or topic) and how many queues are bound to it."""

    subscribers: int
    durable_subscriptions: tuple[DurableSubscriptionInfo, ...]
    type: str = "fanout"
    bindings: int = 0


@dataclass(frozen=True, slots=True)
class BindingInfo:
    """A queue bound to a channel with a routing key (a pattern for a topic channel);
    ``active`` is False while an access key it was made with has changed since."""

    channel: str
    queue: str
    routing_key: str
    owner: str | None
    created_at: datetime
    active: bool


class _Body:
    """``text`` and ``json()`` for the message records, which hold the body as bytes."""

    __slots__ = ()
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text (raises UnicodeDecodeError for binary bodies)."""
        return self.body.decode()

    def json(self) -> Any:
        """The body decoded as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class PulledMessage(_Body):
    """A leased message: ack or nack it by ``receipt`` before ``lease_expires_at``."""

    message_id: str
    receipt: str
    destination: str
    headers: dict[str, str]
    body: bytes
    redelivered: bool
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class PeekedMessage(_Body):
    """A message waiting in a queue, seen without consuming it (``peek``).

    Attributes:
        message_id: its id.
        headers: its headers (the first of repeated ones).
        body: the body, decoded from base64 when the broker sent it so (binary bodies).
        redelivered: it was delivered before and given back.
    """

    message_id: str
    headers: dict[str, str]
    body: bytes
    redelivered: bool


@dataclass(frozen=True, slots=True)
class ScheduledMessage(_Body):
    """A message waiting in a queue for its time (``ManagementClient.scheduled``).

    Attributes:
        message_id: its id (to deliver it now or cancel it).
        headers: its headers (the first of repeated ones).
        body: the body.
        deliver_at: when it becomes deliverable (UTC).
        seconds_left: until then, as the broker saw it when asked.
    """

    message_id: str
    headers: dict[str, str]
    body: bytes
    deliver_at: datetime
    seconds_left: float


@dataclass(frozen=True, slots=True)
class Overview:
    """Broker-wide counts, totals since start and current rates (messages per second).

    ``memory_bytes`` is the broker process's resident memory (None where the system does
    not say), ``store_bytes`` what its store takes on disk (None for the memory store).
    """

    version: str
    uptime_s: float
    connections: int
    users: int
    queues: int
    channels: int
    published: int
    delivered: int
    queued_bytes: int
    published_per_s: float
    delivered_per_s: float
    memory_bytes: int | None
    store_bytes: int | None


@dataclass(frozen=True, slots=True)
class RatePoint:
    """The broker's message rates over one second ending ``at`` (see ``rate_history``)."""

    at: datetime
    published_per_s: float
    delivered_per_s: float


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """An open STOMP connection; ``user`` is None before its login.

    ``transport`` is ``tcp``, ``tls``, ``websocket`` or ``websocket+tls``.
    """

    id: str
    user: str | None
    peer: str
    protocol: str
    transport: str
    connected_at: datetime
    subscriptions: int
    published: int
    delivered: int


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One broker process of the cluster (a broker on SQLite is a cluster of one).

    Attributes:
        name: its ``--node-name`` (by default the host name and the STOMP port).
        alive: False once it stopped, or stayed silent longer than the node timeout.
        listeners: where clients reach it, as URLs (``stomp://``, ``http://…/api/v1``).
        heartbeat_at: its last heartbeat.
        started_at: when it started.
        connections: its open STOMP connections at that heartbeat.
        id: this run's id (a restarted node gets a new one).
    """

    name: str
    alive: bool
    listeners: tuple[str, ...]
    heartbeat_at: datetime
    started_at: datetime
    connections: int
    id: int


@dataclass(frozen=True, slots=True)
class RedriveInfo:
    """A redrive: a dead-letter queue's messages moving back (see ``ManagementClient.redrive``).

    Attributes:
        id: what to follow or cancel it with.
        state: ``running``, ``done`` or ``failed``.
        moved: messages now in their target (gone from the dead-letter queue).
        total: messages it moves: ``min(limit, waiting when it started)``; a run may end
            ``done`` below it when some left the queue meanwhile.
        queue: the dead-letter queue.
        to: the target queue, or None for each message's original destination.
        rate_per_s: messages per second at most, or None.
        limit: most messages to move, or None.
        error: why it failed.
        cancelled_by: who cancelled it, if someone did (it is then ``failed``).
        started_by: who started it.
        started_at: when it started.
        finished_at: when it ended, or None while it runs.
    """

    id: str
    state: str
    moved: int
    total: int
    queue: str
    to: str | None
    rate_per_s: int | None
    limit: int | None
    error: str | None
    cancelled_by: str | None
    started_by: str
    started_at: datetime
    finished_at: datetime | None

    @property
    def running(self) -> bool:
        return self.state == "running"


def many(parse: Callable[[Any], _T]) -> Callable[[Any], list[_T]]:
    def parse_list(data: Any) -> list[_T]:
        if not isinstance(data, list):
            raise TypeError("expected a list")
        return [parse(item) for item in data]

    return parse_list


def nothing(data: Any) -> None:
    return None


def parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def parse_user(data: Any) -> User:
    return User(
        username=str(data["username"]),
        role=str(data["role"]),
        disabled=bool(data["disabled"]),
        created_at=parse_time(data["created_at"]),
    )


def parse_token(data: Any) -> Token:
    return Token(token=str(data["token"]), expires_at=parse_time(data["expires_at"]))


def common_fields(kind: DestinationKind, data: Any) -> dict[str, Any]:
    return {
        "id": str(data["id"]),
        "kind": kind,
        "name": str(data["name"]),
        "address": str(data["address"]),
        "owner": None if data["owner"] is None else str(data["owner"]),
        "protected": bool(data["protected"]),
        "created_at": parse_time(data["created_at"]),
        "published": int(data["published"]),
        "delivered": int(data["delivered"]),
        "published_per_s": float(data["rates"]["published_per_s"]),
        "delivered_per_s": float(data["rates"]["delivered_per_s"]),
    }


def parse_queue(data: Any) -> QueueInfo:
    return QueueInfo(
        **common_fields(DestinationKind.QUEUE, data),
        depth=int(data["depth"]),
        in_flight=int(data["in_flight"]),
        consumers=int(data["consumers"]),
        policy=parse_policy(data["policy"]),
        # a broker older than these fields does not send them
        scheduled=int(data.get("scheduled", 0)),
        scheduled_total=int(data.get("scheduled_total", 0)),
        retried=int(data.get("retried", 0)),
        dead_lettered_by_reason={
            str(reason): int(count)
            for reason, count in (data.get("dead_lettered_by_reason") or {}).items()
        },
        lease_expired=int(data.get("lease_expired", 0)),
        late_settles=int(data.get("late_settles", 0)),
    )


def parse_policy(data: Any) -> QueuePolicy:
    def count(name: str) -> int | None:
        value = data.get(name)  # a broker older than a field does not send it
        return None if value is None else int(value)

    dead_letter = data["dead_letter_queue"]
    return QueuePolicy(
        durable=bool(data["durable"]),
        max_length=count("max_length"),
        max_length_bytes=count("max_length_bytes"),
        overflow=Overflow(data["overflow"]),
        message_ttl_ms=count("message_ttl_ms"),
        dead_letter_queue=None if dead_letter is None else str(dead_letter),
        max_deliveries=count("max_deliveries"),
        backlog_window=count("backlog_window"),
        backlog_window_bytes=count("backlog_window_bytes"),
        retry_delay_ms=count("retry_delay_ms"),
        retry_multiplier=float(data.get("retry_multiplier", 1.0)),
        retry_max_delay_ms=count("retry_max_delay_ms"),
        ack_timeout_ms=count("ack_timeout_ms"),
        dedup_window_ms=int(data.get("dedup_window_ms", DEFAULT_DEDUP_WINDOW_MS)),
    )


def parse_channel(data: Any) -> ChannelInfo:
    return ChannelInfo(
        **common_fields(DestinationKind.CHANNEL, data),
        subscribers=int(data["subscribers"]),
        durable_subscriptions=tuple(
            DurableSubscriptionInfo(
                name=str(item["name"]),
                owner=None if item["owner"] is None else str(item["owner"]),
                backlog=int(item["backlog"]),
            )
            for item in data["durable_subscriptions"]
        ),
        # a broker older than routing does not send these
        type=str(data.get("type", "fanout")),
        bindings=int(data.get("bindings", 0)),
    )


def parse_binding(data: Any) -> BindingInfo:
    return BindingInfo(
        channel=str(data["channel"]),
        queue=str(data["queue"]),
        routing_key=str(data["routing_key"]),
        owner=None if data["owner"] is None else str(data["owner"]),
        created_at=parse_time(data["created_at"]),
        active=bool(data["active"]),
    )


def parse_purged(data: Any) -> int:
    return int(data["purged"])


DESTINATION_PARSERS: dict[DestinationKind, Callable[[Any], QueueInfo | ChannelInfo]] = {
    DestinationKind.QUEUE: parse_queue,
    DestinationKind.CHANNEL: parse_channel,
}


def parse_message_id(data: Any) -> str:
    return str(data["message_id"])


def parse_settled(data: Any) -> int:
    return int(data["settled"])


def parse_pulled(data: Any) -> list[PulledMessage]:
    return [parse_pulled_message(item) for item in data["messages"]]


def parse_pulled_message(data: Any) -> PulledMessage:
    return PulledMessage(
        message_id=str(data["message_id"]),
        receipt=str(data["receipt"]),
        destination=str(data["destination"]),
        headers=parse_headers(data["headers"]),
        body=parse_body(data),
        redelivered=bool(data["redelivered"]),
        lease_expires_at=parse_time(data["lease_expires_at"]),
    )


def parse_peeked(data: Any) -> list[PeekedMessage]:
    return [
        PeekedMessage(
            message_id=str(item["message_id"]),
            headers=parse_headers(item["headers"]),
            body=parse_body(item),
            redelivered=bool(item["redelivered"]),
        )
        for item in data["messages"]
    ]


def parse_scheduled(data: Any) -> list[ScheduledMessage]:
    return [
        ScheduledMessage(
            message_id=str(item["message_id"]),
            headers=parse_headers(item["headers"]),
            body=parse_body(item),
            deliver_at=parse_time(item["deliver_at"]),
            seconds_left=float(item["seconds_left"]),
        )
        for item in data["messages"]
    ]


def parse_headers(data: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in data.items()}


def parse_body(data: Any) -> bytes:
    """``body`` (text) or else ``body_base64`` (binary), as the API sends messages."""
    text = data["body"]
    if text is not None:
        return str(text).encode()
    return base64.b64decode(data["body_base64"], validate=True)


def parse_overview(data: Any) -> Overview:
    messages, rates = data["messages"], data["rates"]
    return Overview(
        version=str(data["version"]),
        uptime_s=float(data["uptime_s"]),
        connections=int(data["connections"]),
        users=int(data["users"]),
        queues=int(data["queues"]),
        channels=int(data["channels"]),
        published=int(messages["published"]),
        delivered=int(messages["delivered"]),
        queued_bytes=int(messages["queued_bytes"]),
        published_per_s=float(rates["published_per_s"]),
        delivered_per_s=float(rates["delivered_per_s"]),
        memory_bytes=optional_int(data["memory_bytes"]),
        store_bytes=optional_int(data["store_bytes"]),
    )


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_rate_history(data: Any) -> list[RatePoint]:
    return [
        RatePoint(
            at=parse_time(point["at"]),
            published_per_s=float(point["published_per_s"]),
            delivered_per_s=float(point["delivered_per_s"]),
        )
        for point in data["points"]
    ]


def parse_connection(data: Any) -> ConnectionInfo:
    return ConnectionInfo(
        id=str(data["id"]),
        user=None if data["user"] is None else str(data["user"]),
        peer=str(data["peer"]),
        protocol=str(data["protocol"]),
        transport=str(data["transport"]),
        connected_at=parse_time(data["connected_at"]),
        subscriptions=int(data["subscriptions"]),
        published=int(data["published"]),
        delivered=int(data["delivered"]),
    )


def parse_cluster(data: Any) -> list[NodeInfo]:
    return [
        NodeInfo(
            name=str(node["name"]),
            alive=bool(node["alive"]),
            listeners=tuple(str(url) for url in node["listeners"]),
            heartbeat_at=parse_time(node["heartbeat_at"]),
            started_at=parse_time(node["started_at"]),
            connections=int(node["connections"]),
            id=int(node["id"]),
        )
        for node in data["nodes"]
    ]


def optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_redrive(data: Any) -> RedriveInfo:
    finished = data["finished_at"]
    return RedriveInfo(
        id=str(data["id"]),
        state=str(data["state"]),
        moved=int(data["moved"]),
        total=int(data["total"]),
        queue=str(data["queue"]),
        to=optional_text(data["to"]),
        rate_per_s=optional_int(data["rate_per_s"]),
        limit=optional_int(data["limit"]),
        error=optional_text(data["error"]),
        cancelled_by=optional_text(data["cancelled_by"]),
        started_by=str(data["started_by"]),
        started_at=parse_time(data["started_at"]),
        finished_at=None if finished is None else parse_time(finished),
    )
