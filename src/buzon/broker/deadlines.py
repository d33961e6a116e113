"""Ack deadlines (leases) of queue deliveries in ack modes client and client-individual.

A subscription whose queue has ``ack_timeout_ms`` (or whose SUBSCRIBE asked for one) gets
an :class:`AckDeadlines`: each delivery sets one timer on the engine's
:class:`~buzon.broker.timers.Timers`, settling it cancels the timer (O(1)), and a timer
that runs *lapses* the delivery: it leaves the subscription's unacknowledged deliveries and
its message goes back to the queue, marked redelivered (:meth:`Queue.lapse`). The session
stays open: only that delivery ends.

A consumer may still ACK or NACK a lapsed delivery: the session remembers the ack ids of
its last :data:`LAPSED_MEMORY` lapsed deliveries (:class:`Lapsed`), so such a late
settlement is ignored and counted instead of being an unknown ack id (an ERROR, which ends
a STOMP connection). Older ones are forgotten and are unknown again.

Subscriptions without a deadline carry ``deadlines = None`` and cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from buzon.broker.timers import Timer, Timers
from buzon.errors import BrokerError, ErrorCode

if TYPE_CHECKING:
    from buzon.broker.message import Message
    from buzon.broker.subscription import Subscription

ACK_TIMEOUT_HEADER = "ack-timeout-ms"
LAPSED_MEMORY = 10_000
"""Lapsed ack ids a session remembers, so late ACKs and NACKs of them are no-ops."""


def ack_timeout(asked_ms: int | None, policy_ms: int | None, most_ms: int) -> int | None:
    """The ack timeout of a new subscription, in ms, or None for none.

    The queue's ``ack_timeout_ms`` is the longest a subscriber may hold a delivery; the
    subscriber may ask for less. On a queue without one a subscriber may set its own (up
    to ``most_ms``, the broker's scheduling bound).

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header when the subscriber asks for more.
    """
    if asked_ms is None:
        return policy_ms
    bound, what = (policy_ms, "the queue's ack_timeout_ms") if policy_ms else (most_ms, "")
    if not 1 <= asked_ms <= bound:
        because = f" ({what})" if what else ""
        raise BrokerError(
            ErrorCode.BAD_HEADER_VALUE,
            f"{ACK_TIMEOUT_HEADER} must be between 1 and {bound}{because}",
        )
    return asked_ms


class AckDeadlines:
    """The running deadlines of one subscription's unacknowledged deliveries.

    Args:
        sub: the subscription.
        timers: the engine's deadlines.
        clock: the engine's Unix time.
        timeout_ms: how long a delivery may stay unsettled.
        lapse: takes a lapsed delivery's message back (the queue's :meth:`Queue.lapse`).
    """

    __slots__ = ("_clock", "_lapse", "_running", "_sub", "_timers", "timeout_ms")

    def __init__(
        self,
        sub: Subscription,
        timers: Timers,
        clock: Callable[[], float],
        timeout_ms: int,
        lapse: Callable[[Subscription, Message], None],
    ) -> None:
        self._sub = sub
        self._timers = timers
        self._clock = clock
        self.timeout_ms = timeout_ms
        self._lapse = lapse
        self._running: dict[str, Timer] = {}

    def start(self, ack_id: str) -> None:
        """A delivery was made: its deadline is the timeout from now."""
        when = self._clock() + self.timeout_ms / 1000
        self._running[ack_id] = self._timers.at(when, partial(self._expire, ack_id))

    def stop(self, ack_id: str) -> None:
        """The delivery was settled: no deadline any more."""
        timer = self._running.pop(ack_id, None)
        if timer is not None:
            timer.cancel()

    def stop_all(self) -> None:
        """The subscription ends: its deliveries go back by themselves."""
        for timer in self._running.values():
            timer.cancel()
        self._running.clear()

    def extend(self, ack_id: str, ms: int | None) -> bool:
        """Move a delivery's deadline to ``ms`` (default: the timeout) from now; False when
        it has none (settled or lapsed)."""
        timer = self._running.get(ack_id)
        if timer is None:
            return False
        timer.cancel()
        wait = self.timeout_ms if ms is None else ms
        when = self._clock() + wait / 1000
        self._running[ack_id] = self._timers.at(when, partial(self._expire, ack_id))
        return True

    def _expire(self, ack_id: str) -> None:
        del self._running[ack_id]
        sub = self._sub
        message = sub.lapse(ack_id)
        consumer = sub.consumer
        lapsed = consumer.lapsed
        if lapsed is None:
            lapsed = consumer.lapsed = Lapsed()
        lapsed.remember(ack_id, sub, message.id)
        self._lapse(sub, message)


class Lapsed:
    """The ack ids of one session's last lapsed deliveries (bounded, oldest forgotten)."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        # ack id -> (subscription, message id), oldest first
        self._ids: dict[str, tuple[Subscription, str]] = {}

    def remember(self, ack_id: str, sub: Subscription, message_id: str) -> None:
        ids = self._ids
        ids[ack_id] = (sub, message_id)
        if len(ids) > LAPSED_MEMORY:
            del ids[next(iter(ids))]

    def get(self, ack_id: str) -> Subscription | None:
        """The subscription of a remembered lapsed delivery, or None."""
        found = self._ids.get(ack_id)
        return None if found is None else found[0]

    def find(self, subscription_id: str, message_id: str) -> str | None:
        """The ack id of a remembered lapsed delivery of that message on that subscription
        (STOMP 1.1 names deliveries so); a scan, for that rare case only."""
        for ack_id, (sub, lapsed_id) in reversed(self._ids.items()):
            if lapsed_id == message_id and sub.id == subscription_id:
                return ack_id
        return None


class LapseCounters:
    """One queue's lapsed deliveries: counts, and which messages' last delivery lapsed
    (so one retired for ``max_deliveries`` says ``ack-timeout``)."""

    __slots__ = ("_ended", "expired", "late")

    def __init__(self) -> None:
        self.expired = 0  # deliveries that lapsed
        self.late = 0  # ACKs, NACKs and extensions of lapsed deliveries
        self._ended: dict[int, int] = {}  # seq -> its delivery count when it lapsed

    def ended(self, seq: int, deliveries: int) -> None:
        """The delivery that made ``deliveries`` of message ``seq`` lapsed."""
        self._ended[seq] = deliveries

    def by_timeout(self, seq: int, deliveries: int) -> bool:
        """Whether the last of ``deliveries`` of message ``seq`` lapsed."""
        return self._ended.get(seq) == deliveries

    def forget(self, seq: int) -> None:
        """The message left the queue."""
        if self._ended:
            self._ended.pop(seq, None)
