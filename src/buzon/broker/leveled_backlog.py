"""LeveledBacklog: a queue's backlog once its messages have more than one priority.

A queue starts with one backlog (memory or paged) for the default priority, and keeps it
as long as nobody asks for another: a queue without priorities pays nothing for them. The
first message of another priority turns the queue's backlog into a leveled one: the old
backlog becomes the level of the default priority, and each priority actually used gets a
level of its own, of the same kind, made when its first message comes.

Every level is a complete backlog for the subsequence of the queue's messages of its
priority: it keeps them in publish order, takes back returned ones in their place, and a
paged level pages its own subsequence (its store reads are filtered by priority), so every
invariant of ``paged_backlog`` holds per level. A message belongs to the level of its
``priority`` for good, so settling, counting deliveries and redelivered marks go straight
to that level.

Handing out takes from the highest level with waiting messages. When that level's next
messages are still in the store (a read is in flight), the hand-out *waits* for them
rather than give out a lower level's resident message: every delivery is the oldest
message of the highest priority waiting. The wait is one read of the store (a few ms),
and the read completes by itself (``backlog_ready``). :attr:`resident` counts what can be
handed out now, so the dispatcher and pullers wait in the same way.

Expiry. Each level reports to a set of its own (``_SweepFlag``); adding to it also puts the
queue in the broker's sweep set, and :meth:`LeveledBacklog.expire` sweeps the levels that
asked and leaves the broker's set when none still needs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from buzon.broker.backlog import BacklogHost, MemoryBacklog
from buzon.broker.message import Message
from buzon.broker.paged_backlog import PagedBacklog
from buzon.priority import DEFAULT_PRIORITY
from buzon.store import MessageKey, StoredBacklog


class _SweepFlag(set[BacklogHost]):
    """One level's membership of the expiry sweep: joining it also enrolls the queue in
    the broker's sweep set (levels join from store callbacks too)."""

    __slots__ = ("_sweep",)

    def __init__(self, sweep: set[BacklogHost]) -> None:
        super().__init__()
        self._sweep = sweep

    def add(self, host: BacklogHost) -> None:
        super().add(host)
        self._sweep.add(host)


class LeveledBacklog:
    """The backlog of a queue with messages of several priorities: one backlog per level.

    Args:
        host: the queue it serves.
        base: the queue's backlog so far, which becomes the level of the default priority.
    """

    __slots__ = ("_base", "_flags", "_host", "_levels", "_order", "_sweep")

    def __init__(self, host: BacklogHost, base: MemoryBacklog) -> None:
        self._host = host
        self._base = base
        self._levels: dict[int, MemoryBacklog] = {}
        self._flags: dict[int, _SweepFlag] = {}
        self._order: list[MemoryBacklog] = []  # highest priority first
        self._sweep = base.sweep
        flag = _SweepFlag(self._sweep)
        base.join_sweep(flag)
        self._adopt(DEFAULT_PRIORITY, base, flag)

    def _adopt(self, priority: int, level: MemoryBacklog, flag: _SweepFlag) -> None:
        self._levels[priority] = level
        self._flags[priority] = flag
        self._order = [self._levels[p] for p in sorted(self._levels, reverse=True)]

    def _level(self, priority: int) -> MemoryBacklog:
        """The level of ``priority`` (made, empty, if there was none)."""
        level = self._levels.get(priority)
        if level is None:
            flag = _SweepFlag(self._sweep)
            level = self._base.sibling(priority, flag)
            self._adopt(priority, level, flag)
        return level

    # -- what the queue reads ------------------------------------------------------------

    @property
    def paged(self) -> bool:
        """Whether its levels keep their tails in the store."""
        return isinstance(self._base, PagedBacklog)

    @property
    def queue_id(self) -> str:
        return self._base.queue_id

    @queue_id.setter
    def queue_id(self, value: str) -> None:
        for level in self._order:
            level.queue_id = value

    @property
    def resident(self) -> int:
        """Waiting messages that can be handed out now: those of the levels above the first
        one whose next messages are still in the store."""
        total = 0
        for level in self._order:
            resident = level.resident
            if not resident and level.has_tail:
                break
            total += resident
        return total

    @property
    def depth(self) -> int:
        return sum(level.depth for level in self._order)

    @property
    def journaling(self) -> bool:
        return self._base.journaling

    @property
    def waiting_bytes(self) -> int:
        return sum(level.waiting_bytes for level in self._order)

    def waiting_below(self, priority: int) -> bool:
        """Whether messages of a lower priority than ``priority`` wait."""
        return any(level.depth for p, level in self._levels.items() if p < priority)

    def is_redelivered(self, message: Message) -> bool:
        return self._levels[message.priority].is_redelivered(message)

    def deliveries(self, message: Message) -> int:
        return self._levels[message.priority].deliveries(message)

    # -- arriving ------------------------------------------------------------------------

    def add(self, message: Message, *, logged: bool) -> None:
        self._level(message.priority).add(message, logged=logged)
        # Its arrival may have unblocked the reads of other levels (they stay below
        # messages still being written, of any priority).
        for level in self._order:
            if level.has_tail:
                level.resume()

    def restore_head(self, found: StoredBacklog, cleanly: bool) -> None:
        self._level(found.priority).restore_head(found, cleanly)

    def resume(self) -> None:
        for level in self._order:
            level.resume()

    # -- handing out and settling --------------------------------------------------------

    def pop(self) -> Message | None:
        """The oldest resident message of the highest level with waiting messages; None if
        there is none, or if that level's next messages are still being read."""
        for level in self._order:
            if level.resident or level.has_tail:
                return level.pop()
        return None

    def pop_least(self) -> Message | None:
        """The oldest resident message of the lowest level with waiting messages (what a
        queue over its bounds drops first); None if there is none, or if that level's next
        messages are still being read."""
        for level in reversed(self._order):
            if level.resident or level.has_tail:
                return level.pop_least()
        return None

    def count_delivery(self, message: Message) -> None:
        self._levels[message.priority].count_delivery(message)

    def forget(self, message: Message) -> None:
        self._levels[message.priority].forget(message)

    def drop(self, message: Message) -> None:
        self._levels[message.priority].drop(message)

    def give_back(
        self, messages: Sequence[Message], *, redelivered: bool = True, fresh: bool = False
    ) -> None:
        by_level: dict[int, list[Message]] = {}
        for message in messages:
            by_level.setdefault(message.priority, []).append(message)
        for priority, returned in by_level.items():
            self._level(priority).give_back(returned, redelivered=redelivered, fresh=fresh)

    # -- scheduled retries (see ``schedule``) ---------------------------------------------

    def set_aside(self, message: Message) -> None:
        self._levels[message.priority].set_aside(message)

    def discard(self, message: Message) -> None:
        # without a level of its priority it was never handed out here: no marks, only a
        # store record, which any level removes
        self._levels.get(message.priority, self._base).discard(message)

    def reschedule(self, keys: Sequence[tuple[MessageKey, float]]) -> None:
        """One write for all levels: a record's ``deliver_at`` does not depend on its
        level."""
        self._base.reschedule(keys)

    # -- looking and maintenance ---------------------------------------------------------

    def waiting(self) -> Iterator[Message]:
        """The resident waiting messages, in hand-out order (highest priority first)."""
        for level in self._order:
            yield from level.waiting()

    def purge(self) -> tuple[int, int]:
        dropped = size = 0
        for level in self._order:
            count, body = level.purge()
            dropped += count
            size += body
        return dropped, size

    def expire(self, now: float) -> list[Message]:
        due: list[Message] = []
        host = self._host
        # a copy: a level's expiry may refill, and a delivery made then may add a level
        for priority, level in list(self._levels.items()):
            flag = self._flags[priority]
            if host in flag:
                due.extend(level.expire(now))
        if not any(self._flags.values()):
            self._sweep.discard(host)
        return due

    def redelivered_keys(self) -> list[MessageKey]:
        return [key for level in self._order for key in level.redelivered_keys()]

    def delete(self) -> None:
        for level in self._order:
            level.delete()
        self._sweep.discard(self._host)
