"""A recording sink and a small session wrapper shared by the engine tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from buzon.auth import Principal
from buzon.broker import AckMode, Broker, Headers, Message, Session
from buzon.errors import ErrorCode, StoreError
from buzon.server.publish_headers import split_publish
from buzon.store import (
    IdempotencyKey,
    MemoryStore,
    MessageKey,
    Role,
    StoredBacklog,
    StoredMessage,
    Ticket,
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as a sink received it."""

    subscription_id: str
    message: Message
    ack_id: str | None
    redelivered: bool


@dataclass(eq=False)
class RecordingSink:
    """Collects deliveries and close requests; ``on_deliver`` runs inside ``deliver()``."""

    deliveries: list[Delivery] = field(default_factory=list)
    close_requests: list[tuple[ErrorCode, str]] = field(default_factory=list)
    on_deliver: Callable[[Delivery], None] | None = None
    on_close: Callable[[ErrorCode, str], None] | None = None

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        delivery = Delivery(subscription_id, message, ack_id, redelivered)
        self.deliveries.append(delivery)
        if self.on_deliver is not None:
            self.on_deliver(delivery)

    def close_session(self, code: ErrorCode, detail: str) -> None:
        self.close_requests.append((code, detail))
        if self.on_close is not None:
            self.on_close(code, detail)


@dataclass(eq=False)
class Peer:
    """A session and the sink that receives its deliveries."""

    session: Session
    sink: RecordingSink

    @property
    def deliveries(self) -> list[Delivery]:
        return self.sink.deliveries

    def bodies(self) -> list[bytes]:
        return [delivery.message.body for delivery in self.sink.deliveries]

    def flags(self) -> list[bool]:
        return [delivery.redelivered for delivery in self.sink.deliveries]

    def ack_ids(self) -> list[str]:
        ids = [delivery.ack_id for delivery in self.sink.deliveries]
        assert all(ack_id is not None for ack_id in ids)
        return [ack_id for ack_id in ids if ack_id is not None]

    def clear(self) -> None:
        self.sink.deliveries.clear()

    def subscribe(
        self,
        destination: str,
        ack_mode: AckMode = AckMode.AUTO,
        prefetch: int | None = None,
        subscription_id: str = "sub",
    ) -> Peer:
        self.session.subscribe(subscription_id, destination, ack_mode, prefetch)
        return self

    def publish(self, destination: str, *bodies: bytes, transaction: str | None = None) -> None:
        for body in bodies:
            self.session.publish(destination, (), body, transaction=transaction)


def send(
    session: Session,
    destination: str,
    headers: Headers,
    body: bytes,
    *,
    transaction: str | None = None,
    create: bool = True,
) -> str:
    """Publish what a STOMP SEND with these headers publishes: its options (``delay``,
    ``priority``, ``persistent``...) read from them as the front end reads them."""
    kept, options = split_publish(headers)
    return session.publish(destination, kept, body, options, transaction=transaction, create=create)


class Clock:
    """Unix time that a test moves by hand (``clock.now += 10``)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def user(name: str, role: Role = Role.USER) -> Principal:
    """A principal whose id is derived from its name (tests only)."""
    return Principal(f"id-{name}", name, role)


def open_peer(broker: Broker, principal: str = "alice", role: Role = Role.USER) -> Peer:
    sink = RecordingSink()
    return Peer(broker.open_session(sink, user(principal, role)), sink)


def found(messages: Sequence[StoredMessage]) -> list[StoredBacklog]:
    """What a store would give at start for these stored messages, whole, per queue."""
    by_queue: dict[str, list[StoredMessage]] = {}
    for message in sorted(messages, key=lambda m: (m.queue_id, m.seq)):
        by_queue.setdefault(message.queue_id, []).append(message)
    return [
        StoredBacklog(queue_id, head, head[-1].seq, False) for queue_id, head in by_queue.items()
    ]


def numbered(count: int, start: int = 1) -> list[bytes]:
    """``[b"1", b"2", ...]``: bodies whose order is easy to read in assertions."""
    return [str(n).encode() for n in range(start, start + count)]


class HeldLog:
    """A message log whose writes stay pending until the test resolves them.

    A real implementation of the MessageLog protocol (it keeps what it is given), so the
    engine's "nothing before it is durable" rules can be observed step by step.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Ticket, list[StoredMessage], list[MessageKey]]] = []
        self.kept: dict[MessageKey, StoredMessage] = {}
        self.keys: dict[Ticket, list[IdempotencyKey]] = {}  # pending idempotency keys
        self.kept_keys: dict[tuple[str, str], IdempotencyKey] = {}
        self.redelivered: list[MessageKey] = []
        self.schedules: list[tuple[MessageKey, float]] = []

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        ticket = Ticket()
        self.pending.append((ticket, list(appends), list(removals)))
        if keys:
            self.keys[ticket] = list(keys)
        self.redelivered.extend(redelivered)
        self.schedules.extend(schedules)
        return ticket

    def resolve(self, error: ErrorCode | None = None) -> None:
        """Make every pending write durable (or fail them all with ``error``), including
        writes that resolving causes (an auto-ack removal when a message arrives)."""
        while self.pending:
            self._resolve_now(error)

    def _resolve_now(self, error: ErrorCode | None) -> None:
        pending, self.pending = self.pending, []
        for ticket, appends, removals in pending:
            keys = self.keys.pop(ticket, [])
            if error is None:
                self.kept.update({(m.queue_id, m.seq): m for m in appends})
                self.kept_keys.update({(k.queue_id, k.key): k for k in keys})
                for key in removals:
                    self.kept.pop(key, None)
                ticket.resolve()
            else:
                ticket.resolve(StoreError(error, "simulated"))


class HeldStore:
    """The memory store, every call held until :meth:`step` runs it (in call order)."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.held: deque[tuple[Callable[[], Ticket], Ticket]] = deque()

    def _hold(self, call: Callable[[], Ticket]) -> Ticket:
        ticket = Ticket()
        self.held.append((call, ticket))
        return ticket

    def submit(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        return self._hold(
            lambda: self.store.submit(appends, removals, redelivered, schedules, keys)
        )

    def spill(self, messages: Sequence[StoredMessage]) -> Ticket:
        return self._hold(lambda: self.store.spill(messages))

    def read_page(
        self,
        queue_id: str,
        after: int,
        upto: int,
        limit: int,
        max_bytes: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        return self._hold(
            lambda: self.store.read_page(queue_id, after, upto, limit, max_bytes, priority=priority)
        )

    # counts and expiries go two messages at a time, so they take several steps here too
    def count_tail(
        self, queue_id: str, after: int, upto: int, limit: int, *, priority: int | None = None
    ) -> Ticket:
        return self._hold(
            lambda: self.store.count_tail(queue_id, after, upto, 2, priority=priority)
        )

    def expire_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        now: float,
        limit: int,
        *,
        priority: int | None = None,
    ) -> Ticket:
        return self._hold(
            lambda: self.store.expire_tail(queue_id, after, upto, now, 2, priority=priority)
        )

    def purge_tail(
        self,
        queue_id: str,
        after: int,
        upto: int,
        keep: Sequence[int],
        *,
        priority: int | None = None,
    ) -> Ticket:
        return self._hold(
            lambda: self.store.purge_tail(queue_id, after, upto, keep, priority=priority)
        )

    def read_scheduled(self, queue_id: str, after: tuple[float, int] | None, limit: int) -> Ticket:
        return self._hold(lambda: self.store.read_scheduled(queue_id, after, limit))

    def purge_scheduled(self, queue_id: str, after: tuple[float, int] | None) -> Ticket:
        return self._hold(lambda: self.store.purge_scheduled(queue_id, after))

    def step(self) -> None:
        call, ticket = self.held.popleft()
        done = call()
        ticket.resolve(done.error, done.result)

    def flush(self) -> None:
        while self.held:
            self.step()
