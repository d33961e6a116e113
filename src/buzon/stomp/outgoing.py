"""Typed events to wire bytes, for :meth:`StompConnection.send`.

Each encoder writes the event's own fields as headers first, then the extra headers the
event carries, minus any that would repeat or contradict those fields. It returns a tuple
of byte strings, so a large MESSAGE body is copied only by the connection's final join.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from buzon.stomp.escaping import escape
from buzon.stomp.events import (
    Abort,
    Ack,
    Begin,
    Commit,
    Disconnect,
    Error,
    Message,
    Nack,
    Receipt,
    Send,
    Subscribe,
    Unsubscribe,
)
from buzon.stomp.frame import Command, Frame, Headers
from buzon.stomp.serializer import message_chunks, serialize

Chunks = tuple[bytes, ...]


def frame_with(
    command: Command,
    fields: Sequence[tuple[str, str | None]],
    extra: Headers = (),
    body: bytes = b"",
) -> Frame:
    """Build a frame from named fields (None = leave out) and extra headers.

    Extra headers named like a field, or ``content-length``, are dropped: the fields are
    the truth, and the serialiser writes the length.
    """
    headers = [(name, value) for name, value in fields if value is not None]
    if extra:
        own = {name for name, _ in fields} | {"content-length"}
        headers += [pair for pair in extra if pair[0] not in own]
    return Frame(command, tuple(headers), body)


def _send(event: Send) -> Chunks:
    fields = [
        ("destination", event.destination),
        ("transaction", event.transaction),
        ("receipt", event.receipt),
    ]
    return (serialize(frame_with(Command.SEND, fields, event.headers, event.body)),)


def _subscribe(event: Subscribe) -> Chunks:
    fields = [
        ("destination", event.destination),
        ("id", event.id),
        ("ack", event.ack),
        ("receipt", event.receipt),
    ]
    return (serialize(frame_with(Command.SUBSCRIBE, fields, event.headers)),)


def _unsubscribe(event: Unsubscribe) -> Chunks:
    fields = [("id", event.id), ("receipt", event.receipt)]
    return (serialize(frame_with(Command.UNSUBSCRIBE, fields, event.headers)),)


def _ack(event: Ack | Nack) -> Chunks:
    command = Command.ACK if isinstance(event, Ack) else Command.NACK
    fields = [("id", event.id), ("transaction", event.transaction), ("receipt", event.receipt)]
    # a NACK's own headers say what it asks of the broker (requeue, requeue-delay, error)
    extra = event.headers if isinstance(event, Nack) else ()
    return (serialize(frame_with(command, fields, extra)),)


def _transaction(command: Command) -> Callable[[Begin | Commit | Abort], Chunks]:
    def encode(event: Begin | Commit | Abort) -> Chunks:
        fields = [("transaction", event.transaction), ("receipt", event.receipt)]
        return (serialize(frame_with(command, fields)),)

    return encode


def _disconnect(event: Disconnect) -> Chunks:
    return (serialize(frame_with(Command.DISCONNECT, [("receipt", event.receipt)])),)


def _message(event: Message) -> Chunks:
    return message_chunks(
        event.destination,
        event.message_id,
        event.subscription,
        event.ack,
        event.headers,
        event.body,
        event.redelivered,
    )


def _receipt(event: Receipt) -> Chunks:
    # Receipts follow many SENDs, so skip building a Frame.
    return (f"RECEIPT\nreceipt-id:{escape(event.receipt_id)}\n\n\0".encode(),)


def _error(event: Error) -> Chunks:
    fields = [("message", event.message), ("receipt-id", event.receipt_id)]
    return (serialize(frame_with(Command.ERROR, fields, event.headers, event.body)),)


ENCODERS: Final[Mapping[type[Any], tuple[Command, Callable[[Any], Chunks]]]] = MappingProxyType(
    {
        Send: (Command.SEND, _send),
        Subscribe: (Command.SUBSCRIBE, _subscribe),
        Unsubscribe: (Command.UNSUBSCRIBE, _unsubscribe),
        Ack: (Command.ACK, _ack),
        Nack: (Command.NACK, _ack),
        Begin: (Command.BEGIN, _transaction(Command.BEGIN)),
        Commit: (Command.COMMIT, _transaction(Command.COMMIT)),
        Abort: (Command.ABORT, _transaction(Command.ABORT)),
        Disconnect: (Command.DISCONNECT, _disconnect),
        Message: (Command.MESSAGE, _message),
        Receipt: (Command.RECEIPT, _receipt),
        Error: (Command.ERROR, _error),
    }
)
"""``event type -> (command, encoder)`` for every event :meth:`StompConnection.send` takes."""
