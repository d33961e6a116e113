"""RECEIPTs that mean "durable": each waits for the connection's writes, in order.

A RECEIPT tells the client that the broker handled the frame and everything before it. With
persistent messages that includes "it is on disk": a receipt waits for the connection's
latest journal write (tickets resolve in submission order, so the latest covers every
earlier one). Receipts leave in the order their frames arrived. If one of the
connection's writes fails, its pending receipts are never sent: the connection gets
ERROR ``storage unavailable`` instead, so a confirmed publish or ACK is always on disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from buzon.errors import BuzonError
from buzon.store import DONE, Ticket


class ReceiptGate:
    """The receipts of one connection.

    Args:
        owner: the connection's id (names the gate in logs).
        send: queue a RECEIPT with that id.
        flush: write what was queued.
        fail: end the connection with an error (a write failed).
    """

    __slots__ = ("_fail", "_flush", "_last", "_send", "_waiting", "owner")

    def __init__(
        self,
        owner: str,
        send: Callable[[str], None],
        flush: Callable[[], None],
        fail: Callable[[BuzonError], None],
    ) -> None:
        self.owner = owner
        self._send = send
        self._flush = flush
        self._fail = fail
        self._last: Ticket = DONE
        # receipts waiting for a write, oldest first; created when the first one waits
        self._waiting: deque[tuple[str, Ticket]] | None = None

    def __repr__(self) -> str:
        return f"ReceiptGate({self.owner})"

    @property
    def pending(self) -> bool:
        """Whether a receipt still waits for a write."""
        return bool(self._waiting)

    def wrote(self, ticket: Ticket) -> None:
        """The connection's latest frame caused writes; ``ticket`` is the latest of them."""
        if ticket is self._last:
            return  # one ticket covers the writes of a whole event-loop turn
        self._last = ticket
        ticket.add_callback(self._written)

    def confirm(self, receipt: str) -> None:
        """Send RECEIPT ``receipt`` once every write of the connection so far is durable."""
        if not self._waiting and self._last.done:
            if self._last.error is None:
                self._send(receipt)
            return
        if self._waiting is None:
            self._waiting = deque()
        self._waiting.append((receipt, self._last))

    def _written(self, ticket: Ticket) -> None:
        if ticket.error is not None:
            self._waiting = None
            self._fail(ticket.error)
            return
        waiting = self._waiting
        sent = False
        while waiting and waiting[0][1].done:
            receipt, _ = waiting.popleft()
            self._send(receipt)
            sent = True
        if sent:
            self._flush()
