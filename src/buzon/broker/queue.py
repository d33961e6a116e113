"""Queue: competing consumers, each message to exactly one of them.

Strategy. Waiting messages sit in ``_ready``, a deque kept sorted by publish sequence: new
messages have the highest sequence and go to the right end; messages that come back
(consumer gone, NACK) are merged in by sequence, so the queue always hands out the oldest
message first and returned messages keep their original order.

Consumers that can take a message right now are in ``_ring``, a deque used round-robin: the
dispatcher takes the consumer at the left, hands it one message and puts it back at the right
if it still has credit. A consumer that lost credit (window full, session not writable) drops
out of the ring and is put back by whatever gives it credit again (ACK, NACK,
``set_writable(True)``), so a publish costs O(1) however many consumers are idle or full.
Removal from the ring is lazy when a session stops being writable (it may happen inside a
delivery, from the sink) and eager on unsubscribe (so the ring never grows with churn).

HTTP consumers pull instead: :meth:`Queue.take` hands waiting messages out in the same
order, in flight until :meth:`Queue.ack_taken` or :meth:`Queue.return_taken` (the lease
table in ``leases`` decides when). A puller waiting for messages registers a one-shot
:meth:`Queue.call_when_ready`.

Deleting a queue drops its waiting messages, ends every subscription (the sessions get
DESTINATION_DELETED) and drops in-flight messages as they come back instead of requeueing.

Dispatch is not re-entrant: a sink that acks, publishes or subscribes from inside
``deliver()`` only updates state, and the loop already running picks the new work up. That
keeps the stack flat when a consumer acks every delivery synchronously.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from operator import attrgetter

from buzon.broker.addresses import address
from buzon.broker.flow import QueuedBytes
from buzon.broker.message import Message
from buzon.broker.stats import QueueStats
from buzon.broker.subscription import Subscription
from buzon.errors import ErrorCode
from buzon.store.records import DestinationRecord

_by_seq = attrgetter("seq")


class Queue:
    """One ``/queue/<name>`` destination.

    Args:
        record: what the queue is (name, id, owner, key).
        gauge: the broker-wide count of queued bytes, for producer flow control.
    """

    __slots__ = (
        "_acked",
        "_bytes",
        "_delivered",
        "_dispatching",
        "_gauge",
        "_in_flight",
        "_published",
        "_ready",
        "_redelivered",
        "_redeliveries",
        "_ring",
        "_subs",
        "_waiters",
        "address",
        "deleted",
        "name",
        "record",
    )

    def __init__(self, record: DestinationRecord, gauge: QueuedBytes) -> None:
        self.record = record
        self.name = record.name
        self.address = address(record.kind, record.name)
        self.deleted = False
        self._gauge = gauge
        self._ready: deque[Message] = deque()
        self._ring: deque[Subscription] = deque()
        self._subs: set[Subscription] = set()
        self._waiters: list[Callable[[], None]] = []
        # seqs of messages handed out before and given back; checked at delivery
        self._redelivered: set[int] = set()
        self._dispatching = False
        self._in_flight = 0
        self._bytes = 0
        self._published = 0
        self._delivered = 0
        self._acked = 0
        self._redeliveries = 0

    def publish(self, message: Message) -> None:
        """Enqueue ``message`` and hand it out if a consumer can take it."""
        self._published += 1
        size = len(message.body)
        self._bytes += size
        self._gauge.add(size)
        self._ready.append(message)
        if self._ring:
            self._dispatch()
        if self._waiters and self._ready:
            self._wake()

    # -- Target: what sessions call ------------------------------------------------------

    def attach(self, sub: Subscription) -> None:
        """Add a consumer and hand it the backlog it has room for."""
        self._subs.add(sub)
        self.resume(sub)

    def detach(self, sub: Subscription) -> None:
        """Remove a consumer; its unacked messages return to the queue, redelivered."""
        self._subs.discard(sub)
        sub.active = False
        if sub.in_ring:
            sub.in_ring = False
            self._ring.remove(sub)
        returned = sub.take_all()
        if returned:
            self._give_back(returned)

    def resume(self, sub: Subscription) -> None:
        """Put ``sub`` back in the ring if it can take messages, and dispatch."""
        if not sub.in_ring and sub.can_take:
            sub.in_ring = True
            self._ring.append(sub)
            if self._ready:
                self._dispatch()

    def settle(self, sub: Subscription, messages: Sequence[Message]) -> None:
        """Forget acknowledged messages for good, then refill ``sub``'s window."""
        self._in_flight -= len(messages)
        for message in messages:
            self._forget(message)
        self.resume(sub)

    def reject(self, sub: Subscription, messages: Sequence[Message]) -> None:
        """NACKed messages return to the queue (original order, redelivered)."""
        self._give_back(messages)
        self.resume(sub)

    # -- pulling (HTTP consumers) --------------------------------------------------------

    def take(self, limit: int) -> list[tuple[Message, bool]]:
        """Hand out up to ``limit`` waiting messages, oldest first, to a puller.

        They stay in flight until :meth:`ack_taken` or :meth:`return_taken`.

        Returns:
            ``(message, redelivered)`` pairs.
        """
        ready = self._ready
        redelivered = self._redelivered
        taken: list[tuple[Message, bool]] = []
        while ready and len(taken) < limit:
            message = ready.popleft()
            again = bool(redelivered) and message.seq in redelivered
            if again:
                self._redeliveries += 1
            taken.append((message, again))
        self._delivered += len(taken)
        self._in_flight += len(taken)
        return taken

    def ack_taken(self, messages: Sequence[Message]) -> None:
        """Messages from :meth:`take` were handled: forget them."""
        self._in_flight -= len(messages)
        for message in messages:
            self._forget(message)

    def return_taken(self, messages: Sequence[Message]) -> None:
        """Messages from :meth:`take` come back (NACK, lease expired), marked redelivered."""
        self._give_back(messages)

    def call_when_ready(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when a message waits undelivered (or the queue is deleted).

        Runs it now if that is already so. It must not raise.
        """
        if self._ready or self.deleted:
            callback()
        else:
            self._waiters.append(callback)

    def cancel_call(self, callback: Callable[[], None]) -> None:
        """Forget a callback given to :meth:`call_when_ready` that has not run."""
        if callback in self._waiters:
            self._waiters.remove(callback)

    def delete(self) -> None:
        """The queue is deleted: drop waiting messages and end every subscription."""
        self.deleted = True
        for message in self._ready:
            self._drop(message)
        self._ready.clear()
        self._redelivered.clear()
        self._wake()
        for sub in list(self._subs):
            sub.consumer.kill(ErrorCode.DESTINATION_DELETED, f"{self.address} was deleted")

    # -- internals -----------------------------------------------------------------------

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def _drop(self, message: Message) -> None:
        size = len(message.body)
        self._bytes -= size
        self._gauge.remove(size)

    def _forget(self, message: Message) -> None:
        self._acked += 1
        size = len(message.body)
        self._bytes -= size
        if self._redelivered:
            self._redelivered.discard(message.seq)
        self._gauge.remove(size)

    def _give_back(self, messages: Sequence[Message]) -> None:
        self._in_flight -= len(messages)
        if self.deleted:
            for message in messages:
                self._drop(message)
            return
        returned = sorted(messages, key=_by_seq)
        self._redelivered.update(message.seq for message in returned)
        ready = self._ready
        if not ready or returned[-1].seq < ready[0].seq:
            ready.extendleft(reversed(returned))
        else:
            merged = list(heapq.merge(ready, returned, key=_by_seq))
            ready.clear()
            ready.extend(merged)
        if self._ring:
            self._dispatch()
        if self._waiters and self._ready:
            self._wake()

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # the loop further up the stack sees the new state
        self._dispatching = True
        ready = self._ready
        ring = self._ring
        redelivered = self._redelivered
        try:
            while ready and ring:
                sub = ring.popleft()
                sub.in_ring = False
                if not sub.can_take:
                    continue  # lost credit since it joined; resume() brings it back
                message = ready.popleft()
                again = bool(redelivered) and message.seq in redelivered
                self._delivered += 1
                if again:
                    self._redeliveries += 1
                if sub.auto:
                    self._forget(message)
                else:
                    self._in_flight += 1
                sub.deliver(message, again)
                # The sink may have acked (and so re-queued sub) or unsubscribed it.
                if not sub.in_ring and sub.can_take:
                    sub.in_ring = True
                    ring.append(sub)
        finally:
            self._dispatching = False

    def statistics(self) -> QueueStats:
        """A snapshot of this queue's counters."""
        return QueueStats(
            name=self.name,
            depth=len(self._ready),
            in_flight=self._in_flight,
            consumers=len(self._subs),
            published=self._published,
            delivered=self._delivered,
            acked=self._acked,
            redelivered=self._redeliveries,
            bytes=self._bytes,
        )
