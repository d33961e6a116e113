"""One AMQP channel: its engine session, delivery tags, consumers, confirms and transaction.

Each AMQP channel has its own engine session (so closing a channel gives back exactly its
unacknowledged messages, and a channel's prefetch is its session's business); every
session of a connection shares the connection's tag, so the connection's exclusive queues
are theirs.

Delivery tags count every delivery and get of the channel from 1. The engine names an
unsettled delivery by its ack id; ``_unacked`` maps tags to ack ids in delivery order, so
``multiple`` settles every tag up to one with a walk from the oldest. Deliveries of
``no_ack`` consumers take a tag and hold no ack id.

Publisher confirms ride on the connection's journal writes as STOMP receipts do
(``ReceiptGate``): a publish is confirmed once every write of the connection so far is
durable; confirms are sent as one ``multiple`` ack for the latest confirmed tag.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import takewhile

from buzon.amqp import AmqpConnection
from buzon.broker import RELEASE, AckMode, Message, Outcome, Session
from buzon.broker.addresses import address
from buzon.errors import BrokerError, BuzonError, ErrorCode
from buzon.server.amqp_properties import delivery_properties, exchange_and_key
from buzon.server.receipts import ReceiptGate
from buzon.store import DestinationKind, Ticket

TRANSACTION = "tx"
"""The engine transaction name of a channel in ``tx.select`` mode (one per channel)."""

AT_ONCE = Outcome(RELEASE.disposition, delay_ms=0)
"""AMQP's requeue: back at its place now, whatever the queue's retry back-off."""
_DELIVERY_OVERHEAD = 120  # method and header frames of a delivery, for flush accounting


class AmqpChannel:
    """The server side of one open AMQP channel; it is its engine session's sink.

    Args:
        number: the channel number.
        amqp: the connection's protocol state (where frames are queued).
        queued: tells the chassis that about this many bytes of output wait.
        ended: the engine wants the session (and so the connection) ended.
        most_prefetch: the broker's bound on a subscription's prefetch (what AMQP's
            "no limit" becomes).
    """

    __slots__ = (
        "_amqp",
        "_confirmed",
        "_ended",
        "_gate",
        "_most",
        "_queued",
        "_staged",
        "_tags",
        "_unacked",
        "closed",
        "consumers",
        "last_queue",
        "number",
        "prefetch",
        "published",
        "session",
        "transactional",
    )

    def __init__(
        self,
        number: int,
        amqp: AmqpConnection,
        queued: Callable[[int], None],
        ended: Callable[[ErrorCode, str], None],
        most_prefetch: int,
    ) -> None:
        self.number = number
        self._most = most_prefetch
        self._amqp = amqp
        self._queued = queued
        self._ended = ended
        self.session: Session | None = None  # set once the engine session is open
        self._tags = 0
        self._unacked: dict[int, str] = {}  # delivery tag -> engine ack id, oldest first
        self._staged: dict[int, str] = {}  # of those, settled in the open transaction
        self.consumers: dict[str, str] = {}  # consumer tag -> queue name
        self.last_queue = ""  # the last queue declared here (an empty queue name means it)
        self.prefetch = most_prefetch  # basic.qos per consumer (AMQP's default: no limit)
        self.published = 0  # publishes since confirm.select (their confirm tags)
        self._gate: ReceiptGate | None = None
        self._confirmed = 0  # latest tag confirmed but not yet sent
        self.transactional = False
        self.closed = False  # dropped: what its writes still owe goes nowhere

    # -- DeliverySink: what the engine calls ---------------------------------------------

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        """A consumer of this channel gets ``message``."""
        tag = self.tag(ack_id)
        exchange, routing_key, properties = delivery_of(message)
        self._amqp.deliver(
            self.number,
            subscription_id,
            tag,
            redelivered,
            exchange,
            routing_key,
            properties,
            message.body,
        )
        self._queued(len(message.body) + _DELIVERY_OVERHEAD)

    def close_session(self, code: ErrorCode, detail: str) -> None:
        """The engine ends this channel's session (permissions changed, slow consumer)."""
        self._ended(code, detail)

    # -- delivery tags -------------------------------------------------------------------

    def tag(self, ack_id: str | None) -> int:
        """The next delivery tag, remembering the engine ack id it settles (if any)."""
        self._tags += 1
        if ack_id is not None:
            self._unacked[self._tags] = ack_id
        return self._tags

    def take_tags(self, delivery_tag: int, multiple: bool) -> list[tuple[int, str]]:
        """The (delivery tag, engine ack id) pairs a settlement of ``delivery_tag``
        covers, forgotten here.

        Raises:
            BrokerError: ``UNKNOWN_ACK_ID`` for a tag that is not unacked (AMQP 406).
        """
        unacked = self._unacked
        if not multiple:
            ack_id = unacked.pop(delivery_tag, None)
            if ack_id is None:
                raise BrokerError(ErrorCode.UNKNOWN_ACK_ID, f"unknown delivery tag {delivery_tag}")
            return [(delivery_tag, ack_id)]
        if delivery_tag and delivery_tag not in unacked:
            raise BrokerError(ErrorCode.UNKNOWN_ACK_ID, f"unknown delivery tag {delivery_tag}")
        tags = list(unacked) if not delivery_tag else takewhile(delivery_tag.__ge__, unacked)
        return [(tag, unacked.pop(tag)) for tag in list(tags)]

    def settle(self, delivery_tag: int, multiple: bool, outcome: Outcome) -> None:
        """basic.ack, basic.nack or basic.reject of a tag (and with ``multiple`` every
        earlier unacked one of the channel); in a transaction, staged until it ends.

        Raises:
            BrokerError: ``UNKNOWN_ACK_ID`` (nothing settled).
        """
        session = self._session()
        transaction = TRANSACTION if self.transactional else None
        taken = self.take_tags(delivery_tag, multiple)
        if transaction is not None:
            self._staged.update(taken)  # back to unacked if the transaction rolls back
        if multiple and taken:
            # The channel's tags and its session's ack ids count up together, so "every
            # unacked tag up to this one" is the session's "every delivery up to this ack
            # id": one call, settled in a batch per consumer.
            session.settle(taken[-1][1], outcome, multiple=True, transaction=transaction)
            return
        for _, ack_id in taken:
            session.settle(ack_id, outcome, transaction=transaction)

    def end_transaction(self, committed: bool) -> None:
        """tx.commit settled what the transaction staged; tx.rollback gives its tags back
        (the messages are still unacked: the client may settle them again)."""
        staged, self._staged = self._staged, {}
        if not committed and staged:
            self._unacked = dict(sorted({**self._unacked, **staged}.items()))

    def recover(self) -> None:
        """basic.recover: every unacked delivery goes back to its queue, redelivered."""
        session = self._session()
        ack_ids = list(self._unacked.values())
        self._unacked.clear()  # what comes back may be delivered here again at once
        for ack_id in ack_ids:
            session.settle(ack_id, AT_ONCE)

    # -- consumers -----------------------------------------------------------------------

    def consume(self, tag: str, queue: str, *, no_ack: bool, before: Callable[[], None]) -> None:
        """basic.consume: subscribe the session to ``queue`` under the consumer tag;
        ``before`` runs once the subscription is made and before any delivery of it (the
        queue's backlog is held back meanwhile), to send consume-ok first.

        Raises:
            BrokerError, AccessDenied: as :meth:`Session.subscribe` (nothing was sent).
        """
        session = self._session()
        mode = AckMode.AUTO if no_ack else AckMode.CLIENT_INDIVIDUAL
        writable = session.writable
        session.set_writable(False)
        try:
            session.subscribe(
                tag, address(DestinationKind.QUEUE, queue), mode, self.prefetch, create=False
            )
            self.consumers[tag] = queue
            before()
        finally:
            if writable:
                session.set_writable(True)

    def cancel(self, tag: str) -> None:
        """basic.cancel: an unknown tag is fine (it may have been cancelled by the broker)."""
        if self.consumers.pop(tag, None) is not None:
            self._session().unsubscribe(tag)

    def set_prefetch(self, limit: int | None, *, shared: bool) -> None:
        """basic.qos: ``limit`` unacked deliveries (None: no limit but the broker's) per
        consumer, or shared by the channel's consumers; it applies at once, to existing
        consumers too (Celery raises it while a countdown task waits)."""
        session = self._session()
        limit = self._most if limit is None else min(limit, self._most)
        if shared:
            session.set_shared_prefetch(None if limit == self._most else limit)
            return
        self.prefetch = limit
        for tag in self.consumers:
            session.set_prefetch(tag, limit)

    # -- publisher confirms --------------------------------------------------------------

    def next_publish(self) -> int:
        """The confirm tag of the next publish."""
        self.published += 1
        return self.published

    def select_confirms(self, owner: str, fail: Callable[[BuzonError], None]) -> None:
        """confirm.select: from now on every publish is confirmed."""
        if self._gate is None:
            self._gate = ReceiptGate(owner, self._confirm, self.send_confirms, fail)

    @property
    def confirming(self) -> bool:
        """Whether confirm.select was asked."""
        return self._gate is not None

    def confirm(self, ticket: Ticket, tag: int) -> None:
        """Confirm the publish with tag ``tag`` once ``ticket`` (the connection's latest
        write) and every earlier one are durable."""
        gate = self._gate
        if gate is not None:
            gate.wrote(ticket)
            gate.confirm(str(tag))

    @property
    def owes_confirms(self) -> bool:
        """Whether a confirm still waits for a write."""
        return self._gate is not None and self._gate.pending

    def close(self) -> None:
        """The channel is gone. Its number may be opened again at once (clients reuse the
        lowest), so confirms its earlier writes still owe must never be sent: they would
        confirm the new channel's publishes."""
        self.closed = True
        self._gate = None

    def _confirm(self, tag: str) -> None:
        if not self.closed:
            self._confirmed = int(tag)

    def send_confirms(self) -> None:
        """Send what was confirmed since the last call, as one ``multiple`` ack."""
        if self._confirmed and not self.closed:
            self._amqp.confirm_ack(self.number, self._confirmed, multiple=True)
            self._confirmed = 0
            self._queued(32)

    def _session(self) -> Session:
        if self.session is None:
            raise BrokerError(ErrorCode.INTERNAL_ERROR, "channel without a session")
        return self.session


def delivery_of(message: Message) -> tuple[str, str, bytes]:
    """The exchange, routing key and property list a delivery of ``message`` reports.

    The latest answer is kept: a fan-out hands one message to many queues in a row.
    """
    global _last_delivery
    last = _last_delivery
    if last[0] is message:
        return last[1]
    exchange, routing_key = exchange_and_key(message.destination)
    answer = (exchange, routing_key, delivery_properties(message))
    _last_delivery = (message, answer)
    return answer


_last_delivery: tuple[Message | None, tuple[str, str, bytes]] = (None, ("", "", b""))
