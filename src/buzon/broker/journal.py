"""The engine's writes to the message log, without waiting for them.

The engine is synchronous; the log (the store) is not. Every write returns a
:class:`~buzon.store.Ticket`, and :attr:`Journal.last` is the ticket of the latest write.
Tickets resolve in the order writes were submitted, so once ``last`` is done, every write
submitted before it is done too: that is what a front end waits for before it confirms
anything (a RECEIPT, an HTTP 201).

A removal that fails (a full disk) leaves a settled message on disk; it would come back at
the next start. Such removals are kept and tried again at shutdown
(:meth:`Journal.retry_removals`); if that fails too, so does the clean-shutdown mark, and
the next start treats every message as possibly delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from buzon.broker.message import Message
from buzon.store import DONE, IdempotencyKey, MessageKey, MessageLog, StoredMessage, Ticket


def stored(
    queue_id: str,
    message: Message,
    redelivered: bool = False,
    *,
    claimed: bool = False,
    deliver_at: float | None = None,
) -> StoredMessage:
    """The log record of ``message`` in the queue ``queue_id`` (``claimed``: by this node,
    in a cluster; ``deliver_at``: scheduled for then)."""
    return StoredMessage(
        queue_id,
        message.seq,
        message.id,
        message.destination,
        message.headers,
        message.body,
        message.expires_at,
        redelivered,
        message.persistent,
        claimed,
        deliver_at=deliver_at,
        priority=message.priority,
    )


class Journal:
    """Submits message writes to a log (or to nothing, for an engine without one).

    Args:
        log: the store's message log; None keeps nothing (every ticket is done at once).
    """

    __slots__ = ("_log", "_removing", "_removing_ticket", "failed_removals", "last", "writes")

    def __init__(self, log: MessageLog | None) -> None:
        self._log = log
        self.last: Ticket = DONE
        # Writes submitted so far. To know whether a command wrote, compare this number, not
        # ``last``: writes of one event-loop turn share one ticket.
        self.writes = 0
        # removals that share the pending ticket, and removals that failed
        self._removing_ticket: Ticket = DONE
        self._removing: list[MessageKey] = []
        self.failed_removals: list[MessageKey] = []

    @property
    def enabled(self) -> bool:
        """Whether writes go anywhere (False: every write is done at once, and skipped)."""
        return self._log is not None

    def append(
        self,
        queue_id: str,
        message: Message,
        *,
        claimed: bool = False,
        deliver_at: float | None = None,
        key: IdempotencyKey | None = None,
    ) -> Ticket:
        """Log a new message of a queue (scheduled for ``deliver_at``, if given), with its
        idempotency key if it has one; the ticket says when both are durable."""
        if self._log is None:
            return DONE
        record = stored(queue_id, message, claimed=claimed, deliver_at=deliver_at)
        keys = () if key is None else (key,)
        return self.write(appends=[record], keys=keys)

    def depend(self, ticket: Ticket) -> None:
        """The current command relies on a write submitted earlier (a duplicate publish on
        its original's): count it as a write of this command, so that a front end waits
        for :attr:`last` before confirming; ``last`` becomes a ticket that resolves with
        the latest write, failed if ``ticket`` failed (a later write may succeed where an
        earlier one failed, and the command must not be confirmed then)."""
        if ticket.done:
            return
        latest = self.last
        joined = Ticket()

        def settle(_: Ticket) -> None:
            if ticket.done and latest.done:
                joined.resolve(ticket.error or latest.error)

        ticket.add_callback(settle)
        if latest is not ticket:
            latest.add_callback(settle)
        self.last = joined
        self.writes += 1

    def remove(self, queue_id: str, seq: int) -> None:
        """Forget a settled message (kept for a retry if the write fails)."""
        if self._log is None:
            return
        key = (queue_id, seq)
        ticket = self.write(removals=[key])
        if ticket.done:
            return
        if ticket is not self._removing_ticket:
            self._removing_ticket = ticket
            self._removing = []
            ticket.add_callback(partial(self._removed, self._removing))
        self._removing.append(key)

    def _removed(self, keys: list[MessageKey], ticket: Ticket) -> None:
        if ticket.error is not None:
            self.failed_removals.extend(keys)

    def retry_removals(self) -> Ticket:
        """Submit again the removals that failed; return the ticket (DONE if none)."""
        keys, self.failed_removals = self.failed_removals, []
        return self.write(removals=keys) if keys else DONE

    def write(
        self,
        appends: Sequence[StoredMessage] = (),
        removals: Sequence[MessageKey] = (),
        redelivered: Sequence[MessageKey] = (),
        schedules: Sequence[tuple[MessageKey, float]] = (),
        keys: Sequence[IdempotencyKey] = (),
    ) -> Ticket:
        """Submit writes together (one transaction); return their ticket."""
        if self._log is None:
            return DONE
        ticket = self._log.submit(appends, removals, redelivered, schedules, keys)
        self.last = ticket
        self.writes += 1
        return ticket
