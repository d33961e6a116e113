"""Leases: the in-flight messages of HTTP consumers, who pull instead of subscribing.

A pull takes waiting messages from a queue and leases each for a while under a random
receipt handle. The holder acks (the message is gone) or nacks (it goes back, marked
redelivered) by handle; a lease that runs out returns its message the same way. Only the
holder's own handles are accepted, so one user cannot settle another's messages.

Deadlines sit in a heap; a settled lease leaves a stale heap entry that :meth:`expire`
skips, so settling is O(1) and expiry O(log n) per lease.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from buzon.broker.message import Message, Outcome
from buzon.broker.queue import Queue
from buzon.errors import BrokerError, ErrorCode

RECEIPT_BYTES = 16


@dataclass(frozen=True, slots=True)
class Lease:
    """One pulled message and who holds it until when.

    Attributes:
        receipt: the handle to ack or nack it with.
        queue: where it came from.
        message: the message.
        redelivered: it was delivered before and came back.
        holder: the user id that pulled it.
        deadline: when it returns to the queue unless settled (the engine's clock).
    """

    receipt: str
    queue: Queue
    message: Message
    redelivered: bool
    holder: str
    deadline: float


class Leases:
    """Every open lease of one broker.

    Args:
        max_leases: leases open at once over all queues; a pull past it is refused, so
            pullers that never settle cannot pin the broker's memory.
    """

    def __init__(self, max_leases: int = 100_000) -> None:
        # what every receipt starts with: in a cluster, the run id of the node that holds
        # the lease and a dot (another node forwards a settlement there)
        self.prefix = ""
        self._max_leases = max_leases
        self._leases: dict[str, Lease] = {}
        self._deadlines: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._leases)

    def take(
        self, queue: Queue, holder: str, limit: int, lease_seconds: float, now: float
    ) -> list[Lease]:
        """Lease up to ``limit`` waiting messages of ``queue`` to ``holder``.

        Raises:
            BrokerError: ``LIMIT_EXCEEDED`` when too many leases are open.
        """
        room = self._max_leases - len(self._leases)
        if room <= 0:
            raise BrokerError(ErrorCode.LIMIT_EXCEEDED, f"at most {self._max_leases} leases")
        deadline = now + lease_seconds
        leases = []
        for message, redelivered in queue.take(min(limit, room)):
            receipt = self.prefix + secrets.token_urlsafe(RECEIPT_BYTES)
            lease = Lease(receipt, queue, message, redelivered, holder, deadline)
            self._leases[receipt] = lease
            heapq.heappush(self._deadlines, (deadline, receipt))
            leases.append(lease)
        return leases

    def settle(
        self,
        queue: Queue,
        holder: str,
        receipts: Sequence[str],
        outcome: Outcome,
    ) -> None:
        """Settle leased messages as ``outcome`` says (see :meth:`Queue.conclude`); all of
        them or none.

        Raises:
            BrokerError: ``UNKNOWN_RECEIPT`` naming the first handle that is not an open
                lease of ``holder`` on ``queue`` (unknown, settled, expired, or another's).
        """
        leases = self._leases
        for receipt in receipts:
            lease = leases.get(receipt)
            if lease is None or lease.holder != holder or lease.queue is not queue:
                raise BrokerError(ErrorCode.UNKNOWN_RECEIPT, f"receipt {receipt[:40]!r}")
        if len(set(receipts)) != len(receipts):
            raise BrokerError(ErrorCode.BAD_REQUEST, "a receipt is listed twice")
        messages = [leases.pop(receipt).message for receipt in receipts]
        queue.conclude(messages, outcome)

    def expire(self, now: float) -> int:
        """Return every message whose lease ran out to its queue; return how many."""
        deadlines = self._deadlines
        expired = 0
        while deadlines and deadlines[0][0] <= now:
            _, receipt = heapq.heappop(deadlines)
            lease = self._leases.pop(receipt, None)
            if lease is not None:  # else settled already
                lease.queue.lease_ran_out(lease.message)
                expired += 1
        return expired

    def release(self, holder: str) -> int:
        """Return every message ``holder`` holds to its queue (the user was disabled or
        deleted); return how many."""
        return self._give_back(lambda lease: lease.holder == holder)

    def release_all(self) -> int:
        """Return every leased message to its queue, marked redelivered (at a stop);
        return how many."""
        return self._give_back(lambda lease: True)

    def release_from(self, queue: Queue, keep: str) -> int:
        """Return the messages of ``queue`` leased by anyone but ``keep`` (its owner) to
        it: their right came from an access key that changed; return how many."""
        return self._give_back(lambda lease: lease.queue is queue and lease.holder != keep)

    def _give_back(self, chosen: Callable[[Lease], bool]) -> int:
        """Return the leased messages ``chosen`` picks to their queues; return how many."""
        picked = [lease for lease in self._leases.values() if chosen(lease)]
        for lease in picked:
            del self._leases[lease.receipt]
            lease.queue.return_taken([lease.message])
        return len(picked)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do, or None."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._leases:
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else None
