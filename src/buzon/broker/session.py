"""Session: one client's command API to the engine (publish, subscribe, ack, ...).

Every front end (STOMP over TCP or WebSocket, HTTP) drives the engine through this class
only. Commands run to completion synchronously; deliveries they cause (to this session or
any other) are handed to the sinks before the command returns.

Persistent messages arrive in their queue only once the journal has them (see ``intake``).
While any of this session's writes is pending, its later publishes (persistent or not)
wait behind it in ``_outbox``, so one publisher's messages keep their order. If a write
fails, that message is never delivered and the session ends with STORAGE_UNAVAILABLE.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from buzon.auth.access import Action, Principal
from buzon.broker.addresses import address, key_in
from buzon.broker.channel import Channel
from buzon.broker.config import BrokerConfig
from buzon.broker.deadlines import ack_timeout
from buzon.broker.destinations import Destinations
from buzon.broker.intake import Intake
from buzon.broker.message import (
    ACCEPT,
    NO_OPTIONS,
    DeliverySink,
    Headers,
    Message,
    Outcome,
    PublishOptions,
)
from buzon.broker.queue import Queue
from buzon.broker.stats import SessionStats
from buzon.broker.subscription import AckMode, Consumer, CreditPool, Subscription
from buzon.broker.transactions import StagedPublish, StagedSettle, Transactions
from buzon.errors import BrokerError, ErrorCode, LocalProtocolError
from buzon.store import DestinationKind, Ticket

_DETAIL_CHARS = 64
# The subscription ids that hold what :meth:`Session.get` took, one per queue: no client
# can choose them (front ends refuse ids with a NUL).
_GETS = "\0get:"


class Session:
    """One client's view of the broker; made by :meth:`Broker.open_session`.

    Attributes:
        id: unique within the broker run.
        principal: who logged in.
    """

    __slots__ = (
        "_closed",
        "_config",
        "_consumer",
        "_destinations",
        "_grants",
        "_holders",
        "_intake",
        "_on_close",
        "_outbox",
        "_pool",
        "_published",
        "_subs",
        "_transactions",
        "connection",
        "id",
        "principal",
    )

    def __init__(
        self,
        session_id: str,
        principal: Principal,
        sink: DeliverySink,
        destinations: Destinations,
        intake: Intake,
        config: BrokerConfig,
        on_close: Callable[[Session], None],
        connection: str | None = None,
    ) -> None:
        self.id = session_id
        self.principal = principal
        # the client connection it belongs to (a connection may hold several sessions):
        # the queues exclusive to that connection are this session's to consume from
        self.connection = session_id if connection is None else connection
        self._config = config
        self._destinations = destinations
        self._intake = intake
        # Created on first use: most sessions never publish behind a pending write, and
        # an empty deque costs 600 bytes (times every idle connection).
        self._outbox: deque[tuple[Queue | Channel, Message, Ticket | None]] | None = None
        self._on_close = on_close
        self._consumer = Consumer(sink, self.close)
        self._subs: dict[str, Subscription] = {}
        self._holders = 0  # of those, what holds messages got (see _holder)
        self._transactions = Transactions(
            config.max_open_transactions, config.max_transaction_operations
        )
        self._grants: frozenset[str] = frozenset()  # rarely more than empty: no set each
        self._pool: CreditPool | None = None
        self._published = 0
        self._closed = False

    @property
    def max_delay_ms(self) -> int:
        """The longest a message may be scheduled ahead on this broker."""
        return self._config.max_delay_ms

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (called by the client side or by the engine)."""
        return self._closed

    def publish(
        self,
        destination: str,
        headers: Headers,
        body: bytes,
        options: PublishOptions = NO_OPTIONS,
        *,
        transaction: str | None = None,
        create: bool = True,
    ) -> str:
        """Publish a message, or stage it in ``transaction``.

        Args:
            destination: ``/queue/<name>`` or ``/topic/<name>``; created if new and the
                broker creates on first use.
            headers: user headers, passed to consumers as they are.
            body: the payload.
            options: persistence, expiry, priority, schedule and idempotency key.
            transaction: an open transaction to stage the send in.
            create: False never creates a missing destination, whatever the broker's
                ``auto_create`` (a front end's per-frame opt-out).

        Returns:
            the new message id, or ``""`` when staged (ids are assigned at commit); for a
            duplicate (an idempotency key the queue saw within its window: nothing is
            enqueued), the first message's id.

        Raises:
            BrokerError: ``BAD_DESTINATION``, ``DESTINATION_NOT_FOUND``, ``BAD_HEADER_VALUE``;
                ``UNKNOWN_TRANSACTION`` or ``LIMIT_EXCEEDED`` for a transactional send.
            AccessDenied: an access key protects it and none was granted (:meth:`grant`).
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        if transaction is not None:
            self._transactions.check(transaction)
            self._destinations.check(
                destination,
                self.principal,
                Action.PUBLISH,
                self._grants,
                create=create and self._config.auto_create,
            )
            staged = StagedPublish(destination, headers, body, options, create)
            self._transactions.stage(transaction, staged)
            return ""
        target = self._resolve(destination, Action.PUBLISH, create)
        key = self._intake.key_for(target, options)
        if key is not None and (original := self._intake.duplicate(target, key)) is not None:
            return original
        routing_key = key_in(destination, target.address)
        message = self._intake.prepare(target, headers, body, options, routing_key)
        self._send(target, message, self._intake.accept(target, message, key=key))
        return message.id

    def subscribe(
        self,
        subscription_id: str,
        destination: str,
        ack_mode: AckMode = AckMode.AUTO,
        prefetch: int | None = None,
        durable_name: str | None = None,
        *,
        create: bool = True,
        ack_timeout_ms: int | None = None,
    ) -> None:
        """Start receiving from a queue or channel; a queue's backlog may arrive at once.

        Args:
            subscription_id: the session's name for the subscription (in every delivery).
            destination: ``/queue/<name>`` or ``/topic/<name>``; created if new.
            ack_mode: how deliveries are settled.
            prefetch: most unacked deliveries at once (default from the config); checked
                but unused in ack mode auto.
            durable_name: for a channel, attach to this principal's durable subscription
                of that name (created if new): its backlog kept what was published while
                nobody was attached, and it keeps receiving after this session ends.
            create: as for :meth:`publish`.
            ack_timeout_ms: on a queue in ack mode client or client-individual, a
                delivery not settled within this long goes back to the queue (see
                ``deadlines``); at most the queue's ``ack_timeout_ms``, which applies when
                this is None. Ignored for channels and in ack mode auto.

        Raises:
            BrokerError: ``DUPLICATE_SUBSCRIPTION``, ``LIMIT_EXCEEDED`` (too many
                subscriptions), ``BAD_HEADER_VALUE`` (prefetch or ack timeout out of range),
                ``BAD_DESTINATION``, ``DESTINATION_NOT_FOUND``.
            AccessDenied: an access key protects it and none was granted (:meth:`grant`).
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        if subscription_id in self._subs:
            raise BrokerError(ErrorCode.DUPLICATE_SUBSCRIPTION, _named(subscription_id))
        limit = self._config.max_subscriptions_per_session
        if len(self._subs) - self._holders >= limit:
            raise BrokerError(ErrorCode.LIMIT_EXCEEDED, f"at most {limit} subscriptions")
        prefetch = self._config.default_prefetch if prefetch is None else self._checked(prefetch)
        target: Queue | Channel = self._resolve(destination, Action.CONSUME, create)
        pattern = key_in(destination, target.address)
        if durable_name is not None:
            if not isinstance(target, Channel) or pattern:
                raise BrokerError(
                    ErrorCode.BAD_HEADER_VALUE,
                    "durable subscriptions are for a whole channel (/topic/<name>)",
                )
            target = self._destinations.durable(target, self.principal.id, durable_name)
        sub = Subscription(subscription_id, self._consumer, target, ack_mode, prefetch)
        if isinstance(target, Queue) and not sub.auto:
            timeout = ack_timeout(
                ack_timeout_ms, target.policy.ack_timeout_ms, self._config.max_delay_ms
            )
            if timeout is not None:
                sub.deadlines = target.ack_deadlines(sub, timeout)
        if not sub.auto:
            sub.pool = self._pool
        self._subs[subscription_id] = sub
        if pattern and isinstance(target, Channel):
            target.attach(sub, pattern)
        else:
            target.attach(sub)

    def unsubscribe(self, subscription_id: str, *, forget: bool = False) -> None:
        """End a subscription; its unacked queue messages go back to the queue.

        Args:
            subscription_id: as given to :meth:`subscribe`.
            forget: for a durable subscription, delete it and its backlog too (otherwise
                it keeps collecting messages for its next SUBSCRIBE).

        Raises:
            BrokerError: ``UNKNOWN_SUBSCRIPTION``.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        sub = self._subs.pop(subscription_id, None)
        if sub is None:
            raise BrokerError(ErrorCode.UNKNOWN_SUBSCRIPTION, _named(subscription_id))
        target = sub.target
        target.detach(sub)
        if forget and isinstance(target, Queue):
            self._destinations.drop_durable(target.record.id)  # no-op for a plain queue
        if sub.pool is not None:
            sub.pool = None
            self._refill()  # what it held returned to the shared credit

    def set_prefetch(self, subscription_id: str, prefetch: int) -> None:
        """Change how many unsettled deliveries a subscription may hold, at once.

        Raising it delivers what waits up to the new limit before this returns; lowering
        it delivers nothing more until enough of what it holds is settled. Ignored in ack
        mode auto (no limit).

        Raises:
            BrokerError: ``UNKNOWN_SUBSCRIPTION``; ``BAD_HEADER_VALUE`` when ``prefetch``
                is not between 1 and the broker's ``max_prefetch``.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        sub = self._subs.get(subscription_id)
        if sub is None:
            raise BrokerError(ErrorCode.UNKNOWN_SUBSCRIPTION, _named(subscription_id))
        self._checked(prefetch)
        if sub.auto:
            return
        raised = prefetch > sub.window
        sub.window = prefetch
        if raised:
            sub.target.resume(sub)

    def set_shared_prefetch(self, limit: int | None) -> None:
        """Share credit among every subscription of this session (present and future,
        except those in ack mode auto): together they hold at most ``limit`` unsettled
        deliveries, each also within its own prefetch. None ends the sharing.

        Takes effect at once, whenever it is called: raising (or ending) it delivers what
        waits before this returns; lowering it lets what is held drain first.

        Raises:
            BrokerError: ``BAD_HEADER_VALUE`` when ``limit`` is not between 1 and the
                broker's ``max_prefetch``.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        pool = self._pool
        if limit is None:
            self._pool = None
            if pool is not None:
                for sub in self._subs.values():
                    sub.join(None)
                self._refill()
            return
        self._checked(limit)
        if pool is None:
            pool = self._pool = CreditPool(limit)
            for sub in self._subs.values():
                if not sub.auto and not sub.id.startswith(_GETS):  # gets take no credit
                    sub.join(pool)
            return
        raised = limit > pool.limit
        pool.limit = limit
        if raised:
            self._refill()

    def settle(
        self,
        ack_id: str,
        outcome: Outcome = ACCEPT,
        *,
        multiple: bool = False,
        transaction: str | None = None,
    ) -> None:
        """Settle a delivery: accept it, release it to its queue, or reject it.

        What one call covers: in ack mode client, every earlier unsettled delivery of the
        same subscription too (cumulative); with ``multiple``, every unsettled delivery of
        this session up to and including ``ack_id``, whatever its subscription (ack ids
        count up per session in delivery order, so a front end that maps one client
        channel to one session can settle "everything up to this tag" across its
        consumers). Released queue messages go back to their original place (publish order
        within their priority) and are redelivered after the outcome's delay or the queue's
        retry back-off; rejected ones are dead-lettered (reason ``rejected``) or dropped;
        channel messages are dropped unless accepted, which is the same.

        Args:
            ack_id: from a delivery this session received and has not settled.
            outcome: what to do with it (:data:`ACCEPT`, :data:`RELEASE`, :data:`REJECT`,
                or an :class:`Outcome` with a delay or error text).
            multiple: settle every earlier unsettled delivery of the session as well.
            transaction: stage the settlement in this open transaction instead.

        Raises:
            BrokerError: ``UNKNOWN_ACK_ID``; ``UNKNOWN_TRANSACTION`` or ``LIMIT_EXCEEDED``
                for a transactional one.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        if transaction is not None:
            self._transactions.check(transaction)
        sub = self._consumer.unacked.get(ack_id)
        if sub is None:
            lapsed = self._late(ack_id)
            if lapsed is None:
                raise BrokerError(ErrorCode.UNKNOWN_ACK_ID, f"ack id {ack_id[:_DETAIL_CHARS]!r}")
            if transaction is None:  # what a cumulative one still covers is settled
                if multiple:
                    self._settle_up_to(ack_id, outcome)
                else:
                    self._conclude(lapsed, lapsed.take_before(ack_id), outcome)
            return
        if transaction is not None:
            self._transactions.stage(transaction, StagedSettle(ack_id, outcome, multiple))
        elif multiple:
            self._settle_up_to(ack_id, outcome)
        else:
            self._conclude(sub, sub.take(ack_id), outcome)

    def ack(self, ack_id: str, *, transaction: str | None = None) -> None:
        """:meth:`settle` with :data:`ACCEPT` (the common case reads better so)."""
        self.settle(ack_id, ACCEPT, transaction=transaction)

    def on_cancelled(self, callback: Callable[[str, ErrorCode, str], None]) -> None:
        """Ask to be told, with the subscription id, when a subscription ends because its
        destination went (deleted, expired, auto-deleted), rather than have the session
        end (what happens without this, for front ends that cannot tell their client)."""

        def cancelled(sub: Subscription, code: ErrorCode, detail: str) -> None:
            if self._subs.get(sub.id) is sub:
                del self._subs[sub.id]
                self._holders -= sub.id.startswith(_GETS)
                sub.target.detach(sub)
                callback(sub.id, code, detail)

        self._consumer.on_cancel = cancelled

    def get(self, queue: str, *, ack: bool) -> tuple[Message, str | None, bool, int] | None:
        """Take the oldest waiting message of a queue without subscribing (AMQP's
        basic.get).

        Args:
            queue: the queue's name.
            ack: hold the message until :meth:`ack` or :meth:`nack` of the returned ack
                id (it goes back if the session closes first); False settles it at once.

        Returns:
            the message, its ack id (None without ``ack``), whether it was delivered
            before, and how many messages wait after it; None when none waits.

        Raises:
            BrokerError: ``DESTINATION_NOT_FOUND``, ``BAD_DESTINATION``; ``LIMIT_EXCEEDED``
                when messages got from as many queues as a session may subscribe to are
                unsettled.
            AccessDenied: as :meth:`subscribe`; ``RESOURCE_LOCKED`` for a queue exclusive
                to another connection.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        target = self._resolve(address(DestinationKind.QUEUE, queue), Action.CONSUME, False)
        assert isinstance(target, Queue)
        if target.lifetime is not None:
            target.lifetime.touched()
        holder = self._holder(target) if ack else None  # before anything is taken
        taken = target.take(1)
        if not taken:
            return None
        message, redelivered = taken[0]
        if holder is None:
            target.ack_taken([message])
            return message, None, redelivered, target.ready()
        return message, holder.hold(message), redelivered, target.ready()

    def _holder(self, target: Queue) -> Subscription:
        """What holds the messages got from ``target`` until they are settled: a
        subscription that never takes deliveries, one per queue, not counted as one of
        the session's subscriptions but bounded by the same limit (idle ones make room).

        Raises:
            BrokerError: ``LIMIT_EXCEEDED``: messages got from that many queues are held.
        """
        name = _GETS + target.name
        holder = self._subs.get(name)
        if holder is not None and holder.target is target:
            return holder
        if holder is not None:  # it held what was got from a queue of that name, deleted
            self._conclude(holder, holder.take_all(), ACCEPT)
        else:
            limit = self._config.max_subscriptions_per_session
            if self._holders >= limit:
                self._drop_idle_holders()
            if self._holders >= limit:
                raise BrokerError(
                    ErrorCode.LIMIT_EXCEEDED, f"messages got from {limit} queues are unsettled"
                )
            self._holders += 1
        holder = Subscription(name, self._consumer, target, AckMode.CLIENT_INDIVIDUAL, 1)
        holder.active = False  # never in the queue's ring: it only holds what was got
        self._subs[name] = holder
        return holder

    def _drop_idle_holders(self) -> None:
        idle = [
            sub.id for sub in self._subs.values() if sub.id.startswith(_GETS) and not sub.unacked
        ]
        for name in idle:
            del self._subs[name]
        self._holders -= len(idle)

    def ack_id_for(self, subscription_id: str, message_id: str) -> str:
        """The ack id of the unsettled delivery of ``message_id`` on a subscription.

        For front ends whose clients name a delivery by message and subscription (STOMP
        1.1) rather than by ack id. It scans that subscription's unacked deliveries, at
        most its prefetch window.

        Args:
            subscription_id: as given to :meth:`subscribe`.
            message_id: the id of a message delivered on it and not yet settled.

        Raises:
            BrokerError: ``UNKNOWN_SUBSCRIPTION``, or ``UNKNOWN_ACK_ID`` when that
                subscription holds no such delivery (never delivered, settled, or auto).
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        sub = self._subs.get(subscription_id)
        if sub is None:
            raise BrokerError(ErrorCode.UNKNOWN_SUBSCRIPTION, _named(subscription_id))
        for ack_id, message in sub.unacked.items():
            if message.id == message_id:
                return ack_id
        lapsed = self._consumer.lapsed
        found = None if lapsed is None else lapsed.find(subscription_id, message_id)
        if found is not None:
            return found  # a late settlement, ignored by settle/extend
        raise BrokerError(
            ErrorCode.UNKNOWN_ACK_ID, f"message-id {message_id[:_DETAIL_CHARS]!r} is not unacked"
        )

    def extend(self, ack_id: str, ms: int | None = None) -> bool:
        """Push back the ack deadline of an unsettled delivery: it may stay unsettled for
        ``ms`` (default: its subscription's ack timeout) from now.

        A delivery without a deadline (its subscription has no ack timeout), one that has
        lapsed, and an unknown ack id are left alone: the lease may have run out while the
        extension was on its way, which is no reason to end the session.

        Returns:
            whether a deadline moved.

        Raises:
            BrokerError: ``BAD_HEADER_VALUE`` when ``ms`` is not between 1 and the broker's
                scheduling bound (``max_delay_ms``).
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        most = self._config.max_delay_ms
        if ms is not None and not 1 <= ms <= most:
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, f"extend-ms must be between 1 and {most}")
        sub = self._consumer.unacked.get(ack_id)
        if sub is not None:
            return sub.deadlines is not None and sub.deadlines.extend(ack_id, ms)
        self._late(ack_id)
        return False

    def begin(self, transaction: str) -> None:
        """Open a transaction.

        Args:
            transaction: the client's name for it, unique among its open transactions.

        Raises:
            BrokerError: ``DUPLICATE_TRANSACTION``, ``LIMIT_EXCEEDED``.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        self._transactions.begin(transaction)

    def commit(self, transaction: str) -> None:
        """Apply everything staged in ``transaction``, in the order it was staged.

        A staged ACK/NACK whose ack id was settled since it was staged (by a later
        cumulative ACK, an earlier one in the same transaction, or an unsubscribe) is
        skipped: there is nothing left for it to settle.

        Args:
            transaction: an open transaction; it is closed by the commit.

        Raises:
            BrokerError: ``UNKNOWN_TRANSACTION``; ``DESTINATION_NOT_FOUND`` when a staged
                send's destination was deleted and is not created on first use (then
                nothing is applied and the transaction stays open).
            AccessDenied: a staged send's destination became protected (nothing applied).
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        staged = self._transactions.staged(transaction)
        # Resolve, number and admit every send first: a destination deleted, protected or
        # full since staging makes the whole commit fail before anything is applied.
        sends = []
        applied = []  # what is left once duplicate sends (idempotency keys) are dropped
        keyed: set[tuple[str, str]] = set()  # keys of this commit's sends
        for op in staged:
            if isinstance(op, StagedPublish):
                target = self._resolve(op.destination, Action.PUBLISH, op.create)
                key = self._intake.key_for(target, op.options)
                if key is not None:
                    if (target.record.id, key) in keyed or self._intake.duplicate(target, key):
                        continue
                    keyed.add((target.record.id, key))
                routing_key = key_in(op.destination, target.address)
                message = self._intake.prepare(target, op.headers, op.body, op.options, routing_key)
                sends.append((target, message, key))
            applied.append(op)
        accepted: list[tuple[Queue | Channel, Message, Ticket | None]] = []
        try:
            for target, message, key in sends:
                accepted.append((target, message, self._intake.accept(target, message, key=key)))
        except BrokerError:
            for (target, message, _), (_, _, key) in zip(accepted, sends, strict=False):
                self._intake.withdraw(target, message, key)
            raise
        self._transactions.finish(transaction)
        published = iter(accepted)
        for operation in applied:
            if isinstance(operation, StagedPublish):
                self._send(*next(published))
            else:
                self._apply_settle(operation)

    def abort(self, transaction: str) -> None:
        """Drop everything staged in ``transaction``.

        Args:
            transaction: an open transaction; it is closed by the abort.

        Raises:
            BrokerError: ``UNKNOWN_TRANSACTION``.
            LocalProtocolError: the session is closed.
        """
        self._check_open()
        self._transactions.finish(transaction)

    def grant(self, destination_id: str) -> None:
        """Remember that this session presented the right access key for a destination.

        The front end checks the key (argon2id, off the event loop) and calls this once;
        later commands on that destination pass without a key. A destination deleted and
        created again has a new id, so the grant does not carry over.
        """
        self._grants |= {destination_id}

    def granted(self, destination_id: str) -> bool:
        """Whether :meth:`grant` was called for that destination."""
        return destination_id in self._grants

    def revoke(self, destination_id: str) -> None:
        """Forget the grant of a destination (its key changed, or it was deleted)."""
        if destination_id in self._grants:
            self._grants -= {destination_id}

    def uses(self, destination: str) -> bool:
        """Whether a subscription of this session reads from ``destination`` (an address;
        a durable subscription reads from its channel's)."""
        return any(
            isinstance(sub.target, Queue | Channel) and sub.target.address == destination
            for sub in self._subs.values()
        )

    @property
    def writable(self) -> bool:
        """Whether deliveries may go out now (see :meth:`set_writable`)."""
        return self._consumer.writable

    def set_writable(self, writable: bool) -> None:
        """Say whether the transport can take more output now.

        While not writable the session gets no deliveries: queue messages stay in their
        queue, channel messages wait in the subscription's bounded pending deque. Safe to
        call from inside ``sink.deliver()``; setting it back to True delivers what waits.
        Does nothing once the session is closed.

        Args:
            writable: False when the transport's write buffer is full, True once drained.
        """
        consumer = self._consumer
        if self._closed or consumer.writable is writable:
            return
        consumer.writable = writable
        if writable:
            # A copy: a delivery may unsubscribe or close from inside the sink.
            for sub in tuple(self._subs.values()):
                if not consumer.writable:
                    break
                sub.target.resume(sub)

    def end(self, code: ErrorCode, detail: str) -> None:
        """The engine ends this session: the sink learns why, then the session closes."""
        self._consumer.kill(code, detail)

    def close(self) -> None:
        """End the session. Idempotent.

        Unacked queue messages go back to their queues (original order, redelivered) and
        may be delivered to other sessions before this returns; unacked and pending
        channel messages are dropped; open transactions are dropped. The sink is not called.
        """
        if self._closed:
            return
        self._closed = True
        self._consumer.writable = False
        self._transactions.clear()
        subs = list(self._subs.values())
        self._subs.clear()
        self._holders = 0
        for sub in subs:
            sub.target.detach(sub)
        self._on_close(self)

    def statistics(self) -> SessionStats:
        """A snapshot of this session's counters."""
        return SessionStats(
            id=self.id,
            principal=self.principal.name,
            subscriptions=len(self._subs) - self._holders,
            unacked=len(self._consumer.unacked),
            published=self._published,
            delivered=self._consumer.delivered,
        )

    # -- internals -----------------------------------------------------------------------

    def _send(self, target: Queue | Channel, message: Message, ticket: Ticket | None) -> None:
        """Deliver an accepted message now, or once its write (and earlier ones) is done."""
        self._published += 1
        outbox = self._outbox
        if not outbox and (ticket is None or ticket.done):
            self._intake.arrive(target, message, ticket)
            return
        if outbox is None:
            outbox = self._outbox = deque()
        if ticket is not None and (not outbox or outbox[-1][2] is not ticket):
            ticket.add_callback(self._drain)
        outbox.append((target, message, ticket))

    def _drain(self, _: Ticket) -> None:
        """Deliver what waited, in order, up to the first write still pending."""
        outbox = self._outbox
        while outbox:
            target, message, ticket = outbox[0]
            if ticket is not None and not ticket.done:
                return
            outbox.popleft()
            if not self._intake.arrive(target, message, ticket) and not self._closed:
                error = None if ticket is None else ticket.error
                self._consumer.kill(
                    ErrorCode.STORAGE_UNAVAILABLE if error is None else error.code,
                    "a message could not be stored, so it was not delivered",
                )

    def _resolve(self, destination: str, action: Action, create: bool) -> Queue | Channel:
        return self._destinations.resolve(
            destination,
            self.principal,
            action,
            self._grants,
            create=create and self._config.auto_create,
            connection=self.connection,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError(detail=f"session {self.id} is closed")

    def _checked(self, prefetch: int) -> int:
        most = self._config.max_prefetch
        if not 1 <= prefetch <= most:
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, f"prefetch must be between 1 and {most}")
        return prefetch

    def _refill(self, settled: Subscription | None = None) -> None:
        """Shared credit was freed or raised: every subscription that may take more gets
        it (``settled`` was refilled by its own settlement already)."""
        for sub in tuple(self._subs.values()):  # a delivery may unsubscribe
            if sub is not settled and sub.active:
                sub.target.resume(sub)

    def _conclude(self, sub: Subscription, messages: list[Message], outcome: Outcome) -> None:
        """Settle what ``sub`` gave up; freed shared credit refills the other members."""
        if not messages:
            return
        pool = sub.pool
        full = pool is not None and pool.used + len(messages) >= pool.limit
        sub.target.settle(sub, messages, outcome)
        if full:
            self._refill(sub)

    def _settle_up_to(self, ack_id: str, outcome: Outcome) -> None:
        """Settle every unsettled delivery of the session whose ack id is not after
        ``ack_id``, one batch per subscription."""
        limit = int(ack_id)
        batches: dict[Subscription, list[str]] = {}
        for key, sub in self._consumer.unacked.items():  # in delivery order
            if int(key) > limit:
                break
            batches.setdefault(sub, []).append(key)
        for sub, ids in batches.items():
            self._conclude(sub, sub.take_ids(ids), outcome)

    def _late(self, ack_id: str) -> Subscription | None:
        """If ``ack_id`` is a delivery that lapsed (and is still remembered), count a late
        settlement on its queue and return its subscription."""
        lapsed = self._consumer.lapsed
        sub = None if lapsed is None else lapsed.get(ack_id)
        if sub is not None and isinstance(sub.target, Queue):
            sub.target.late_settle()
        return sub

    def _apply_settle(self, operation: StagedSettle) -> None:
        ack_id = operation.ack_id
        sub = self._consumer.unacked.get(ack_id)
        if sub is None:  # settled since it was staged
            return
        if operation.multiple:
            self._settle_up_to(ack_id, operation.outcome)
        else:
            self._conclude(sub, sub.take(ack_id), operation.outcome)


def _named(subscription_id: str) -> str:
    return f"subscription {subscription_id[:_DETAIL_CHARS]!r}"
