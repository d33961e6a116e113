"""Request and response bodies of the HTTP API, as pydantic models.

They are the API's contract: FastAPI validates requests against them and writes the
OpenAPI document from them. Requests forbid unknown fields, so a typo is a 400, not a
silently ignored setting. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buzon.auth.users import MAX_PASSWORD, MIN_PASSWORD, USERNAME, USERNAME_RULE
from buzon.broker.addresses import MAX_KEY_BYTES, check_key
from buzon.broker.config import MAX_BACKLOG_WINDOW, MAX_BACKLOG_WINDOW_BYTES, MAX_DELAY_MS
from buzon.broker.queue import ERROR_CHARS
from buzon.errors import BrokerError
from buzon.priority import HIGHEST_PRIORITY
from buzon.store import ChannelType, Overflow, Role
from buzon.store.records import DEFAULT_DEDUP_WINDOW_MS, MAX_DEDUP_WINDOW_MS

# Bounds on what one request may carry; a message's headers have the STOMP frame's limits.
MAX_HEADERS = 64
MAX_BATCH = 100


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Request):
    username: str = Field(max_length=64, description="login name")
    password: str = Field(max_length=1024, description="password (sent over TLS in production)")


class NewUser(Request):
    # The rules are documented here and enforced by the accounts service, whose errors
    # (INVALID_USERNAME, WEAK_PASSWORD) say what the rule is.
    username: str = Field(
        max_length=64,
        description=f"login name: {USERNAME_RULE}",
        json_schema_extra={"pattern": f"^{USERNAME.pattern}$", "minLength": 3, "maxLength": 32},
    )
    password: str = Field(
        max_length=MAX_PASSWORD,
        description=f"{MIN_PASSWORD} to {MAX_PASSWORD} characters, not the username",
        json_schema_extra={"minLength": MIN_PASSWORD},
    )
    role: Role = Field(Role.USER, description="admin may only be given by an admin")


class UserPatch(Request):
    disabled: bool | None = Field(None, description="disable (true) or enable (false)")
    role: Role | None = None


class User(BaseModel):
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class Session(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    expires_at: datetime


NAME_PATTERN = r"^[A-Za-z0-9_.:@\-]+$"


class NewDestination(Request):
    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="letters, digits, '-', '_', '.', ':'; not only dots (a URL cannot carry them)",
    )
    access_key: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="others must present it to publish or consume (stored hashed)",
    )


class NewChannel(NewDestination):
    type: ChannelType = Field(
        ChannelType.FANOUT,
        description="how it routes, fixed at creation: fanout (every subscriber and bound"
        " queue), direct (binding key equals the routing key) or topic (words separated by"
        " '.'; in a binding key '*' matches one word, '#' zero or more)",
    )


class Policy(Request):
    """How a queue treats its messages; set at creation."""

    durable: bool = Field(True, description="keep messages on disk (unless persistent:false)")
    max_length: int | None = Field(None, ge=1, strict=True, description="most waiting messages")
    max_length_bytes: int | None = Field(
        None, ge=1, strict=True, description="most waiting body bytes"
    )
    overflow: Overflow = Field(
        Overflow.REJECT_PUBLISH, description="past a maximum: refuse publishes or drop the oldest"
    )
    message_ttl_ms: int | None = Field(
        None, ge=1, strict=True, description="default message lifetime in ms"
    )
    dead_letter_queue: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description=(
            "where expired, dropped and too-often-delivered messages go (a queue name, not only"
            " dots)"
        ),
    )
    max_deliveries: int | None = Field(
        None, ge=1, strict=True, description="deliveries before a message is dead-lettered"
    )
    backlog_window: int | None = Field(
        None,
        ge=1,
        le=MAX_BACKLOG_WINDOW,
        strict=True,
        description="waiting messages held in memory, the rest on disk (null: the broker's"
        " --backlog-window)",
    )
    backlog_window_bytes: int | None = Field(
        None,
        ge=1,
        le=MAX_BACKLOG_WINDOW_BYTES,
        strict=True,
        description="body bytes of those (null: the broker's --backlog-window-bytes)",
    )
    retry_delay_ms: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        strict=True,
        description="a NACKed message (without requeue-delay) waits this long before its first"
        " redelivery (null: redelivered at once)",
    )
    retry_multiplier: float = Field(
        1.0,
        ge=1.0,
        le=1000.0,
        strict=True,
        allow_inf_nan=False,
        description="each further NACK of the message multiplies that wait (fractional allowed)",
    )
    retry_max_delay_ms: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        strict=True,
        description="the longest retry wait (null: no bound but the broker's --max-delay-ms)",
    )
    ack_timeout_ms: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        strict=True,
        description="a delivery not acknowledged within this long goes back to the queue (the"
        " connection stays open); subscribers may ask for less (null: no deadline)",
    )
    dedup_window_ms: int = Field(
        DEFAULT_DEDUP_WINDOW_MS,
        ge=0,
        le=MAX_DEDUP_WINDOW_MS,
        strict=True,
        description="how long a publish's idempotency key is remembered, in ms: a repeat"
        " within it is not enqueued again (0: keys are ignored; default 10 minutes)",
    )
    auto_delete: bool = Field(
        False, description="delete the queue when its last consumer leaves (once it had one)"
    )
    expires_ms: int | None = Field(
        None,
        ge=1,
        le=MAX_DELAY_MS,
        strict=True,
        description="delete the queue once unused this long, in ms: no consumer, no pull (null:"
        " it stays)",
    )
    dead_letter_exchange: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="a channel to publish dead letters to instead of a dead-letter queue (AMQP's"
        " x-dead-letter-exchange)",
    )
    dead_letter_routing_key: str | None = Field(
        None,
        max_length=255,
        description="the routing key of those (null: the message's own, or the queue's name)",
    )

    @model_validator(mode="after")
    def _one_dead_letter_target(self) -> Policy:
        """One place for dead letters, and a routing key only where something routes."""
        if self.dead_letter_queue is not None and self.dead_letter_exchange is not None:
            raise ValueError("give dead_letter_queue or dead_letter_exchange, not both")
        key = self.dead_letter_routing_key
        if key is not None:
            if self.dead_letter_exchange is None:
                raise ValueError("dead_letter_routing_key needs a dead_letter_exchange")
            try:
                check_key(key, "dead_letter_routing_key")
            except BrokerError as exc:
                raise ValueError(exc.detail) from None
        return self


class NewQueue(NewDestination):
    policy: Policy = Field(default_factory=Policy)
    dead_letter_access_key: str | None = Field(
        None,
        max_length=1024,
        description="the access key of the policy's dead_letter_queue, when that is someone"
        " else's protected queue (dead-lettering publishes there; checked, never stored)",
    )


class DestinationPatch(Request):
    access_key: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="a new access key (null: remove it); open connections that used the old"
        " one are closed",
    )
    dead_letter_access_key: str | None = Field(
        None,
        max_length=1024,
        description="queues: the dead-letter queue's current access key, after it changed",
    )


class Rates(BaseModel):
    published_per_s: float
    delivered_per_s: float


class Destination(BaseModel):
    id: str
    name: str
    address: str = Field(description="the STOMP destination, e.g. /queue/jobs")
    owner: str | None = Field(description="the owner's username; null once deleted")
    protected: bool = Field(description="whether an access key protects it")
    created_at: datetime
    published: int = Field(description="messages published since the broker started")
    delivered: int = Field(description="deliveries since the broker started")
    rates: Rates = Field(description="over about the last five seconds")


class QueueInfo(Destination):
    depth: int = Field(description="messages waiting for a consumer")
    in_flight: int = Field(description="delivered and not yet acknowledged")
    consumers: int
    scheduled: int = Field(
        description="messages waiting for their time (delayed publishes, retries with back-off);"
        " not in depth"
    )
    scheduled_total: int = Field(description="messages published with a delay since start")
    retried: int = Field(description="NACKed messages whose redelivery was delayed, since start")
    dead_lettered_by_reason: dict[str, int] = Field(
        description="messages moved to the dead-letter queue since start, by reason (expired,"
        " max-deliveries, rejected, max-length, ack-timeout)"
    )
    lease_expired: int = Field(
        description="deliveries not acknowledged within their ack timeout or pull lease"
        " (they came back)"
    )
    late_settles: int = Field(
        description="ACKs, NACKs and extensions of those after they came back (ignored)"
    )
    policy: Policy


class DurableSubscription(BaseModel):
    name: str
    owner: str | None
    backlog: int = Field(description="messages kept for it while its owner is away")


class ChannelInfo(Destination):
    type: ChannelType = Field(description="how it routes: fanout, direct or topic")
    subscribers: int
    durable_subscriptions: list[DurableSubscription]
    bindings: int = Field(description="queues bound to it (GET .../bindings lists them)")


class NewBinding(Request):
    queue: str = Field(
        min_length=1, max_length=200, pattern=NAME_PATTERN, description="the queue to feed"
    )
    routing_key: str = Field(
        "",
        max_length=MAX_KEY_BYTES,
        description=f"the binding key: at most {MAX_KEY_BYTES} bytes (UTF-8), no control"
        " characters; a pattern for a topic channel ('*' one word, '#' zero or more), ignored"
        " by a fanout one",
    )
    channel_access_key: str | None = Field(
        None,
        max_length=1024,
        description="the channel's access key, when it is someone else's protected channel"
        " (binding needs the right to consume from it)",
    )
    queue_access_key: str | None = Field(
        None,
        max_length=1024,
        description="the queue's access key, when it is someone else's protected queue"
        " (binding needs the right to publish into it)",
    )


class BindingInfo(BaseModel):
    channel: str
    queue: str
    routing_key: str
    owner: str | None = Field(description="who bound it (null once that user is deleted)")
    created_at: datetime
    active: bool = Field(
        description="false while an access key it was made with has changed since: bind again"
        " with the new key"
    )


class Purged(BaseModel):
    purged: int = Field(description="waiting messages dropped (those in flight stay)")


class NewMessage(Request):
    body: str | None = Field(None, description="the body as text (UTF-8)")
    body_base64: str | None = Field(None, description="or the body as base64, for binary data")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=f"user headers, at most {MAX_HEADERS}; names of 1 to 256 characters",
        json_schema_extra={"maxProperties": MAX_HEADERS},  # checked with a clearer message
    )
    delay_ms: int | None = Field(
        None,
        ge=0,
        strict=True,
        description="queues: deliver no earlier than this many ms from now (at most the"
        " broker's --max-delay-ms, 30 days by default; 0: at once)",
    )
    deliver_at_ms: int | None = Field(
        None,
        ge=0,
        strict=True,
        description="queues: or deliver no earlier than this time, in ms since the Unix epoch"
        " (a time past delivers at once)",
    )
    priority: int | None = Field(
        None,
        ge=0,
        le=HIGHEST_PRIORITY,
        strict=True,
        description="0 (lowest) to 9; a queue hands out higher priorities first (default 4)",
    )


class Published(BaseModel):
    message_id: str


class PullRequest(Request):
    max: int = Field(1, ge=1, le=MAX_BATCH, strict=True, description="most messages to return")
    lease_ms: int = Field(
        30_000, ge=1_000, le=12 * 3600 * 1000, strict=True, description="how long they stay leased"
    )
    wait_ms: int = Field(
        0, ge=0, le=20_000, strict=True, description="wait this long for a first message"
    )


class PulledMessage(BaseModel):
    message_id: str
    receipt: str = Field(description="ack or nack the message with this")
    destination: str
    headers: dict[str, str]
    body: str | None = Field(description="the body as text, when it is valid UTF-8")
    body_base64: str | None = Field(description="else the body as base64")
    redelivered: bool
    lease_expires_at: datetime


class Pulled(BaseModel):
    messages: list[PulledMessage]


class PeekedMessage(BaseModel):
    message_id: str
    headers: dict[str, str]
    body: str | None = Field(description="the body as text, when it is valid UTF-8")
    body_base64: str | None = Field(description="else the body as base64")
    redelivered: bool = Field(description="delivered before and given back")


class Peeked(BaseModel):
    messages: list[PeekedMessage] = Field(description="the oldest waiting messages, in order")


class Receipts(Request):
    receipts: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class NackRequest(Receipts):
    requeue: bool = Field(
        True, strict=True, description="false: dead-letter them at once (reason rejected)"
    )
    requeue_delay_ms: int | None = Field(
        None,
        ge=0,
        strict=True,
        description="redeliver after this many ms (null: the queue's retry back-off decides)",
    )
    error: str | None = Field(
        None,
        max_length=ERROR_CHARS,
        description="why they failed; kept with each message (x-last-error once dead-lettered)",
    )


class ScheduledMessage(BaseModel):
    message_id: str
    headers: dict[str, str]
    body: str | None = Field(description="the body as text, when it is valid UTF-8")
    body_base64: str | None = Field(description="else the body as base64")
    deliver_at: datetime
    deliver_at_ms: int = Field(description="the same time, in ms since the Unix epoch")
    seconds_left: float = Field(description="until then, as the broker saw it (0: due now)")


class Scheduled(BaseModel):
    messages: list[ScheduledMessage] = Field(description="the soonest first")


class Settled(BaseModel):
    settled: int


class Totals(BaseModel):
    published: int
    delivered: int
    queued_bytes: int


class Overview(BaseModel):
    version: str
    uptime_s: float
    connections: int
    users: int
    queues: int
    channels: int
    messages: Totals
    rates: Rates
    memory_bytes: int | None = Field(
        description="the broker process's resident memory; null where the system does not say"
    )
    store_bytes: int | None = Field(
        description="what the store takes on disk; null for the memory store"
    )


class RatePoint(BaseModel):
    at: datetime
    published_per_s: float
    delivered_per_s: float


class RateHistory(BaseModel):
    points: list[RatePoint] = Field(description="one a second, oldest first, five minutes at most")


class Connection(BaseModel):
    id: str
    user: str | None
    peer: str
    protocol: str
    transport: str = Field(
        description="tcp, tls (STOMP over TLS), websocket (/ws) or websocket+tls (/ws on HTTPS)"
    )
    connected_at: datetime
    subscriptions: int
    published: int
    delivered: int


class Node(BaseModel):
    name: str = Field(description="--node-name, by default the host name and the STOMP port")
    alive: bool = Field(
        description="false once it stopped, or stayed silent longer than the node timeout"
    )
    listeners: list[str] = Field(
        description="where clients reach it: stomp://, http://…/api/v1, and their TLS twins"
    )
    heartbeat_at: datetime = Field(description="its last heartbeat")
    started_at: datetime
    connections: int = Field(description="its open STOMP connections at that heartbeat")
    id: int = Field(description="this run's id; the node gets a new one when it restarts")


class Cluster(BaseModel):
    nodes: list[Node] = Field(
        description="the nodes sharing this broker's database (those stopped lately too), by"
        " name; with SQLite or memory storage, this broker alone"
    )


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    code: str = Field(description="stable error code, e.g. ACCESS_KEY_REQUIRED")
    message: str = Field(description="short text for people")
    detail: str = Field(description="what exactly was wrong, if known")


class Problem(BaseModel):
    error: ErrorBody
