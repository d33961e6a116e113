"""Queues that end by themselves: exclusive to a connection, auto-deleted, or expiring.

Three ways, as AMQP clients expect them (Celery's reply and event queues use all three):

- *exclusive*: the queue belongs to one client connection (a tag the front end chooses).
  Only sessions opened with that tag may consume from it (others get ``RESOURCE_LOCKED``,
  publishing stays open to all, which is how RPC replies reach it), and it is deleted when
  the front end reports the connection closed.
- *auto-delete* (``QueuePolicy.auto_delete``): deleted when its last consumer leaves,
  once it has had one.
- *expiring* (``QueuePolicy.expires_ms``): deleted once it has been unused that long: no
  consumer, no pull, not declared again. The clock starts at creation and again whenever
  the last consumer leaves.

A queue with none of these costs nothing here: :attr:`Queue.lifetime` stays None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from buzon.broker.timers import Timer, Timers

if TYPE_CHECKING:
    from buzon.broker.queue import Queue

Ending = Callable[["Queue", str], None]
"""Deletes a queue for a reason (``exclusive``, ``auto-delete``, ``expired``)."""


class Lifetime:
    """How one queue ends by itself; the queue calls :meth:`attached` and :meth:`detached`.

    Args:
        queue: the queue.
        lifetimes: the registry that deletes it.
        exclusive_to: the connection tag it belongs to, or None.
    """

    __slots__ = ("_had_consumer", "_lifetimes", "_timer", "exclusive_to", "queue")

    def __init__(self, queue: Queue, lifetimes: Lifetimes, exclusive_to: str | None) -> None:
        self.queue = queue
        self.exclusive_to = exclusive_to
        self._lifetimes = lifetimes
        self._had_consumer = False
        self._timer: Timer | None = None

    def attached(self) -> None:
        """A consumer joined: the queue is in use."""
        self._had_consumer = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def detached(self, consumers_left: int) -> None:
        """A consumer left; ``consumers_left`` remain."""
        if consumers_left:
            return
        if self.queue.policy.auto_delete and self._had_consumer:
            self._lifetimes.end(self.queue, "auto-delete")
        else:
            self.touched()

    def touched(self) -> None:
        """The queue was used without a consumer (a pull, a declare): its expiry restarts."""
        expires_ms = self.queue.policy.expires_ms
        if expires_ms is None or self.queue.consumers or self.queue.deleted:
            return  # a deleted queue cancels its consumers: no timer for it any more
        if self._timer is not None:
            self._timer.cancel()
        timers = self._lifetimes.timers
        self._timer = timers.at(timers.now() + expires_ms / 1000, self._expire)

    def stop(self) -> None:
        """The queue is gone: nothing more to watch."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if not self.queue.deleted and not self.queue.consumers:
            self._lifetimes.end(self.queue, "expired")


class Lifetimes:
    """Every queue of one broker that may end by itself.

    Args:
        timers: the engine's timers (for expiry).
        end: deletes a queue (the registry's removal, which also tells the store).
    """

    __slots__ = ("_end", "_exclusive", "timers")

    def __init__(self, timers: Timers, end: Ending) -> None:
        self.timers = timers
        self._end = end
        self._exclusive: dict[str, list[Queue]] = {}  # connection tag -> its queues

    def watch(self, queue: Queue, exclusive_to: str | None) -> None:
        """Give ``queue`` a lifetime if its policy or ``exclusive_to`` asks for one."""
        policy = queue.policy
        if exclusive_to is None and not policy.auto_delete and policy.expires_ms is None:
            return
        lifetime = queue.lifetime = Lifetime(queue, self, exclusive_to)
        if exclusive_to is not None:
            self._exclusive.setdefault(exclusive_to, []).append(queue)
        lifetime.touched()

    def end(self, queue: Queue, reason: str) -> None:
        """Delete ``queue`` (once)."""
        if queue.deleted:
            return
        self.forget(queue)
        self._end(queue, reason)

    def forget(self, queue: Queue) -> None:
        """``queue`` was deleted (by anyone): stop watching it."""
        lifetime = queue.lifetime
        if lifetime is None:
            return
        lifetime.stop()
        tag = lifetime.exclusive_to
        if tag is not None:
            queues = self._exclusive.get(tag, [])
            if queue in queues:
                queues.remove(queue)
            if not queues:
                self._exclusive.pop(tag, None)

    def connection_closed(self, tag: str) -> int:
        """Delete the queues exclusive to the connection ``tag``; return how many."""
        queues = self._exclusive.pop(tag, [])
        for queue in queues:
            self.end(queue, "exclusive")
        return len(queues)
