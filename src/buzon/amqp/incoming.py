"""Decoded client methods to typed events, and the two SASL mechanisms.

Only methods a client sends on an open channel are here; the connection handles the
handshake, ``channel.*`` and ``connection.close`` itself, and ``basic.publish`` through
its content assembly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from pamqp import commands as c

from buzon.amqp import events as ev
from buzon.amqp.codec import Arguments, Method
from buzon.amqp.replies import AmqpProtocolError, ReplyCode
from buzon.amqp.tables import decode_table

Builder = Callable[[int, Arguments], ev.Event]


def _exchange_declare(ch: int, a: Arguments) -> ev.Event:
    return ev.ExchangeDeclare(
        ch,
        a.text("exchange"),
        a.text("exchange_type"),
        a.flag("passive"),
        a.flag("durable"),
        a.flag("auto_delete"),
        a.flag("internal"),
        a.flag("nowait"),
        a.table("arguments"),
    )


def _queue_declare(ch: int, a: Arguments) -> ev.Event:
    return ev.QueueDeclare(
        ch,
        a.text("queue"),
        a.flag("passive"),
        a.flag("durable"),
        a.flag("exclusive"),
        a.flag("auto_delete"),
        a.flag("nowait"),
        a.table("arguments"),
    )


def _basic_consume(ch: int, a: Arguments) -> ev.Event:
    return ev.BasicConsume(
        ch,
        a.text("queue"),
        a.text("consumer_tag"),
        a.flag("no_local"),
        a.flag("no_ack"),
        a.flag("exclusive"),
        a.flag("nowait"),
        a.table("arguments"),
    )


CHANNEL_METHODS: Final[Mapping[Method, Builder]] = MappingProxyType(
    {
        c.Exchange.Declare: _exchange_declare,
        c.Exchange.Delete: lambda ch, a: ev.ExchangeDelete(
            ch, a.text("exchange"), a.flag("if_unused"), a.flag("nowait")
        ),
        c.Queue.Declare: _queue_declare,
        c.Queue.Bind: lambda ch, a: ev.QueueBind(
            ch,
            a.text("queue"),
            a.text("exchange"),
            a.text("routing_key"),
            a.flag("nowait"),
            a.table("arguments"),
        ),
        c.Queue.Unbind: lambda ch, a: ev.QueueUnbind(
            ch, a.text("queue"), a.text("exchange"), a.text("routing_key"), a.table("arguments")
        ),
        c.Queue.Purge: lambda ch, a: ev.QueuePurge(ch, a.text("queue"), a.flag("nowait")),
        c.Queue.Delete: lambda ch, a: ev.QueueDelete(
            ch, a.text("queue"), a.flag("if_unused"), a.flag("if_empty"), a.flag("nowait")
        ),
        c.Basic.Qos: lambda ch, a: ev.BasicQos(
            ch, a.number("prefetch_size"), a.number("prefetch_count"), a.flag("global_")
        ),
        c.Basic.Consume: _basic_consume,
        c.Basic.Cancel: lambda ch, a: ev.BasicCancel(ch, a.text("consumer_tag"), a.flag("nowait")),
        c.Basic.Get: lambda ch, a: ev.BasicGet(ch, a.text("queue"), a.flag("no_ack")),
        c.Basic.Ack: lambda ch, a: ev.BasicAck(ch, a.number("delivery_tag"), a.flag("multiple")),
        c.Basic.Nack: lambda ch, a: ev.BasicNack(
            ch, a.number("delivery_tag"), a.flag("multiple"), a.flag("requeue")
        ),
        c.Basic.Reject: lambda ch, a: ev.BasicReject(
            ch, a.number("delivery_tag"), a.flag("requeue")
        ),
        c.Basic.Recover: lambda ch, a: ev.BasicRecover(ch, a.flag("requeue"), False),
        c.Basic.RecoverAsync: lambda ch, a: ev.BasicRecover(ch, a.flag("requeue"), True),
        c.Confirm.Select: lambda ch, a: ev.ConfirmSelect(ch, a.flag("nowait")),
        c.Tx.Select: lambda ch, a: ev.TxSelect(ch),
        c.Tx.Commit: lambda ch, a: ev.TxCommit(ch),
        c.Tx.Rollback: lambda ch, a: ev.TxRollback(ch),
    }
)
"""Client methods on an open channel that become an event as they are."""


def _refused(text: str) -> AmqpProtocolError:
    return AmqpProtocolError(ReplyCode.ACCESS_REFUSED, text)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise _refused(f"the {what} is not UTF-8") from exc


def parse_credentials(mechanism: str, response: bytes) -> tuple[str, str]:
    """``(username, password)`` from a SASL response.

    PLAIN is ``authzid NUL username NUL password`` (RFC 4616; the authzid must be empty
    or the username); AMQPLAIN is a field table body with ``LOGIN`` and ``PASSWORD``.

    Raises:
        AmqpProtocolError: ACCESS_REFUSED for another mechanism or a malformed response.
    """
    if mechanism == "PLAIN":
        parts = response.split(b"\x00")
        if len(parts) != 3 or parts[0] not in (b"", parts[1]):
            raise _refused("PLAIN response is not [authzid] NUL username NUL password")
        return _utf8(parts[1], "username"), _utf8(parts[2], "password")
    if mechanism == "AMQPLAIN":
        # the response is a table without its size prefix
        raw = len(response).to_bytes(4) + response
        try:
            table, _ = decode_table(memoryview(raw), 0, len(raw))
        except AmqpProtocolError as exc:
            raise _refused(f"AMQPLAIN response is not a field table: {exc.text}") from exc
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if not isinstance(login, str) or not isinstance(password, str):
            raise _refused("AMQPLAIN response needs LOGIN and PASSWORD strings")
        return login, password
    raise _refused(f"mechanism {mechanism[:40]!r} not offered (PLAIN, AMQPLAIN)")
