"""PagedBacklog: a queue's head in memory, bounded; the rest (its tail) only in the store.

A durable queue that backs up keeps its waiting messages on disk anyway; holding them in
memory too is what made a large backlog cost its size in RAM. Here memory holds a *window*
of the oldest waiting messages, bounded by count and bytes. A message that arrives while the
window is full, or while a tail exists (order: the tail is older), goes to the tail: the
store already has a persistent one; a transient one is *spilled* there (and forgotten at
the next start, as transient messages are). As the window drains below half, the oldest
part of the tail is read back with a ranged read, in seq order, and handed out.

Which stored messages are the tail. The tail is the range of seqs ``cursor < seq <= upto``
in the store. Messages in the window all have ``seq <= cursor``: a message that arrives
with ``seq <= cursor`` always goes to the window (a persistent message that was still being
written when a later transient one arrived), and every message that goes to the window
while there is no tail moves the cursor up to it. A read never reaches a message admitted
but not yet arrived (its write is in flight): ``upto`` stays below the first such seq
(``incoming``, kept by the queue in admission order, which is seq order). So a message
can be neither read twice nor read before it arrives.

One store operation at a time (a read or an expiry); a purge or deletion bumps ``_epoch``,
and results of an older epoch are ignored. At start only each queue's head is read; the
rest is counted in steps in the background (reads stay below what was counted), so a
broker with millions of waiting messages accepts connections at once.

Expiry costs what can expire: the window has its heap (see ``backlog``); for the tail, the
earliest ``expires_at`` it may hold is kept, and when that time has come the sweep asks the
store to delete what is due through an index.

Priorities. A paged backlog holds the messages of one priority (``priority``, 4 unless the
queue's messages have several: then ``leveled_backlog`` keeps one paged backlog per
priority). Every store call it makes names that priority, so its tail is the range above,
narrowed to the rows of its priority, and everything said here holds per priority.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial

from buzon.broker.backlog import BacklogHost, MemoryBacklog, from_store
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal, stored
from buzon.broker.message import Message
from buzon.priority import DEFAULT_PRIORITY
from buzon.store import Page, PagedLog, StoredBacklog, TailCount, Ticket

log = logging.getLogger("buzon.broker")

PAGE_MESSAGES = 2_000
"""Most messages one read brings back: a few milliseconds of work on either side."""
EXPIRE_STEP = 2_000
"""Most expired tail messages one sweep deletes (the next sweep takes the rest)."""
COUNT_STEP = 200_000
"""Stored messages counted per step at start (about 50 ms of the database thread)."""


@dataclass(frozen=True, slots=True)
class Paging:
    """How durable queues page: the store that holds their tails, and the window bounds.

    Attributes:
        pager: the store.
        window: most waiting messages a queue holds in memory.
        window_bytes: most body bytes of those (one message always fits, however large).
        shared: the store is shared by the nodes of a cluster (a ``ClaimLog``): every
            queue's messages live there, and each node claims what its consumers take
            (see ``claimed_backlog``).
    """

    pager: PagedLog
    window: int
    window_bytes: int
    shared: bool = False


class PagedBacklog(MemoryBacklog):
    """A backlog whose tail stays in the store.

    Args:
        host, queue_id, gauge, journal, expiring: as :class:`MemoryBacklog`.
        paging: the store and the window bounds.
        incoming: the queue's admitted messages that have not arrived yet (their seqs, in
            admission order); reads stay below them.
        priority: the priority of its messages; it reads only those from the store (a
            queue with several priorities has one paged backlog per priority).
    """

    __slots__ = (
        "_counted_upto",
        "_counting",
        "_cursor",
        "_epoch",
        "_incoming",
        "_low",
        "_op",
        "_pager",
        "_priority",
        "_recovered_high",
        "_retry",
        "_tail",
        "_tail_bytes",
        "_tail_expiry",
        "_tail_high",
        "_unclean",
        "_window",
        "_window_bytes",
    )

    def __init__(
        self,
        host: BacklogHost,
        queue_id: str,
        gauge: QueuedBytes,
        journal: Journal,
        expiring: set[BacklogHost],
        *,
        paging: Paging,
        incoming: dict[int, None],
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        super().__init__(host, queue_id, gauge, journal, expiring)
        self._priority = priority
        self._pager = paging.pager
        self._window = paging.window
        self._window_bytes = paging.window_bytes
        self._low = max(1, paging.window // 2)
        self._incoming = incoming
        self._cursor = 0  # every resident message has seq <= cursor; the tail is above
        self._tail = 0  # waiting messages only in the store (may run ahead of counting)
        self._tail_bytes = 0
        self._tail_high = 0  # the highest seq that went to the tail
        self._tail_expiry = math.inf  # no tail message expires before this
        self._op: Ticket | None = None  # the read or expiry in flight
        self._epoch = 0
        self._retry = False  # an operation failed: the next sweep tries again
        self._counting = False  # the tail found at start is still being counted
        self._counted_upto = 0
        self._recovered_high = 0  # the highest seq found at start
        self._unclean = False  # the last run crashed: what it left counts as redelivered

    @property
    def depth(self) -> int:
        return self.resident + self._tail

    @property
    def waiting_bytes(self) -> int:
        return self.resident_bytes + self._tail_bytes

    @property
    def has_tail(self) -> bool:
        """Whether waiting messages are (or may be, while counting) only in the store."""
        return self._tail > 0 or self._counting

    def sibling(self, priority: int, expiring: set[BacklogHost]) -> MemoryBacklog:
        return PagedBacklog(
            self._host,
            self.queue_id,
            self._gauge,
            self._journal,
            expiring,
            paging=Paging(self._pager, self._window, self._window_bytes),
            incoming=self._incoming,
            priority=priority,
        )

    # -- arriving ------------------------------------------------------------------------

    def add(self, message: Message, *, logged: bool) -> None:
        seq = message.seq
        size = len(message.body)
        if (
            not self._tail
            and not self._counting
            and self.resident < self._window
            and self.resident_bytes + size <= self._window_bytes
        ):
            # the usual case when consumers keep up: no tail, room in the window
            self._enqueue(message)
            if seq > self._cursor:
                self._cursor = seq
            return
        if self._belongs_to_tail(seq, size) and (logged or self._spill(message)):
            self._tail += 1
            self._tail_bytes += size
            if seq > self._tail_high:
                self._tail_high = seq
            expires_at = message.expires_at
            if expires_at is not None and expires_at < self._tail_expiry:
                self._tail_expiry = expires_at
                self._queues_expiring.add(self._host)
            self._refill()
            return
        self._enqueue(message)
        if seq > self._cursor and not self.has_tail:
            self._cursor = seq

    def restore_head(self, found: StoredBacklog, cleanly: bool) -> None:
        """The head goes into memory, the rest is counted in the background."""
        super().restore_head(found, cleanly)
        if found.head:
            self._cursor = max(self._cursor, found.head[-1].seq)
        if not found.more:
            self._cursor = max(self._cursor, found.high_seq)
            return
        self._tail_high = self._recovered_high = found.high_seq
        self._unclean = not cleanly
        self._counting = True
        self._counted_upto = self._cursor
        self._count_next()

    def resume(self) -> None:
        """Something that held reads back went away (a write failed): read if due."""
        self._refill()

    # -- handing out ---------------------------------------------------------------------

    def pop(self) -> Message | None:
        if not self._tail and not self._counting:
            return super().pop()  # everything waiting is in memory
        if not self.resident:
            self._refill()  # a store that answers at once fills the window right here
        message = super().pop()
        if self.resident < self._low:
            self._refill()
        return message

    # -- maintenance ---------------------------------------------------------------------

    def purge(self) -> tuple[int, int]:
        dropped, size = super().purge()
        if self.has_tail:
            keep = [seq for seq in self._incoming if self._cursor < seq <= self._tail_high]
            self._pager.purge_tail(
                self.queue_id, self._cursor, self._tail_high, keep, priority=self._priority
            )
            dropped += self._tail
            size += self._tail_bytes
            self._cursor = max(self._cursor, self._tail_high)
            self._forget_tail()
        return dropped, size

    def expire(self, now: float) -> list[Message]:
        due = super().expire(now)
        retry, self._retry = self._retry, False
        if retry and self._counting:
            self._count_next()
        if due or retry:
            self._refill()  # what expired in the window left room for the tail
        if self._tail_expiry <= now and self._tail and self._op is None and not self._counting:
            upto = self._safe_upto()
            if upto > self._cursor:
                if upto >= self._tail_high:
                    self._tail_expiry = math.inf  # what the store finds sets it again
                ticket = self._pager.expire_tail(
                    self.queue_id, self._cursor, upto, now, EXPIRE_STEP, priority=self._priority
                )
                self._op = ticket
                ticket.add_callback(partial(self._expired, self._epoch))
        if self._tail_expiry < math.inf or self._retry:
            self._queues_expiring.add(self._host)
        return due

    def delete(self) -> None:
        super().delete()
        self._forget_tail()

    # -- internals -----------------------------------------------------------------------

    def _forget_tail(self) -> None:
        """No tail any more (purged, deleted): results still on their way are ignored."""
        self._epoch += 1
        self._op = None
        self._tail = 0
        self._tail_bytes = 0
        self._tail_expiry = math.inf
        self._counting = False

    def _belongs_to_tail(self, seq: int, size: int) -> bool:
        """Whether an arriving message goes to the tail: it is newer than everything in
        memory, and older messages are in the tail already or the window is full."""
        return seq > self._cursor and (
            self.has_tail
            or self.resident >= self._window
            or self.resident_bytes + size > self._window_bytes
        )

    def _safe_upto(self) -> int:
        """The highest seq a read may reach now: no further than the tail, than what was
        counted, or than the first message still being written."""
        upto = self._tail_high
        if self._counting and self._counted_upto < upto:
            upto = self._counted_upto
        if self._incoming:
            first = next(iter(self._incoming)) - 1
            if first < upto:
                upto = first
        return upto

    def _refill(self) -> None:
        """Read the oldest part of the tail if the window has room and nothing is in flight."""
        if self._op is not None or self.deleted or not self.has_tail:
            return
        if self.resident >= self._low:
            return
        upto = self._safe_upto()
        if upto <= self._cursor:
            return  # the next tail messages are still being written or counted
        limit = min(self._window - self.resident, PAGE_MESSAGES)
        room = max(self._window_bytes - self.resident_bytes, 1)
        ticket = self._pager.read_page(
            self.queue_id, self._cursor, upto, max(limit, 1), room, priority=self._priority
        )
        self._op = ticket
        ticket.add_callback(partial(self._paged, self._epoch, upto))

    def _paged(self, epoch: int, upto: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        self._op = None
        if ticket.error is not None:
            log.warning("reading the backlog of %s failed: %s", self.queue_id, ticket.error)
            self._fail()
            return
        page: Page = ticket.result
        size = 0
        unclean = self._unclean
        recovered = self._recovered_high
        for item in page.messages:
            self.restore(from_store(item), item.redelivered or (unclean and item.seq <= recovered))
            size += len(item.body)
        self._tail -= len(page.messages)
        self._tail_bytes -= size
        if page.exhausted:
            self._cursor = upto
            if upto >= self._tail_high and not self._counting and self._tail:
                # Everything that went to the tail was read: a count off by spills that
                # failed since is set right here.
                self._tail = 0
                self._tail_bytes = 0
        elif page.messages:
            self._cursor = page.messages[-1].seq
        self._refill()  # the store reads the next page while these are handed out
        if page.messages:
            self._host.backlog_ready()

    def _expired(self, epoch: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        self._op = None
        if ticket.error is not None:
            log.warning("expiring the backlog of %s failed: %s", self.queue_id, ticket.error)
            self._fail()
            return
        items, first = ticket.result
        self._tail -= len(items)
        self._tail_bytes -= sum(len(item.body) for item in items)
        if first is not None and first < self._tail_expiry:
            self._tail_expiry = first
        if items:
            self._host.backlog_expired([from_store(item) for item in items])
        self._refill()

    def _count_next(self) -> None:
        ticket = self._pager.count_tail(
            self.queue_id,
            self._counted_upto,
            self._recovered_high,
            COUNT_STEP,
            priority=self._priority,
        )
        ticket.add_callback(partial(self._counted, self._epoch))

    def _counted(self, epoch: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        if ticket.error is not None:
            log.warning("counting the backlog of %s failed: %s", self.queue_id, ticket.error)
            self._fail()
            return
        count: TailCount = ticket.result
        self._tail += count.messages
        self._tail_bytes += count.bytes
        self._counted_upto = count.last_seq
        if count.first_expiry is not None and count.first_expiry < self._tail_expiry:
            self._tail_expiry = count.first_expiry
            self._queues_expiring.add(self._host)
        if not count.messages or count.last_seq >= self._recovered_high:
            self._counting = False
        else:
            self._count_next()
        self._refill()

    def _fail(self) -> None:
        """An operation failed (the store is unavailable): the next sweep tries again."""
        self._retry = True
        self._queues_expiring.add(self._host)

    def _spill(self, message: Message) -> bool:
        """Write a transient message to the store's spill area; False when storage is full
        (it then stays in memory, over the window, as it would without paging)."""
        if self._gauge.storage_full:
            return False
        ticket = self._pager.spill([stored(self.queue_id, message)])
        if not ticket.done:
            ticket.add_callback(partial(self._spill_done, self._epoch, len(message.body)))
        elif ticket.error is not None:
            return False
        return True

    def _spill_done(self, epoch: int, size: int, ticket: Ticket) -> None:
        if ticket.error is not None and epoch == self._epoch:
            # The spilled message is lost (it was transient); it leaves the count.
            self._tail -= 1
            self._tail_bytes -= size
