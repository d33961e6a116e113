"""Typed events an :class:`~buzon.amqp.AmqpConnection` hands the server.

One event per client method the server acts on, named after the method; each carries the
channel it arrived on and the method's arguments under their spec names (``global_`` for
``basic.qos``'s ``global``). Replies the protocol fixes (``channel.open-ok``,
``close-ok``, ``flow-ok``) are sent by the connection itself; the rest are the server's
to send through the connection's methods, unless the event's ``nowait`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from pamqp import commands

from buzon.amqp.properties import Properties
from buzon.amqp.tables import FieldTable

# -- connection ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginRequested:
    """``connection.start-ok``: answer with ``accept_login()`` or ``refuse_login(text)``.

    Attributes:
        mechanism: ``PLAIN`` or ``AMQPLAIN``.
        username: the login name.
        password: the password (or a token).
        client_properties: the client's table (``product``, ``capabilities``...).
        locale: the locale the client chose.
    """

    mechanism: str
    username: str
    password: str
    client_properties: FieldTable
    locale: str


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """``connection.open`` for the virtual host ``/``: ``open-ok`` is sent, channels may
    open now. ``heartbeat`` and ``frame_max`` are the negotiated values."""

    virtual_host: str
    channel_max: int
    frame_max: int
    heartbeat: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client sent ``connection.close``; ``close-ok`` is sent, the transport should
    be closed once flushed."""

    reply_code: int
    reply_text: str
    class_id: int
    method_id: int


@dataclass(frozen=True, slots=True)
class ConnectionCloseOk:
    """The client confirmed our ``connection.close``: close the transport."""


# -- channels --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """``channel.open``: ``open-ok`` is sent; the server creates its channel state."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The client sent ``channel.close``; ``close-ok`` is sent. Drop the channel's
    consumers and give back its unacknowledged messages."""

    channel: int
    reply_code: int
    reply_text: str
    class_id: int
    method_id: int


@dataclass(frozen=True, slots=True)
class ChannelCloseOk:
    """The client confirmed our ``channel.close``; the channel number is free again."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelFlow:
    """``channel.flow``: stop (``active`` false) or resume deliveries; ``flow-ok`` is sent."""

    channel: int
    active: bool


# -- exchanges and queues --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeDeclare:
    channel: int
    exchange: str
    exchange_type: str
    passive: bool
    durable: bool
    auto_delete: bool
    internal: bool
    nowait: bool
    arguments: FieldTable


@dataclass(frozen=True, slots=True)
class ExchangeDelete:
    channel: int
    exchange: str
    if_unused: bool
    nowait: bool


@dataclass(frozen=True, slots=True)
class QueueDeclare:
    """An empty ``queue`` asks the server to choose a name (sent back in ``declare-ok``)."""

    channel: int
    queue: str
    passive: bool
    durable: bool
    exclusive: bool
    auto_delete: bool
    nowait: bool
    arguments: FieldTable


@dataclass(frozen=True, slots=True)
class QueueBind:
    channel: int
    queue: str
    exchange: str
    routing_key: str
    nowait: bool
    arguments: FieldTable


@dataclass(frozen=True, slots=True)
class QueueUnbind:
    """``queue.unbind`` has no ``nowait``: always answer ``unbind-ok``."""

    channel: int
    queue: str
    exchange: str
    routing_key: str
    arguments: FieldTable


@dataclass(frozen=True, slots=True)
class QueuePurge:
    channel: int
    queue: str
    nowait: bool


@dataclass(frozen=True, slots=True)
class QueueDelete:
    channel: int
    queue: str
    if_unused: bool
    if_empty: bool
    nowait: bool


# -- basic -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BasicQos:
    """``global_`` true: the limit is per channel (0-9-1: per connection; RabbitMQ and
    Celery: per channel), false: per consumer. It applies at once, even to consumers
    that already exist."""

    channel: int
    prefetch_size: int
    prefetch_count: int
    global_: bool


@dataclass(frozen=True, slots=True)
class BasicConsume:
    """An empty ``consumer_tag`` asks the server to choose one (sent in ``consume-ok``)."""

    channel: int
    queue: str
    consumer_tag: str
    no_local: bool
    no_ack: bool
    exclusive: bool
    nowait: bool
    arguments: FieldTable


@dataclass(frozen=True, slots=True)
class BasicCancel:
    channel: int
    consumer_tag: str
    nowait: bool


@dataclass(slots=True)
class Publish:
    """``basic.publish`` with its content header and body, assembled.

    Attributes:
        properties: the decoded basic properties; shared by the publishes of a channel
            that sent the same property list, so read them, never change them.
        raw_properties: the property list exactly as received; pass it to ``deliver`` to
            send the same properties back out without encoding them again.
    """

    channel: int
    exchange: str
    routing_key: str
    mandatory: bool
    immediate: bool
    properties: Properties
    raw_properties: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class BasicGet:
    channel: int
    queue: str
    no_ack: bool


@dataclass(slots=True)
class BasicAck:
    """``multiple``: every tag up to ``delivery_tag`` (0 with multiple = all)."""

    channel: int
    delivery_tag: int
    multiple: bool


@dataclass(slots=True)
class BasicNack:
    channel: int
    delivery_tag: int
    multiple: bool
    requeue: bool


@dataclass(slots=True)
class BasicReject:
    channel: int
    delivery_tag: int
    requeue: bool


@dataclass(frozen=True, slots=True)
class BasicRecover:
    """``basic.recover`` (answer ``recover_ok``) or, when ``asynchronous``, the deprecated
    ``basic.recover-async`` (no answer)."""

    channel: int
    requeue: bool
    asynchronous: bool


@dataclass(frozen=True, slots=True)
class ConfirmSelect:
    channel: int
    nowait: bool


@dataclass(frozen=True, slots=True)
class TxSelect:
    channel: int


@dataclass(frozen=True, slots=True)
class TxCommit:
    channel: int


@dataclass(frozen=True, slots=True)
class TxRollback:
    channel: int


Event: TypeAlias = (
    LoginRequested
    | ConnectionOpened
    | ConnectionClosed
    | ConnectionCloseOk
    | ChannelOpened
    | ChannelClosed
    | ChannelCloseOk
    | ChannelFlow
    | ExchangeDeclare
    | ExchangeDelete
    | QueueDeclare
    | QueueBind
    | QueueUnbind
    | QueuePurge
    | QueueDelete
    | BasicQos
    | BasicConsume
    | BasicCancel
    | Publish
    | BasicGet
    | BasicAck
    | BasicNack
    | BasicReject
    | BasicRecover
    | ConfirmSelect
    | TxSelect
    | TxCommit
    | TxRollback
)


_METHODS: dict[type, int] = {
    ExchangeDeclare: commands.Exchange.Declare.index,
    ExchangeDelete: commands.Exchange.Delete.index,
    QueueDeclare: commands.Queue.Declare.index,
    QueueBind: commands.Queue.Bind.index,
    QueuePurge: commands.Queue.Purge.index,
    QueueDelete: commands.Queue.Delete.index,
    QueueUnbind: commands.Queue.Unbind.index,
    BasicQos: commands.Basic.Qos.index,
    BasicConsume: commands.Basic.Consume.index,
    BasicCancel: commands.Basic.Cancel.index,
    Publish: commands.Basic.Publish.index,
    BasicGet: commands.Basic.Get.index,
    BasicAck: commands.Basic.Ack.index,
    BasicReject: commands.Basic.Reject.index,
    BasicRecover: commands.Basic.Recover.index,
    BasicNack: commands.Basic.Nack.index,
    ConfirmSelect: commands.Confirm.Select.index,
    TxSelect: commands.Tx.Select.index,
    TxCommit: commands.Tx.Commit.index,
    TxRollback: commands.Tx.Rollback.index,
}


def method_ids(event: object) -> tuple[int, int]:
    """(class id, method id) of the method an event came from, as a close that refuses
    it names them; (0, 0) for an event no single method stands behind."""
    if isinstance(event, BasicRecover) and event.asynchronous:
        index = commands.Basic.RecoverAsync.index  # the one event both methods make
    else:
        index = _METHODS.get(type(event), 0)
    return index >> 16, index & 0xFFFF
