"""Subscriptions and the per-session delivery state they share.

A :class:`Subscription` joins one session to one queue or channel. The destination decides
*when* a subscription gets a message; the subscription decides *how* it is handed out: it
assigns the ack id, remembers what is unacknowledged, and calls the session's sink. That
split lets queues and channels share the ack bookkeeping (cumulative vs individual) exactly.

Unacknowledged deliveries are kept in plain dicts keyed by ack id: insertion order is
delivery order, which is what a cumulative (``client``) ACK needs, and an individual ACK is
one dict pop. The session-wide index (:attr:`Consumer.unacked`) answers "which subscription
holds this ack id" without a scan, so another session's ack ids are simply unknown here.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from buzon.broker.message import DeliverySink, Message, Outcome
from buzon.errors import ErrorCode

if TYPE_CHECKING:
    from buzon.broker.deadlines import AckDeadlines, Lapsed


class AckMode(enum.StrEnum):
    """How deliveries of a subscription are settled (the STOMP ``ack`` header values)."""

    AUTO = "auto"
    """Settled when delivered; no ack id, no prefetch window."""
    CLIENT = "client"
    """settlement is cumulative: it settles everything delivered up to and including it."""
    CLIENT_INDIVIDUAL = "client-individual"
    """settlement settles exactly the one delivery it names."""


class Target(Protocol):
    """What a session needs from the queue or channel behind one of its subscriptions."""

    def attach(self, sub: Subscription) -> None:
        """Start delivering to ``sub`` (it may receive messages before this returns)."""

    def detach(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; its unacked messages go back (queue) or away."""

    def resume(self, sub: Subscription) -> None:
        """``sub`` may be able to take messages again (writable again, or got credit)."""

    def settle(self, sub: Subscription, messages: Sequence[Message], outcome: Outcome) -> None:
        """``messages`` were settled (already removed from ``sub``)."""


class Consumer:
    """The delivery side of one session, shared by all its subscriptions.

    Args:
        sink: where deliveries go.
        close: ends the session (used when the engine decides to drop a slow consumer).
    """

    __slots__ = (
        "_close",
        "_doomed",
        "delivered",
        "lapsed",
        "last_ack",
        "on_cancel",
        "sink",
        "unacked",
        "writable",
    )

    def __init__(self, sink: DeliverySink, close: Callable[[], None]) -> None:
        self.sink = sink
        self.writable = True
        self.delivered = 0
        self.last_ack = 0
        # ack id -> the subscription holding that unacknowledged delivery
        self.unacked: dict[str, Subscription] = {}
        # ack ids of deliveries whose ack deadline passed (made on the first one)
        self.lapsed: Lapsed | None = None
        self._close = close
        self._doomed = False
        # set by a session whose front end can tell its client that one subscription
        # ended (AMQP's basic.cancel); without it such an end ends the session
        self.on_cancel: Callable[[Subscription, ErrorCode, str], None] | None = None

    def kill(self, code: ErrorCode, detail: str) -> None:
        """Tell the sink the session must end (once), then close the session."""
        if self._doomed:
            return
        self._doomed = True
        self.writable = False
        self.sink.close_session(code, detail)
        self._close()

    def cancel(self, sub: Subscription, code: ErrorCode, detail: str) -> None:
        """The destination behind ``sub`` is gone: end that subscription only, if the
        session can say so to its client, else end the session."""
        if self.on_cancel is None:
            self.kill(code, detail)
        else:
            self.on_cancel(sub, code, detail)


class CreditPool:
    """Credit shared by the subscriptions of one session: together they hold at most
    ``limit`` unsettled deliveries, on top of each one's own window (AMQP's
    ``basic.qos`` with ``global``, when a front end maps a client channel to a session).

    Attributes:
        limit: the most unsettled deliveries at once, changeable at any time.
        used: unsettled deliveries the members hold now.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class Subscription:
    """One subscription of one session to one queue or channel.

    Args:
        subscription_id: the session's name for it (unique within the session).
        consumer: the owning session's delivery state.
        target: the queue or channel.
        ack_mode: how deliveries are settled.
        prefetch: the most unacknowledged deliveries it may hold (ignored for auto).
    """

    __slots__ = (
        "ack_mode",
        "active",
        "auto",
        "consumer",
        "deadlines",
        "draining",
        "id",
        "in_ring",
        "pending",
        "pending_bytes",
        "pool",
        "target",
        "unacked",
        "window",
    )

    def __init__(
        self,
        subscription_id: str,
        consumer: Consumer,
        target: Target,
        ack_mode: AckMode,
        prefetch: int,
    ) -> None:
        self.id = subscription_id
        self.consumer = consumer
        self.target = target
        self.ack_mode = ack_mode
        self.auto = ack_mode is AckMode.AUTO
        # Auto deliveries are never unacked, so any positive window means "no limit".
        self.window = 1 if self.auto else prefetch
        self.active = True
        self.unacked: dict[str, Message] = {}
        # queue only: currently in the queue's round-robin ring of consumers with credit
        self.in_ring = False
        # channel only: messages waiting until this subscription can take them
        self.pending: deque[Message] = deque()
        self.pending_bytes = 0
        self.draining = False
        # queue only: the ack deadlines of its deliveries, when it has an ack timeout
        self.deadlines: AckDeadlines | None = None
        # credit shared with the session's other subscriptions, when the session has some
        self.pool: CreditPool | None = None

    @property
    def can_take(self) -> bool:
        """Whether a message handed over now would be delivered right away."""
        pool = self.pool
        return (
            self.active
            and self.consumer.writable
            and len(self.unacked) < self.window
            and (pool is None or pool.used < pool.limit)
        )

    def join(self, pool: CreditPool | None) -> None:
        """Draw credit from ``pool`` from now on (None: from the own window only); what it
        holds unsettled counts against the pool at once."""
        if self.pool is not None:
            self.pool.used -= len(self.unacked)
        if pool is not None:
            pool.used += len(self.unacked)
        self.pool = pool

    def deliver(self, message: Message, redelivered: bool) -> None:
        """Hand ``message`` to the sink, recording it as unacked in client modes.

        The bookkeeping is done before the sink runs, so the sink may ack it at once.
        """
        consumer = self.consumer
        if self.auto:
            ack_id = None
            consumer.delivered += 1
        else:
            ack_id = self.hold(message)
            if self.deadlines is not None:
                self.deadlines.start(ack_id)
        consumer.sink.deliver(self.id, message, ack_id, redelivered)

    def hold(self, message: Message) -> str:
        """Record ``message`` as delivered and unacked here; return its new ack id."""
        consumer = self.consumer
        consumer.last_ack += 1
        ack_id = str(consumer.last_ack)
        self.unacked[ack_id] = message
        consumer.unacked[ack_id] = self
        consumer.delivered += 1
        if self.pool is not None:
            self.pool.used += 1
        return ack_id

    def take(self, ack_id: str) -> list[Message]:
        """Remove and return what an settlement of ``ack_id`` settles, in delivery order.

        Args:
            ack_id: an ack id this subscription holds (the caller checked).

        Returns:
            just that message (client-individual), or every message delivered up to and
            including it (client).
        """
        index = self.consumer.unacked
        unacked = self.unacked
        deadlines = self.deadlines
        if self.ack_mode is AckMode.CLIENT_INDIVIDUAL:
            del index[ack_id]
            if deadlines is not None:
                deadlines.stop(ack_id)
            if self.pool is not None:
                self.pool.used -= 1
            return [unacked.pop(ack_id)]
        ids = []
        for key in unacked:
            ids.append(key)
            if key == ack_id:
                break
        return self.take_ids(ids)

    def take_before(self, ack_id: str) -> list[Message]:
        """Remove and return what a cumulative (client) settlement of a lapsed ``ack_id``
        still settles: the deliveries made before it that this subscription holds (the
        lapsed one went back to the queue; individual mode settles nothing else)."""
        if self.ack_mode is not AckMode.CLIENT:
            return []
        limit = int(ack_id)  # ack ids count up per session, in delivery order
        ids = []
        for key in self.unacked:
            if int(key) > limit:
                break
            ids.append(key)
        return self.take_ids(ids)

    def take_ids(self, ids: list[str]) -> list[Message]:
        """Remove and return the deliveries of these ack ids (all held), in that order."""
        index = self.consumer.unacked
        unacked = self.unacked
        deadlines = self.deadlines
        taken = []
        for key in ids:
            del index[key]
            taken.append(unacked.pop(key))
            if deadlines is not None:
                deadlines.stop(key)
        if self.pool is not None:
            self.pool.used -= len(taken)
        return taken

    def lapse(self, ack_id: str) -> Message:
        """Remove and return the delivery of ``ack_id``, whose ack deadline passed."""
        del self.consumer.unacked[ack_id]
        if self.pool is not None:
            self.pool.used -= 1
        return self.unacked.pop(ack_id)

    def take_all(self) -> list[Message]:
        """Remove and return every unacked message (the subscription is ending)."""
        index = self.consumer.unacked
        for key in self.unacked:
            del index[key]
        taken = list(self.unacked.values())
        self.unacked.clear()
        if self.pool is not None:
            self.pool.used -= len(taken)
        if self.deadlines is not None:
            self.deadlines.stop_all()
        return taken
