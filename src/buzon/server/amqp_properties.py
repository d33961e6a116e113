"""A message's AMQP properties and its buzon headers, both ways (docs/amqp.md has the table).

The engine keeps a message's headers as text pairs, which is what STOMP and HTTP show.
A message published over AMQP gets:

- one header per standard property, under STOMP-style names (``content-type``,
  ``correlation-id``, ``reply-to``, ...; ``persistent:true`` for delivery mode 2,
  ``priority``), so STOMP and HTTP consumers read them;
- one header per entry of its headers table (text as is; numbers, booleans and the rest as
  their text), likewise;
- ``amqp-properties``: the property list exactly as published (base64), so an AMQP consumer
  gets every property and typed header back byte for byte.

A message published elsewhere reaches AMQP consumers with properties made from its
headers: the standard names become properties, every other header an entry of the
headers table (text).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
from collections.abc import Iterable

from buzon.amqp import Properties, decode_properties, encode_properties
from buzon.amqp.replies import AmqpProtocolError
from buzon.amqp.tables import FieldTable, FieldValue
from buzon.broker import Message
from buzon.broker.addresses import split_address
from buzon.broker.policy import (
    ADDRESS_HEADER,
    DEAD_LETTERED_AT_HEADER,
    ORIGIN_HEADER,
    REASON_HEADER,
)
from buzon.priority import HIGHEST_PRIORITY
from buzon.store import DestinationKind

RAW_HEADER = "amqp-properties"
"""The header that carries an AMQP-published message's property list (base64)."""

PERSISTENT = 2
"""AMQP delivery mode of a persistent message (1: transient)."""

# property attribute <-> header name, for the short-string properties
_TEXT_PROPERTIES = (
    ("content_type", "content-type"),
    ("content_encoding", "content-encoding"),
    ("correlation_id", "correlation-id"),
    ("reply_to", "reply-to"),
    ("expiration", "expiration"),
    ("message_id", "amqp-message-id"),
    ("type", "type"),
    ("user_id", "user-id"),
    ("app_id", "app-id"),
)
_BY_HEADER = {name: attribute for attribute, name in _TEXT_PROPERTIES}
# headers that are never entries of an AMQP headers table
_NOT_TABLE = frozenset(
    {*_BY_HEADER, RAW_HEADER, "persistent", "priority", "expires", "timestamp", "content-length"}
)
# distinct property lists remembered, both ways (a cache, cleared when full)
_REMEMBERED = 512
_HEADERS_OF: dict[bytes, tuple[tuple[str, str], ...]] = {}
_LISTS_OF: dict[str, bytes] = {}
# headers the engine adds after publication (dead-lettering): merged into the table
_ADDED_PREFIXES = ("x-dead-letter-", "x-original-", "x-delivery-count", "x-last-error")


def publish_headers(properties: Properties, raw: bytes) -> tuple[tuple[str, str], ...]:
    """The headers a message published over AMQP keeps (see the module docstring).

    Most publishers send the same property list with every message (a content type, a
    delivery mode): the headers of the last few hundred distinct lists are remembered.
    """
    found = _HEADERS_OF.get(raw)
    if found is None:
        found = _publish_headers(properties, raw)
        if len(_HEADERS_OF) >= _REMEMBERED:
            _HEADERS_OF.clear()
        _HEADERS_OF[raw] = found
    return found


def _publish_headers(properties: Properties, raw: bytes) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for attribute, name in _TEXT_PROPERTIES:
        value = getattr(properties, attribute)
        if value is not None:
            headers.append((name, value))
    if properties.timestamp is not None:
        headers.append(("timestamp", str(properties.timestamp)))
    if properties.delivery_mode is not None:
        headers.append(
            ("persistent", "true" if properties.delivery_mode == PERSISTENT else "false")
        )
    if properties.priority is not None:
        headers.append(("priority", str(min(properties.priority, HIGHEST_PRIORITY))))
    if properties.headers:
        headers += ((name, _text(value)) for name, value in properties.headers.items())
    if raw != b"\x00\x00":
        headers.append((RAW_HEADER, base64.b64encode(raw).decode("ascii")))
    return tuple(headers)


def delivery_properties(message: Message) -> bytes:
    """The property list an AMQP consumer gets for ``message``."""
    raw = _header(message.headers, RAW_HEADER)
    if raw is not None:
        published = _LISTS_OF.get(raw)
        if published is None:
            try:
                published = base64.b64decode(raw, validate=True)
            except binascii.Error:
                published = None
            else:
                if len(_LISTS_OF) >= _REMEMBERED:
                    _LISTS_OF.clear()
                _LISTS_OF[raw] = published
        if published is not None and not _has_added_headers(message.headers):
            return published
        if published is not None:
            return _merged(published, message)
    return encode_properties(_from_headers(message))


def _from_headers(message: Message) -> Properties:
    properties = Properties(
        delivery_mode=PERSISTENT if message.persistent else 1, priority=message.priority
    )
    table: FieldTable = _death(message.headers)
    for name, value in message.headers:
        attribute = _BY_HEADER.get(name)
        if attribute is not None:
            if getattr(properties, attribute) is None and len(value.encode()) <= 255:
                setattr(properties, attribute, value)
        elif name == "timestamp" and value.isdigit():
            properties.timestamp = int(value)
        elif name not in _NOT_TABLE and name not in table:
            table[name] = value
    if table:
        properties.headers = table
    return properties


def _merged(raw: bytes, message: Message) -> bytes:
    """The published properties with the headers the engine added since (dead letters)."""
    try:
        properties = decode_properties(raw)
    except AmqpProtocolError:
        return encode_properties(_from_headers(message))
    table: FieldTable = {**(properties.headers or {}), **_death(message.headers)}
    for name, value in message.headers:
        if name.startswith(_ADDED_PREFIXES) and name not in table:
            table[name] = int(value) if name == "x-delivery-count" and value.isdigit() else value
    properties.headers = table
    return encode_properties(properties)


def _death(headers: tuple[tuple[str, str], ...]) -> FieldTable:
    """``x-death`` for a dead-lettered message (one entry: buzon keeps the last death), as
    AMQP clients read it; empty for any other message."""
    reason = _header(headers, REASON_HEADER)
    origin = _header(headers, ORIGIN_HEADER)
    if reason is None or origin is None:
        return {}
    queue = origin.partition("/queue/")[2]
    published = _header(headers, ADDRESS_HEADER)
    exchange, key = ("", queue) if published is None else exchange_and_key(published)
    death: FieldTable = {
        "count": 1,
        "reason": reason,
        "queue": queue,
        "exchange": exchange,
        "routing-keys": [key],
    }
    at = _header(headers, DEAD_LETTERED_AT_HEADER)
    if at is not None and at.isdigit():
        death["time"] = datetime.datetime.fromtimestamp(int(at) // 1000, datetime.UTC)
    return {"x-death": [death]}


def exchange_and_key(address: str) -> tuple[str, str]:
    """The exchange and routing key of a message published to ``address`` (a queue's
    messages come from the default exchange, keyed by the queue's name)."""
    kind, name, key = split_address(address)
    return ("", name) if kind is DestinationKind.QUEUE else (name, key)


def _has_added_headers(headers: Iterable[tuple[str, str]]) -> bool:
    return any(name.startswith(_ADDED_PREFIXES) for name, _ in headers)


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _text(value: FieldValue) -> str:
    """A header table value as STOMP and HTTP show it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        return str(int(value.timestamp()))
    return repr(value)
