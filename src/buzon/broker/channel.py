"""Channel: a router from a published message to the subscriptions and queues it reaches.

Routing. A channel has a type (``fanout``, ``direct`` or ``topic``, see ``routing``) and
three kinds of targets: plain subscriptions and durable subscriptions' backlogs, which get
every message; pattern subscriptions (``/topic/<name>/<pattern>``), which get the messages
whose routing key their pattern matches; and bound queues (see :class:`Binding`), which
get the matching messages enqueued, each message once per queue however many of its
bindings match. A fanout channel ignores keys and patterns.

A bound queue is fed as a durable subscription's backlog is: a persistent message for a
durable queue is admitted there before its write (:meth:`Channel.admit`) and written with
the others in one batch; a transient one, or one for a non-durable queue, is admitted when
it arrives. A bound queue that is full (overflow ``reject-publish``) does not get it; the
other targets do, and the channel counts it as dropped. A bound queue with a message TTL
gets its own copy of the message with that expiry (when sooner than the message's own),
as a message published to the queue itself would have.

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

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from buzon.broker.addresses import address
from buzon.broker.config import BrokerConfig, SlowConsumerPolicy
from buzon.broker.message import Message, Outcome
from buzon.broker.queue import Queue
from buzon.broker.routing import Router, router
from buzon.broker.stats import ChannelStats
from buzon.broker.subscription import Subscription
from buzon.errors import BrokerError, ErrorCode
from buzon.store.records import BindingRecord, DestinationRecord


@dataclass(slots=True)
class Binding:
    """A queue bound to a channel, live.

    Attributes:
        record: what is stored.
        queue: the bound queue.
        active: it routes now; False while a grant it was made with no longer holds (an
            access key changed since), until it is bound again with the new key or the
            key is removed (see :meth:`Destinations.refresh_bindings`).
    """

    record: BindingRecord
    queue: Queue
    active: bool = True


class Channel:
    """One ``/topic/<name>`` destination.

    Args:
        record: what the channel is (name, id, owner, key, type).
        config: the pending bounds and the slow-consumer policy.
        clock: Unix time, for the expiry of messages routed to queues with a TTL.
    """

    __slots__ = (
        "_admitted",
        "_clock",
        "_delivered",
        "_dropped",
        "_fanning_out",
        "_later",
        "_max_pending",
        "_max_pending_bytes",
        "_patterns",
        "_policy",
        "_published",
        "_router",
        "_snapshot",
        "_targets",
        "address",
        "bindings",
        "deleted",
        "durables",
        "name",
        "record",
    )

    def __init__(
        self,
        record: DestinationRecord,
        config: BrokerConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.record = record
        self._clock = clock
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
        # pattern subscriptions (with their pattern) and active bindings' queues
        self._router: Router[Subscription | Queue] = router(record.channel_type)
        self._patterns: dict[Subscription, str] = {}
        # (queue id, binding key) -> binding
        self.bindings: dict[tuple[str, str], Binding] = {}
        # seq -> the bound queues a persistent message was admitted to before its write,
        # each with the message as it went there
        self._admitted: dict[int, tuple[tuple[Queue, Message], ...]] = {}
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

    @property
    def stores(self) -> bool:
        """Whether a persistent message published here may be written (it has durable
        subscriptions or bound queues)."""
        return bool(self.durables or self.bindings)

    def admit(self, message: Message) -> list[tuple[str, bool, Message]]:
        """Admit a persistent message, before its write, to every durable subscription's
        backlog and every durable queue it is routed to; return for each the queue id,
        whether to write it as claimed by this node (see :meth:`Queue.admit`) and the
        message to write (a queue with a TTL has its own copy)."""
        admitted = [
            (key, backlog.admit(message), message) for key, backlog in self.durables.items()
        ]
        if not self.bindings:
            return admitted
        queues = []
        for target in self._router.match(message.routing_key):
            if isinstance(target, Queue) and target.policy.durable:
                routed = self._copy_for(target, message)
                try:
                    admitted.append((target.record.id, target.admit(routed), routed))
                except BrokerError:
                    continue  # full: offered again, and counted, when it arrives
                queues.append((target, routed))
        if queues:
            self._admitted[message.seq] = tuple(queues)
        return admitted

    def withdraw(self, message: Message) -> None:
        """An admitted message will not arrive after all (its write failed)."""
        for backlog in self.durables.values():
            backlog.withdraw(message)
        for queue, routed in self._admitted.pop(message.seq, ()):
            queue.withdraw(routed)

    def routes(self, key: str) -> bool:
        """Whether a message published now with routing key ``key`` reaches anyone: a
        subscriber, a durable subscription or a bound queue."""
        return bool(self._snapshot) or bool(self._router.match(key))

    def bind(self, binding: Binding) -> None:
        """Add a queue binding (replacing one with the same queue and key)."""
        record = binding.record
        self.unbind(record.queue_id, record.key)
        self.bindings[record.queue_id, record.key] = binding
        if binding.active:
            self._router.add(record.key, binding.queue)

    def unbind(self, queue_id: str, key: str) -> Binding | None:
        """Remove a queue binding; return it (None if there was none)."""
        binding = self.bindings.pop((queue_id, key), None)
        if binding is not None and binding.active:
            self._router.remove(key, binding.queue)
        return binding

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

    def attach(self, sub: Subscription, pattern: str = "") -> None:
        """Add a subscription; it receives messages published from now on: every one, or
        those whose routing key ``pattern`` matches."""
        if pattern:
            self._patterns[sub] = pattern
            self._router.add(pattern, sub)
        else:
            self._join(sub)

    def detach(self, sub: Subscription) -> None:
        """Remove a subscription, dropping its pending and unacked messages."""
        sub.active = False
        pattern = self._patterns.pop(sub, None)
        if pattern is None:
            self._leave(sub)
        else:
            self._router.remove(pattern, sub)
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
        self.bindings.clear()  # the bound queues stay
        for target in (*self._snapshot, *self._patterns):
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
        if self._patterns or self.bindings or self._admitted:
            self._route(message, local)

    def _route(self, message: Message, local: bool) -> None:
        """Deliver to the pattern subscriptions and bound queues ``message`` matches."""
        admitted = self._admitted.pop(message.seq, ()) if self._admitted else ()
        for queue, routed in admitted:
            if not queue.deleted:
                queue.fan_in(routed)  # written with it: it arrives whatever changed since
        written = {queue for queue, _ in admitted} if admitted else ()
        for target in self._router.match(message.routing_key):
            if not isinstance(target, Queue):
                self._offer(target, message)
            elif not local and target not in written:
                self._enqueue(target, message)

    def _offer(self, sub: Subscription, message: Message) -> None:
        if not sub.active:
            return  # left during this fan-out
        if sub.pending or not sub.can_take:
            self._hold(sub, message)
        else:
            self._delivered += 1
            sub.deliver(message, False)

    def _enqueue(self, queue: Queue, message: Message) -> None:
        """A bound queue's message, admitted now (transient, or not admitted before)."""
        try:
            queue.fan_in(self._copy_for(queue, message))
        except BrokerError:
            self._dropped += 1  # the queue is full and refuses publishes

    def _copy_for(self, queue: Queue, message: Message) -> Message:
        """``message`` as ``queue`` keeps it: with the queue's TTL, when it has one that
        ends sooner than the message's own expiry."""
        ttl_ms = queue.policy.message_ttl_ms
        if ttl_ms is None:
            return message
        expires_at = self._clock() + ttl_ms / 1000
        if message.expires_at is not None and message.expires_at <= expires_at:
            return message
        return dataclasses.replace(message, expires_at=expires_at)

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
            subscribers=len(self._targets) - len(self.durables) + len(self._patterns),
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
        )
