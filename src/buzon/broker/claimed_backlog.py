"""ClaimedBacklog: a queue shared by the nodes of a cluster, on PostgreSQL.

Every node has every queue, and every node's consumers compete for its messages. The
messages live in the store; a node holds in memory only those it *claimed* for its own
consumers. A stored message is unclaimed (any node may take it) or claimed by exactly one
node run, so it goes to one consumer at a time across the cluster.

Arriving. A message published on this node is written claimed when this node's consumers
can take it now and no older unclaimed message is known (the usual case with consumers
keeping up: no second round trip); otherwise it is written unclaimed, and whichever node
has the demand claims it. The choice is made when the message is admitted, before its
write (:meth:`ClaimedBacklog.reserve`). A transient message that a local consumer takes at
once is never written at all; one that must wait is spilled, unclaimed, like the others.

Claiming. When this node's demand (the free credit of its consumers, and its HTTP pullers)
exceeds what it holds, it claims unclaimed messages, highest priority first and oldest
first within a priority, as many as the demand, in one statement (``FOR UPDATE SKIP
LOCKED``: nodes never wait for each other); what one claim brings is handed out in that
order. It knows there
may be some because it wrote them, because another node said so (a NOTIFY per commit
batch, :meth:`ClaimedBacklog.available`), or because the periodic count found some
(:meth:`ClaimedBacklog.refresh`). A claim that comes back short clears that belief, unless
news arrived while it ran. One claim (or expiry) is in flight at a time; purge and delete
bump ``_epoch`` so older results are ignored.

Letting go. Messages a node holds but cannot deliver (its last consumer left) are released:
unclaimed again, marked redelivered if they were handed out. A node that dies keeps its
claims until the others see its heartbeat stop; they release them then (see
``server/cluster``).

Depth is what this node holds plus the last count of unclaimed messages (refreshed every
second or so, and adjusted by what this node writes and claims): an estimate across the
cluster, exact on one node at rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial

from buzon.broker.backlog import BacklogHost, MemoryBacklog, from_store
from buzon.broker.flow import QueuedBytes
from buzon.broker.journal import Journal, stored
from buzon.broker.message import Message
from buzon.store import ClaimLog, Page, StoredMessage, Ticket

log = logging.getLogger("buzon.broker")

ADOPT_STEP = 1_000
"""Most scheduled messages one adoption claims (the next takes the rest)."""
EXPIRE_STEP = 2_000
"""Most expired unclaimed messages one sweep deletes (the next sweep takes the rest)."""


class ClaimedBacklog(MemoryBacklog):
    """The part of a shared queue this node holds, and its view of the rest.

    Args:
        host, queue_id, gauge, journal, expiring: as :class:`MemoryBacklog`.
        claims: the store.
        window: most messages one claim takes.
        window_bytes: most body bytes one claim takes (past the first message).
        demand: how many more messages this node's consumers could take now.
        idle: whether this node has no consumer of the queue at all (what arrives then is
            released at once, for the other nodes' consumers).
    """

    __slots__ = (
        "_adopting",
        "_claims",
        "_demand",
        "_epoch",
        "_hints",
        "_idle",
        "_local_only",
        "_maybe",
        "_op",
        "_pending_unclaimed",
        "_remote",
        "_remote_bytes",
        "_remote_expiry",
        "_reserved",
        "_retry",
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
        claims: ClaimLog,
        window: int,
        window_bytes: int,
        demand: Callable[[], int],
        idle: Callable[[], bool],
    ) -> None:
        super().__init__(host, queue_id, gauge, journal, expiring)
        self._claims = claims
        self._idle = idle
        self._window = window
        self._window_bytes = window_bytes
        self._demand = demand
        self._maybe = True  # unclaimed messages may be stored (at start: look)
        self._hints = 0  # news of unclaimed messages so far
        self._remote = 0  # unclaimed messages stored, as last counted and adjusted
        self._remote_bytes = 0
        self._remote_expiry = math.inf
        self._reserved: set[int] = set()  # admitted to be written claimed by this node
        # admitted to be written unclaimed and not arrived yet: nothing newer may be
        # reserved meanwhile, or it would overtake them
        self._pending_unclaimed = 0
        self._local_only: set[int] = set()  # transient, held here, never written
        self._op: Ticket | None = None
        self._epoch = 0
        self._retry = False
        self._adopting = False

    @property
    def depth(self) -> int:
        return self.resident + self._remote

    @property
    def waiting_bytes(self) -> int:
        return self.resident_bytes + self._remote_bytes

    # -- arriving ------------------------------------------------------------------------

    def reserve(self, seq: int) -> bool:
        """A message is admitted: whether it should be written claimed by this node (its
        consumers can take it now and nothing older is known to wait unclaimed)."""
        if (
            self._maybe
            or self._pending_unclaimed
            or self.deleted
            or self._demand() <= self.resident + len(self._reserved)
        ):
            self._pending_unclaimed += 1
            return False
        self._reserved.add(seq)
        return True

    def unreserve(self, seq: int) -> None:
        """An admitted message will not arrive after all (its write failed)."""
        if seq in self._reserved:
            self._reserved.discard(seq)
        elif self._pending_unclaimed:
            self._pending_unclaimed -= 1

    def add(self, message: Message, *, logged: bool) -> None:
        seq = message.seq
        if seq in self._reserved:
            self._reserved.discard(seq)
            if not logged:
                self._local_only.add(seq)  # a transient one was never written
            self._enqueue(message)
            if self._idle():
                self.shed()  # its consumer left while it was being written
            return
        if self._pending_unclaimed:
            self._pending_unclaimed -= 1
        if not logged:
            if not self._maybe and not self._pending_unclaimed and self._demand() > self.resident:
                self._local_only.add(seq)
                self._enqueue(message)
                return
            ticket = self._claims.spill([stored(self.queue_id, message)])
            ticket.add_callback(partial(self._written, self._epoch))
        self._note_unclaimed(1, len(message.body), message.expires_at)
        self.available()

    def available(self) -> None:
        """Unclaimed messages may be stored (written here, or news from another node)."""
        self._maybe = True
        self._hints += 1
        self._claim()

    def refresh(self, count: int, size: int, first_expiry: float | None) -> None:
        """The periodic count of this queue's unclaimed messages (0 when none)."""
        self._remote = count
        self._remote_bytes = size
        self._remote_expiry = math.inf if first_expiry is None else first_expiry
        if first_expiry is not None:
            self._queues_expiring.add(self._host)
        if count:
            self.available()

    def adopt_scheduled(self, take: Callable[[list[StoredMessage]], None]) -> None:
        """Claim scheduled messages no node holds (see ``ClaimLog.claim_scheduled``), a
        batch at a time until none is left, and hand each batch to ``take`` (which holds
        them until their time); one adoption at a time."""
        if self._adopting or self.deleted:
            return
        self._adopting = True
        ticket = self._claims.claim_scheduled(self.queue_id, ADOPT_STEP)
        ticket.add_callback(partial(self._adopted, self._epoch, take))

    def _adopted(
        self, epoch: int, take: Callable[[list[StoredMessage]], None], ticket: Ticket
    ) -> None:
        self._adopting = False
        if ticket.error is not None:
            log.warning("adopting scheduled messages of %s failed: %s", self.queue_id, ticket.error)
            return  # the next count finds them again
        page: Page = ticket.result
        if epoch != self._epoch:
            self._drop_late(page)  # purged or deleted meanwhile
            return
        for item in page.messages:
            if item.deliveries:
                self._deliveries[item.seq] = item.deliveries  # counted by other nodes
        if page.messages:
            take(page.messages)
        if not page.exhausted:
            self.adopt_scheduled(take)

    def trim(self, keep: int) -> None:
        """Drop the oldest unclaimed messages so that at most ``keep`` messages of this
        queue are stored (one trim in the cluster at a time); they are retired as
        ``max-length``."""
        if self._op is not None or self.deleted:
            return
        ticket = self._claims.trim_unclaimed(self.queue_id, keep)
        self._op = ticket
        ticket.add_callback(partial(self._trimmed, self._epoch))

    def resume(self) -> None:
        """Demand may have grown (a consumer subscribed, acked, or a write failed)."""
        self._claim()

    # -- handing out ---------------------------------------------------------------------

    def pop(self) -> Message | None:
        message = super().pop()
        if message is not None and self._maybe and self._op is None:
            self._claim(handed=1)  # the popped one is on its way to a consumer's window
        return message

    def _unlog(self, message: Message) -> None:
        """Every message claimed here has a stored row (transient ones too), but those
        handed straight to a consumer here, never written."""
        seq = message.seq
        if self._local_only and seq in self._local_only:
            self._local_only.discard(seq)
        elif not self.deleted:
            self._journal.remove(self.queue_id, seq)

    def shed(self) -> None:
        """No consumer here any more: release what this node holds to the other nodes
        (those handed out before are marked redelivered)."""
        if not self.resident or self.deleted:
            return
        keys: list[tuple[str, int, bool, int]] = []
        kept: list[Message] = []
        while self.resident:
            message = self.pop()
            if message is None:
                break
            self._gauge.remove(len(message.body))
            if message.seq in self._local_only:
                kept.append(message)  # never written: it has nowhere else to wait
                continue
            seq = message.seq
            keys.append(
                (self.queue_id, seq, seq in self._redelivered, self._deliveries.pop(seq, 0))
            )
            self._redelivered.discard(seq)
            self._note_unclaimed(1, len(message.body), message.expires_at)
        for message in kept:
            self._enqueue(message)
        if keys:
            self._claims.release(keys)
            self.available()  # they wait unclaimed now: a consumer here may claim them

    # -- maintenance ---------------------------------------------------------------------

    def purge(self) -> tuple[int, int]:
        dropped, size = super().purge()
        self._claims.purge_unclaimed(self.queue_id)
        dropped += self._remote
        size += self._remote_bytes
        self._forget_remote()
        return dropped, size

    def expire(self, now: float) -> list[Message]:
        due = super().expire(now)
        retry, self._retry = self._retry, False
        if retry or due:
            self._claim()
        if self._remote_expiry <= now and self._op is None:
            self._remote_expiry = math.inf  # what the store finds sets it again
            ticket = self._claims.expire_unclaimed(self.queue_id, now, EXPIRE_STEP)
            self._op = ticket
            ticket.add_callback(partial(self._expired, self._epoch))
        if self._remote_expiry < math.inf or self._retry:
            self._queues_expiring.add(self._host)
        return due

    def delete(self) -> None:
        super().delete()
        self._forget_remote()

    # -- internals -----------------------------------------------------------------------

    def _note_unclaimed(self, count: int, size: int, expires_at: float | None) -> None:
        self._remote += count
        self._remote_bytes += size
        if expires_at is not None and expires_at < self._remote_expiry:
            self._remote_expiry = expires_at
            self._queues_expiring.add(self._host)

    def _forget_remote(self) -> None:
        self._epoch += 1
        self._op = None
        self._remote = 0
        self._remote_bytes = 0
        self._remote_expiry = math.inf

    def _claim(self, handed: int = 0) -> None:
        """Claim as many as this node's consumers can take, if any may be waiting
        (``handed``: popped messages their consumers do not count yet)."""
        if self._op is not None or self.deleted or not self._maybe:
            return
        want = min(self._demand() - self.resident - handed, self._window)
        if want <= 0:
            return
        room = max(self._window_bytes - self.resident_bytes, 1)
        ticket = self._claims.claim(self.queue_id, want, room)
        self._op = ticket
        ticket.add_callback(partial(self._claimed, self._epoch, self._hints))

    def _claimed(self, epoch: int, hints: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            if ticket.error is None:
                self._drop_late(ticket.result)
            return
        self._op = None
        if ticket.error is not None:
            log.warning("claiming messages of %s failed: %s", self.queue_id, ticket.error)
            self._fail()
            return
        page: Page = ticket.result
        size = 0
        for item in page.messages:
            self.restore(from_store(item), item.redelivered)
            if item.deliveries:
                self._deliveries[item.seq] = item.deliveries  # counted by other nodes
            size += len(item.body)
        self._remote = max(0, self._remote - len(page.messages))
        self._remote_bytes = max(0, self._remote_bytes - size)
        if page.exhausted and hints == self._hints:
            self._maybe = False  # nothing unclaimed, and no news since the claim began
            self._remote = 0
            self._remote_bytes = 0
        if page.messages:
            idle = self._idle()  # before the wake-up: a puller woken now takes them later
            self._host.backlog_ready()
            if idle:
                self.shed()  # the consumers it was claimed for left meanwhile
        self._claim()

    def _drop_late(self, page: Page) -> None:
        """A claim that completed after a purge: its messages were waiting when the purge
        was asked for, so they go too (a deleted queue's rows are gone already)."""
        if page.messages and not self.deleted:
            self._journal.write(removals=[(self.queue_id, m.seq) for m in page.messages])

    def _expired(self, epoch: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        self._op = None
        if ticket.error is not None:
            log.warning("expiring messages of %s failed: %s", self.queue_id, ticket.error)
            self._fail()
            return
        items, first = ticket.result
        self._remote = max(0, self._remote - len(items))
        self._remote_bytes = max(0, self._remote_bytes - sum(len(m.body) for m in items))
        if first is not None and first < self._remote_expiry:
            self._remote_expiry = first
            self._queues_expiring.add(self._host)
        if items:
            self._host.backlog_expired([from_store(item) for item in items])
        self._claim()

    def _trimmed(self, epoch: int, ticket: Ticket) -> None:
        if epoch != self._epoch:
            return
        self._op = None
        if ticket.error is not None:
            log.warning("trimming %s failed: %s", self.queue_id, ticket.error)
            return  # the next count tries again
        items: list[StoredMessage] = ticket.result
        self._remote = max(0, self._remote - len(items))
        self._remote_bytes = max(0, self._remote_bytes - sum(len(m.body) for m in items))
        if items:
            self._host.backlog_dropped([from_store(item) for item in items])
        self._claim()

    def _written(self, epoch: int, ticket: Ticket) -> None:
        """A spilled message's write completed: lost if it failed (it was transient)."""
        if ticket.error is not None and epoch == self._epoch:
            self._fail()

    def _fail(self) -> None:
        """An operation failed (the store is unavailable): the next sweep tries again."""
        self._retry = True
        self._queues_expiring.add(self._host)
