"""Channel: fan-out of every message to every subscription that exists when it is published.

Strategy. A publish walks a cached tuple of the current subscriptions (rebuilt only when one
joins or leaves), so a sink that unsubscribes or closes a session mid-fan-out cannot break
the walk, and a subscription that left is skipped by its ``active`` flag. A subscription that
cannot take the message now (session not writable, window full) or already has messages
waiting gets it appended to its own ``pending`` deque, so per-subscription order is publish
order. Past ``channel_max_pending`` messages or ``channel_max_pending_bytes`` the slow
consumer policy applies: drop the oldest pending messages, or end the session.

Nothing is redelivered on a channel: a NACK, an unsubscribe or a closed session drops the
unacknowledged and pending messages of that subscription.

Durable subscriptions are different: each has a backlog, a bounded queue in ``durables``
that receives every message of the channel whether or not its owner is connected; the
owner's SUBSCRIBE attaches to that queue, so it gets queue semantics (acks, redelivery).
A backlog is an ordinary fan-out target: it sits in the same snapshot as the live
subscriptions and is fed by the same loop, so whatever reaches one reaches the others.

A publish made from inside a delivery of the same channel (an in-process sink that answers
on the channel it listens to, or a durable subscriber's) is queued and fanned out to every
target after the current message, so no target sees the second message before the first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from buzon.broker.addresses import address
from buzon.broker.config import BrokerConfig, SlowConsumerPolicy
from buzon.broker.message import Message, Outcome
from buzon.broker.queue import Queue
from buzon.broker.stats import ChannelStats
from buzon.broker.subscription import Subscription
from buzon.errors import ErrorCode
from buzon.store.records import DestinationRecord


class Channel:
    """One ``/topic/<name>`` destination.

    Args:
        record: what the channel is (name, id, owner, key).
        config: the pending bounds and the slow-consumer policy.
    """

    __slots__ = (
        "_delivered",
        "_dropped",
        "_fanning_out",
        "_later",
        "_max_pending",
        "_max_pending_bytes",
        "_policy",
        "_published",
        "_snapshot",
        "_targets",
        "address",
        "deleted",
        "durables",
        "name",
        "record",
    )

    def __init__(self, record: DestinationRecord, config: BrokerConfig) -> None:
        self.record = record
        self.name = record.name
        self.address = address(record.kind, record.name)
        self.deleted = False
        # durable subscription id -> its backlog (also a target); see add_durable
        self.durables: dict[str, Queue] = {}
        self._max_pending = config.channel_max_pending
        self._max_pending_bytes = config.channel_max_pending_bytes
        self._policy = config.slow_consumer_policy
        # live subscriptions and durable backlogs; a dict as an ordered set: fan-out
        # order is the order they joined
        self._targets: dict[Subscription | Queue, None] = {}
        self._snapshot: tuple[Subscription | Queue, ...] = ()
        self._fanning_out = False
        self._later: deque[tuple[Message, bool]] = deque()
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    def publish(self, message: Message, *, local: bool = False) -> None:
        """Deliver ``message`` to every current subscription, or queue it for them.

        ``local``: only this node's live subscriptions get it (a message another node of a
        cluster published: that node fed the durable subscriptions' shared backlogs).
        """
        self._published += 1
        if self._fanning_out:
            self._later.append((message, local))
            return
        self._fanning_out = True
        try:
            self._fan_out(message, local)
            later = self._later
            while later:
                self._fan_out(*later.popleft())
        finally:
            self._fanning_out = False

    def add_durable(self, durable_id: str, backlog: Queue) -> None:
        """Feed a durable subscription's backlog every message published from now on."""
        self.durables[durable_id] = backlog
        self._join(backlog)

    def remove_durable(self, durable_id: str) -> Queue | None:
        """Stop feeding a durable subscription's backlog; return it (None if unknown)."""
        backlog = self.durables.pop(durable_id, None)
        if backlog is not None:
            self._leave(backlog)
        return backlog

    # -- Target: what sessions call ------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Add a subscription; it receives messages published from now on."""
        self._join(sub)

    def detach(self, sub: Subscription) -> None:
        """Remove a subscription, dropping its pending and unacked messages."""
        sub.active = False
        self._leave(sub)
        self._dropped += len(sub.pending)
        sub.pending.clear()
        sub.pending_bytes = 0
        sub.take_all()

    def resume(self, sub: Subscription) -> None:
        """Deliver ``sub``'s pending messages while it can take them."""
        if sub.draining or not sub.pending:
            return  # a drain further up the stack continues
        sub.draining = True
        pending = sub.pending
        try:
            while pending and sub.can_take:
                message = pending.popleft()
                sub.pending_bytes -= len(message.body)
                self._delivered += 1
                sub.deliver(message, False)
        finally:
            sub.draining = False

    def settle(self, sub: Subscription, messages: Sequence[Message], outcome: Outcome) -> None:
        """Settled: nothing to keep, whatever the outcome (channels do not redeliver); the
        freed window lets pending messages flow."""
        self.resume(sub)

    def delete(self) -> None:
        """The channel is deleted: end every subscription (DESTINATION_DELETED), the
        durable ones' backlogs included."""
        self.deleted = True
        for target in self._snapshot:
            if isinstance(target, Queue):
                target.delete()
            else:
                target.consumer.kill(ErrorCode.DESTINATION_DELETED, f"{self.address} was deleted")

    # -- internals -----------------------------------------------------------------------

    def _join(self, target: Subscription | Queue) -> None:
        self._targets[target] = None
        self._snapshot = tuple(self._targets)

    def _leave(self, target: Subscription | Queue) -> None:
        del self._targets[target]
        self._snapshot = tuple(self._targets)

    def _fan_out(self, message: Message, local: bool) -> None:
        for target in self._snapshot:
            if isinstance(target, Queue):
                if not local:
                    target.fan_in(message)  # a durable subscription's backlog
            elif not target.active:
                continue  # left during this fan-out
            elif target.pending or not target.can_take:
                self._hold(target, message)
            else:
                self._delivered += 1
                target.deliver(message, False)

    def _hold(self, sub: Subscription, message: Message) -> None:
        pending = sub.pending
        pending.append(message)
        sub.pending_bytes += len(message.body)
        if len(pending) <= self._max_pending and sub.pending_bytes <= self._max_pending_bytes:
            return
        if self._policy is SlowConsumerPolicy.DROP_OLDEST:
            while pending and (
                len(pending) > self._max_pending or sub.pending_bytes > self._max_pending_bytes
            ):
                sub.pending_bytes -= len(pending.popleft().body)
                self._dropped += 1
        else:
            # Detaching (through the session's close) drops and counts the pending ones.
            sub.consumer.kill(
                ErrorCode.SLOW_CONSUMER,
                f"subscription {sub.id[:64]!r} on {self.address} has more than"
                f" {self._max_pending} messages or {self._max_pending_bytes} bytes pending",
            )

    def statistics(self) -> ChannelStats:
        """A snapshot of this channel's counters."""
        return ChannelStats(
            name=self.name,
            subscribers=len(self._targets) - len(self.durables),
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
        )
