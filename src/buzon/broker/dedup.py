"""Idempotent publish: a key seen by a queue within its window publishes nothing new.

A publisher that loses a RECEIPT (or an HTTP answer) cannot know whether its message got
in; with an ``idempotency-key`` it can simply publish again. If the queue saw that key
within its policy's ``dedup_window_ms``, the second publish is answered with the first
message's id, and the queue holds one message. Keys are per queue: the same key on another
queue is another message. Channels ignore keys (a channel keeps nothing to compare with,
and its subscribers see each publish as it happens).

:class:`Dedup` is the engine's index: per queue, key → (message id, expiry, pending write).
Persistent messages write their key in the same store transaction as themselves, so a
RECEIPT implies the key is on disk too; the index is loaded back from the store at start.
A duplicate of a message whose write is still pending is confirmed only once that write is
durable (the caller waits for it); if that write fails, the key is forgotten with it.

Memory: an entry holds about 280 bytes of objects (a 36-character key,
``benchmarks/bench_engine.py --keys``); a broker's RSS grows by 430 to 760 bytes per key
held, as keys outlive the messages allocated beside them (``benchmarks/dedup_rss.py``). The
index holds at most ``max_keys`` keys across the broker (by default a million). Past that, the
queue adding a key forgets its own oldest one early (counted in :attr:`Dedup.evicted`); a
retry carrying a forgotten key publishes again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from buzon.broker.config import DEFAULT_DEDUP_MAX_KEYS
from buzon.errors import BrokerError, ErrorCode
from buzon.store import IdempotencyKey, Ticket

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_BYTES = 256

# message id, expiry (Unix time), the write that makes it durable while one is pending
_Entry = tuple[str, float, Ticket | None]


def check_key(key: str) -> str:
    """``key`` if it may be an idempotency key.

    Raises:
        BrokerError: BAD_HEADER_VALUE for an empty key or one over 256 bytes of UTF-8.
    """
    size = len(key)  # characters: bytes too, unless it is not ASCII
    if not 0 < size <= MAX_KEY_BYTES or (not key.isascii() and len(key.encode()) > MAX_KEY_BYTES):
        raise BrokerError(
            ErrorCode.BAD_HEADER_VALUE,
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_BYTES} bytes of UTF-8",
        )
    return key


@dataclass(slots=True)
class _QueueKeys:
    """One queue's keys; ``order`` holds them oldest first (a queue's window never
    changes, so that is also their expiry order)."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    order: deque[str] = field(default_factory=deque)


class Dedup:
    """The idempotency keys of every queue, by queue id.

    Args:
        clock: Unix time.
        max_keys: most keys held in memory across the broker.
    """

    __slots__ = ("_clock", "_pending", "_queues", "evicted", "max_keys", "size")

    def __init__(self, clock: Callable[[], float], max_keys: int = DEFAULT_DEDUP_MAX_KEYS) -> None:
        self._clock = clock
        self.max_keys = max_keys
        self._queues: dict[str, _QueueKeys] = {}
        # keys whose message's write is pending, by that write's ticket
        self._pending: dict[Ticket, list[tuple[_QueueKeys, str]]] = {}
        self.size = 0  # keys held
        self.evicted = 0  # keys forgotten before their window ended, to stay under max_keys

    def find(self, queue_id: str, key: str) -> _Entry | None:
        """The live entry of ``key`` in a queue, or None."""
        keys = self._queues.get(queue_id)
        if keys is None:
            return None
        entry = keys.entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry

    def remember(
        self,
        queue_id: str,
        key: str,
        message_id: str,
        expires_at: float,
        ticket: Ticket | None = None,
    ) -> None:
        """Hold a new key of a queue until ``expires_at``; ``ticket``: the write of its
        message (None: not written)."""
        keys = self._queues.get(queue_id)
        if keys is None:
            keys = self._queues[queue_id] = _QueueKeys()
        else:
            self._prune(keys, self._clock())
        if self.size >= self.max_keys and keys.order:
            self._forget(keys, keys.order.popleft())
            self.evicted += 1
        pending = ticket is not None and not ticket.done
        if key in keys.entries:
            self.size -= 1  # an expired entry not pruned yet (the clock went back)
        keys.entries[key] = (message_id, expires_at, ticket if pending else None)
        keys.order.append(key)
        self.size += 1
        if pending:
            assert ticket is not None
            waiting = self._pending.get(ticket)
            if waiting is None:
                waiting = self._pending[ticket] = []
                ticket.add_callback(self._written)
            waiting.append((keys, key))

    def withdraw(self, queue_id: str, key: str, message_id: str) -> None:
        """Forget a key held for a message that will not be published after all (the
        transaction it was part of failed), so that a retry publishes it."""
        keys = self._queues.get(queue_id)
        entry = None if keys is None else keys.entries.get(key)
        if keys is not None and entry is not None and entry[0] == message_id:
            self._forget(keys, key)

    def drop(self, queue_id: str) -> None:
        """Forget every key of a deleted queue (another of the same name is another queue,
        with another id)."""
        keys = self._queues.pop(queue_id, None)
        if keys is not None:
            self.size -= len(keys.entries)
            keys.entries.clear()  # a write still pending finds nothing to forget

    def restore(self, found: Iterable[IdempotencyKey]) -> int:
        """Hold the keys the store kept (by queue, oldest first); return how many."""
        restored = 0
        for key in found:
            self.remember(key.queue_id, key.key, key.message_id, key.expires_at)
            restored += 1
        return restored

    def prune(self) -> int:
        """Forget every key whose window ended; return how many."""
        now = self._clock()
        before = self.size
        for queue_id, keys in list(self._queues.items()):
            self._prune(keys, now)
            if not keys.entries:
                del self._queues[queue_id]
        return before - self.size

    def _prune(self, keys: _QueueKeys, now: float) -> None:
        order = keys.order
        entries = keys.entries
        while order:
            entry = entries.get(order[0])
            if entry is not None and entry[1] > now:
                return
            self._forget(keys, order.popleft())

    def _forget(self, keys: _QueueKeys, key: str) -> None:
        if keys.entries.pop(key, None) is not None:
            self.size -= 1

    def _written(self, ticket: Ticket) -> None:
        """A write with keys ended: they are durable now, or (it failed) they published
        nothing and are forgotten."""
        for keys, key in self._pending.pop(ticket, ()):
            entry = keys.entries.get(key)
            if entry is None or entry[2] is not ticket:
                continue
            if ticket.error is None:
                keys.entries[key] = (entry[0], entry[1], None)
            else:
                self._forget(keys, key)
