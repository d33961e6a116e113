"""What the AMQP methods of an open channel do to buzon's queues and channels.

An AMQP exchange is a buzon channel (its type is the exchange type); the default exchange
``""`` routes to the queue its routing key names; an AMQP queue is a buzon queue, declared
as :mod:`buzon.server.declarations` says; ``queue.bind`` is a buzon queue binding. Owners,
access keys and the delete rule are buzon's: an access key is presented as the argument
``x-access-key`` of ``queue.declare``, ``exchange.declare``, ``queue.bind`` and
``basic.consume``, or as the header ``x-access-key`` of a published message (removed
before the message is stored); a key checked once holds for the whole connection.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from buzon.amqp import (
    BasicAck,
    BasicCancel,
    BasicConsume,
    BasicGet,
    BasicNack,
    BasicQos,
    BasicRecover,
    BasicReject,
    ChannelFlow,
    ConfirmSelect,
    ExchangeDeclare,
    ExchangeDelete,
    Properties,
    Publish,
    QueueBind,
    QueueDeclare,
    QueueDelete,
    QueuePurge,
    QueueUnbind,
    ReplyCode,
    TxCommit,
    TxRollback,
    TxSelect,
    encode_properties,
)
from buzon.auth import Action
from buzon.broker import ACCEPT, REJECT, Channel, PublishOptions, Queue
from buzon.broker.addresses import address, keyed
from buzon.errors import AccessDenied, BrokerError, ErrorCode
from buzon.priority import DEFAULT_PRIORITY, HIGHEST_PRIORITY
from buzon.server.access_gate import admit, needs_key
from buzon.server.amqp_arguments import ACCESS_KEY_ARGUMENT, queue_arguments
from buzon.server.amqp_channel import AT_ONCE, TRANSACTION, AmqpChannel, delivery_of
from buzon.server.amqp_properties import PERSISTENT, publish_headers
from buzon.server.declarations import declare_queue
from buzon.store import ChannelType, DestinationKind

if TYPE_CHECKING:
    from buzon.server.amqp_session import AmqpAdapter

EXCHANGE_TYPES = {
    "fanout": ChannelType.FANOUT,
    "direct": ChannelType.DIRECT,
    "topic": ChannelType.TOPIC,
}
RESERVED_PREFIX = "amq."
"""Exchange names clients may not declare (the AMQP rule)."""
# a full queue (reject-publish) or disk refuses a publish: a nack, as in RabbitMQ
_REFUSED_PUBLISH = frozenset({ErrorCode.QUEUE_FULL, ErrorCode.STORAGE_FULL})


class Methods:
    """The channel methods of one AMQP connection.

    Attributes:
        grants: ids of destinations whose access key this connection presented.
    """

    def __init__(self, adapter: AmqpAdapter) -> None:
        self._adapter = adapter
        self.grants: set[str] = set()

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """The handler of each method event."""
        return {
            ChannelFlow: self._flow,
            ExchangeDeclare: self._exchange_declare,
            ExchangeDelete: self._exchange_delete,
            QueueDeclare: self._queue_declare,
            QueueBind: self._queue_bind,
            QueueUnbind: self._queue_unbind,
            QueuePurge: self._queue_purge,
            QueueDelete: self._queue_delete,
            BasicQos: self._qos,
            BasicConsume: self._consume,
            BasicCancel: self._cancel,
            Publish: self._publish,
            BasicGet: self._get,
            BasicAck: self._ack,
            BasicNack: self._nack,
            BasicReject: self._reject,
            BasicRecover: self._recover,
            ConfirmSelect: self._confirm_select,
            TxSelect: self._tx_select,
            TxCommit: self._tx_commit,
            TxRollback: self._tx_rollback,
        }

    # -- access keys ---------------------------------------------------------------------

    def _with_key(
        self,
        event: Any,
        kind: DestinationKind,
        name: str,
        action: Action,
        key: object,
        then: Callable[[], None],
    ) -> None:
        """Run ``then`` now, or once ``key`` passed the access gate of that destination
        when the principal needs a key there and the connection has not presented it."""
        adapter = self._adapter
        target = adapter.ctx.broker.destination(kind, name)
        principal = adapter.principal
        if (
            not isinstance(key, str)
            or target is None
            or principal is None
            or not needs_key(principal, action, target.record, self)
        ):
            then()
            return
        check = admit(
            adapter.ctx.resources,
            principal,
            target.record,
            key,
            adapter.connection.peer_host,
            self,
        )
        adapter.run(event, check, lambda _: then())

    def granted(self, destination_id: str) -> bool:
        """Whether this connection passed that destination's gate (``Grants``)."""
        return destination_id in self.live_grants()

    def live_grants(self) -> set[str]:
        """The grants still held by an open channel's session. The engine revokes a
        grant from every session when its destination's key changes; one remembered here
        for a connection with no channel open then would outlive the change, so only
        what some session still holds carries over to a new channel (none open: the
        client presents its keys again)."""
        sessions = list(self._adapter.sessions())
        self.grants = {g for g in self.grants if any(s.granted(g) for s in sessions)}
        return self.grants

    def grant(self, destination_id: str) -> None:
        """This connection passed that destination's gate: every channel's session, now
        and later, may use it (``Grants``)."""
        self.grants.add(destination_id)
        for session in self._adapter.sessions():
            session.grant(destination_id)

    # -- exchanges -----------------------------------------------------------------------

    def _exchange_declare(self, event: ExchangeDeclare) -> None:
        adapter = self._adapter
        name = event.exchange
        existing = adapter.ctx.broker.destination(DestinationKind.CHANNEL, name)
        if event.passive or existing is not None:
            if existing is None:
                raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"no exchange {name[:80]!r}")
            if not event.passive and existing.record.channel_type != _exchange_type(event):
                raise BrokerError(
                    ErrorCode.PRECONDITION_FAILED,
                    f"exchange {name[:80]!r} is {existing.record.channel_type}, not"
                    f" {event.exchange_type[:20]}",
                )
            self._done(event, adapter.amqp.exchange_declare_ok)
            return
        if not name or name.startswith(RESERVED_PREFIX):
            raise AccessDenied(
                ErrorCode.ACCESS_DENIED, f"exchange names {RESERVED_PREFIX}* are reserved"
            )
        key = event.arguments.get(ACCESS_KEY_ARGUMENT)
        create = adapter.ctx.resources.create(
            _principal(adapter),
            DestinationKind.CHANNEL,
            name,
            key if isinstance(key, str) else None,
            channel_type=_exchange_type(event),
            client_address=adapter.connection.peer_host,
        )
        adapter.run(event, create, lambda _: self._done(event, adapter.amqp.exchange_declare_ok))

    def _exchange_delete(self, event: ExchangeDelete) -> None:
        adapter = self._adapter
        resources = adapter.ctx.resources
        channel = resources.target_or_none(DestinationKind.CHANNEL, event.exchange)
        if channel is None:  # deleting what is gone succeeds, as in RabbitMQ
            self._done(event, adapter.amqp.exchange_delete_ok)
            return
        assert isinstance(channel, Channel)
        if event.if_unused and (channel.statistics().subscribers or channel.bindings):
            raise BrokerError(
                ErrorCode.PRECONDITION_FAILED, f"exchange {event.exchange[:80]!r} in use"
            )
        delete = resources.delete(_principal(adapter), DestinationKind.CHANNEL, event.exchange)
        adapter.run(event, delete, lambda _: self._done(event, adapter.amqp.exchange_delete_ok))

    # -- queues --------------------------------------------------------------------------

    def _queue_declare(self, event: QueueDeclare) -> None:
        adapter = self._adapter
        read = queue_arguments(
            event.arguments, durable=event.durable, auto_delete=event.auto_delete
        )
        connection = adapter.connection.id
        declare = declare_queue(
            adapter.ctx.resources,
            _principal(adapter),
            event.queue,
            read.policy,
            passive=event.passive,
            exclusive_to=connection if event.exclusive else None,
            connection=connection,
        )

        def declared(result: Any) -> None:
            adapter.channel(event.channel).last_queue = result.name
            if not event.nowait:
                adapter.amqp.queue_declare_ok(
                    event.channel, result.name, result.messages, result.consumers
                )

        key = event.arguments.get(ACCESS_KEY_ARGUMENT)
        adapter.run(
            event,
            declare,
            lambda result: self._with_key(
                event,
                DestinationKind.QUEUE,
                result.name,
                Action.CONSUME,
                key,
                lambda: declared(result),
            ),
        )

    def _queue_bind(self, event: QueueBind) -> None:
        adapter = self._adapter
        key = event.arguments.get(ACCESS_KEY_ARGUMENT)
        bind = adapter.ctx.resources.bindings.bind(
            _principal(adapter),
            event.exchange,
            self._queue_name(event.channel, event.queue),
            event.routing_key,
            channel_key=key if isinstance(key, str) else None,
            queue_key=key if isinstance(key, str) else None,
            client_address=adapter.connection.peer_host,
        )
        adapter.run(event, bind, lambda _: self._done(event, adapter.amqp.queue_bind_ok))

    def _queue_unbind(self, event: QueueUnbind) -> None:
        adapter = self._adapter
        unbind = adapter.ctx.resources.bindings.unbind(
            _principal(adapter),
            event.exchange,
            self._queue_name(event.channel, event.queue),
            event.routing_key,
        )
        adapter.run(event, unbind, lambda _: adapter.amqp.queue_unbind_ok(event.channel))

    def _queue_purge(self, event: QueuePurge) -> None:
        adapter = self._adapter
        purge = adapter.ctx.resources.purge(
            _principal(adapter), self._queue_name(event.channel, event.queue)
        )
        adapter.run(
            event,
            purge,
            lambda count: (
                None if event.nowait else adapter.amqp.queue_purge_ok(event.channel, count)
            ),
        )

    def _queue_delete(self, event: QueueDelete) -> None:
        adapter = self._adapter
        name = self._queue_name(event.channel, event.queue)
        queue = adapter.ctx.resources.target_or_none(DestinationKind.QUEUE, name)
        if queue is None:  # deleting what is gone succeeds, as in RabbitMQ
            if not event.nowait:
                adapter.amqp.queue_delete_ok(event.channel, 0)
            return
        assert isinstance(queue, Queue)
        if event.if_unused and queue.consumers:
            raise BrokerError(ErrorCode.PRECONDITION_FAILED, f"queue {name[:80]!r} in use")
        count = queue.ready()
        if event.if_empty and count:
            raise BrokerError(ErrorCode.PRECONDITION_FAILED, f"queue {name[:80]!r} not empty")
        delete = adapter.ctx.resources.delete(_principal(adapter), DestinationKind.QUEUE, name)
        adapter.run(
            event,
            delete,
            lambda _: None if event.nowait else adapter.amqp.queue_delete_ok(event.channel, count),
        )

    def _queue_name(self, channel: int, name: str) -> str:
        """An empty queue name means the channel's last declared queue (AMQP's rule)."""
        if name:
            return name
        last = self._adapter.channel(channel).last_queue
        if not last:
            raise BrokerError(
                ErrorCode.DESTINATION_NOT_FOUND, "no queue was declared on this channel"
            )
        return last

    # -- consumers -----------------------------------------------------------------------

    def _qos(self, event: BasicQos) -> None:
        channel = self._adapter.channel(event.channel)
        limit = event.prefetch_count or None
        channel.set_prefetch(limit, shared=event.global_)
        self._adapter.amqp.basic_qos_ok(event.channel)

    def _consume(self, event: BasicConsume) -> None:
        channel = self._adapter.channel(event.channel)
        name = self._queue_name(event.channel, event.queue)
        tag = event.consumer_tag or "amq.ctag-" + secrets.token_urlsafe(16)
        if "\0" in tag:
            raise BrokerError(ErrorCode.BAD_HEADER_VALUE, "a consumer tag cannot contain NUL")

        def start() -> None:
            channel.consume(tag, name, no_ack=event.no_ack, before=ok)

        def ok() -> None:
            if not event.nowait:
                self._adapter.amqp.basic_consume_ok(event.channel, tag)

        self._with_key(
            event,
            DestinationKind.QUEUE,
            name,
            Action.CONSUME,
            event.arguments.get(ACCESS_KEY_ARGUMENT),
            start,
        )

    def _cancel(self, event: BasicCancel) -> None:
        channel = self._adapter.channel(event.channel)
        channel.cancel(event.consumer_tag)
        if not event.nowait:
            self._adapter.amqp.basic_cancel_ok(event.channel, event.consumer_tag)

    def cancelled(self, channel: AmqpChannel) -> Callable[[str, ErrorCode, str], None]:
        """What a channel's session does when a consumer's queue goes: ``basic.cancel``
        if the client understands it, else the channel is closed (404)."""

        def cancel(tag: str, code: ErrorCode, detail: str) -> None:
            channel.consumers.pop(tag, None)
            amqp = self._adapter.amqp
            if not amqp.cancel_consumer(channel.number, tag):
                amqp.close_channel(channel.number, ReplyCode.NOT_FOUND, detail)
                self._adapter.drop_channel(channel.number)
            self._adapter.connection.queued(64)

        return cancel

    # -- publishing ----------------------------------------------------------------------

    def _publish(self, event: Publish) -> None:
        properties = event.properties
        raw = event.raw_properties
        key = None
        if properties.headers and ACCESS_KEY_ARGUMENT in properties.headers:
            table = dict(properties.headers)
            key = table.pop(ACCESS_KEY_ARGUMENT)  # never stored nor shown
            properties = dataclasses.replace(properties, headers=table)
            raw = encode_properties(properties)
        principal = _principal(self._adapter)
        if properties.user_id is not None and properties.user_id != principal.name:
            raise BrokerError(
                ErrorCode.PRECONDITION_FAILED,
                f"user_id {properties.user_id[:80]!r} is not the login name",
            )
        kind, name = self._destination(event)
        action = Action.PUBLISH
        self._with_key(
            event, kind, name, action, key, lambda: self._send(event, properties, raw, kind, name)
        )

    def _destination(self, event: Publish) -> tuple[DestinationKind, str]:
        """Where a publish goes: the default exchange names a queue by the routing key.

        Raises:
            BrokerError: DESTINATION_NOT_FOUND for an exchange that does not exist.
        """
        if not event.exchange:
            return DestinationKind.QUEUE, event.routing_key
        exchange = event.exchange
        if self._adapter.ctx.broker.destination(DestinationKind.CHANNEL, exchange) is None:
            raise BrokerError(ErrorCode.DESTINATION_NOT_FOUND, f"no exchange {exchange[:80]!r}")
        return DestinationKind.CHANNEL, exchange

    def _send(
        self,
        event: Publish,
        properties: Properties,
        raw: bytes,
        kind: DestinationKind,
        name: str,
    ) -> None:
        adapter = self._adapter
        channel = adapter.channel(event.channel)
        session = channel.session
        assert session is not None
        tag = channel.next_publish() if channel.confirming else 0
        headers = publish_headers(properties, raw)
        transaction = TRANSACTION if channel.transactional else None
        key = "" if kind is DestinationKind.QUEUE else event.routing_key
        if adapter.ctx.broker.routes(kind, name, key):
            destination = keyed(address(kind, name), key)
            try:
                session.publish(
                    destination,
                    headers,
                    event.body,
                    _options(properties),
                    transaction=transaction,
                    create=False,
                )
            except BrokerError as exc:
                if exc.code not in _REFUSED_PUBLISH:
                    raise
                if tag:  # the publisher learns it; without confirms it is dropped
                    adapter.amqp.confirm_nack(event.channel, tag)
                return
            adapter.published = True
        elif event.mandatory:
            adapter.amqp.basic_return(
                event.channel,
                ReplyCode.NO_ROUTE,
                "NO_ROUTE",
                event.exchange,
                event.routing_key,
                raw,
                event.body,
            )
        if tag:
            channel.confirm(adapter.ctx.broker.journal.last, tag)

    # -- getting and settling ------------------------------------------------------------

    def _get(self, event: BasicGet) -> None:
        adapter = self._adapter
        channel = adapter.channel(event.channel)
        session = channel.session
        assert session is not None
        got = session.get(self._queue_name(event.channel, event.queue), ack=not event.no_ack)
        if got is None:
            adapter.amqp.get_empty(event.channel)
            return
        message, ack_id, redelivered, left = got
        exchange, routing_key, properties = delivery_of(message)
        adapter.amqp.get_ok(
            event.channel,
            channel.tag(ack_id),
            redelivered,
            exchange,
            routing_key,
            left,
            properties,
            message.body,
        )

    def _ack(self, event: BasicAck) -> None:
        self._adapter.channel(event.channel).settle(event.delivery_tag, event.multiple, ACCEPT)

    def _nack(self, event: BasicNack) -> None:
        outcome = AT_ONCE if event.requeue else REJECT
        self._adapter.channel(event.channel).settle(event.delivery_tag, event.multiple, outcome)

    def _reject(self, event: BasicReject) -> None:
        outcome = AT_ONCE if event.requeue else REJECT
        self._adapter.channel(event.channel).settle(event.delivery_tag, False, outcome)

    def _recover(self, event: BasicRecover) -> None:
        self._adapter.channel(event.channel).recover()
        if not event.asynchronous:
            self._adapter.amqp.basic_recover_ok(event.channel)

    # -- confirms, transactions, flow ----------------------------------------------------

    def _confirm_select(self, event: ConfirmSelect) -> None:
        adapter = self._adapter
        channel = adapter.channel(event.channel)
        if channel.transactional:
            raise BrokerError(
                ErrorCode.PRECONDITION_FAILED, "a transactional channel cannot confirm"
            )
        channel.select_confirms(adapter.connection.id, self._write_failed)
        if not event.nowait:
            adapter.amqp.confirm_select_ok(event.channel)

    def _write_failed(self, error: Any) -> None:
        self._adapter.connection.fail(error.code, error.detail)

    def _tx_select(self, event: TxSelect) -> None:
        channel = self._adapter.channel(event.channel)
        if channel.confirming:
            raise BrokerError(
                ErrorCode.PRECONDITION_FAILED, "a confirming channel cannot be transactional"
            )
        if not channel.transactional:
            assert channel.session is not None
            channel.session.begin(TRANSACTION)
            channel.transactional = True
        self._adapter.amqp.tx_select_ok(event.channel)

    def _tx_commit(self, event: TxCommit) -> None:
        channel = self._transactional(event.channel)
        assert channel.session is not None
        channel.session.commit(TRANSACTION)
        channel.end_transaction(committed=True)
        channel.session.begin(TRANSACTION)
        self._adapter.published = True
        self._adapter.amqp.tx_commit_ok(event.channel)

    def _tx_rollback(self, event: TxRollback) -> None:
        channel = self._transactional(event.channel)
        assert channel.session is not None
        channel.session.abort(TRANSACTION)
        channel.end_transaction(committed=False)
        channel.session.begin(TRANSACTION)
        self._adapter.amqp.tx_rollback_ok(event.channel)

    def _transactional(self, number: int) -> AmqpChannel:
        channel = self._adapter.channel(number)
        if not channel.transactional:
            raise BrokerError(ErrorCode.PRECONDITION_FAILED, "channel is not transactional")
        return channel

    def _flow(self, event: ChannelFlow) -> None:
        session = self._adapter.channel(event.channel).session
        if session is not None:
            session.set_writable(event.active)

    def _done(self, event: Any, reply: Callable[[int], bool]) -> None:
        if not getattr(event, "nowait", False):
            reply(event.channel)


def _exchange_type(event: ExchangeDeclare) -> ChannelType:
    kind = EXCHANGE_TYPES.get(event.exchange_type)
    if kind is None:
        raise BrokerError(
            ErrorCode.PRECONDITION_FAILED,
            f"exchange type {event.exchange_type[:20]!r} is not supported (direct, fanout, topic)",
        )
    return kind


def _principal(adapter: AmqpAdapter) -> Any:
    principal = adapter.principal
    if principal is None:
        raise AccessDenied(ErrorCode.NOT_AUTHENTICATED)
    return principal


def _options(properties: Properties) -> PublishOptions:
    """What a message's properties ask of the broker: stored with delivery mode 2, its
    priority (AMQP's above 9 count as 9), an expiry from ``expiration`` (ms from now)."""
    expiration = properties.expiration
    persistent = properties.delivery_mode == PERSISTENT
    if expiration is None or not expiration.isdigit():
        return _lasting_options(persistent, properties.priority)
    return PublishOptions(
        persistent=persistent,
        expires_at=time.time() + int(expiration) / 1000,
        priority=_priority(properties.priority),
    )


@functools.cache
def _lasting_options(persistent: bool, priority: int | None) -> PublishOptions:
    """The options of a message without an expiry: one of 2 x 257, each built once."""
    return PublishOptions(persistent=persistent, priority=_priority(priority))


def _priority(priority: int | None) -> int:
    return DEFAULT_PRIORITY if priority is None else min(priority, HIGHEST_PRIORITY)
