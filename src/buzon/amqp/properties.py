"""The 13 basic properties of a message, and their wire form in a content header.

A content header's payload after class, weight and body size is the *property list*: a
16-bit flag word saying which properties follow, then each present one in spec order.
:class:`~buzon.amqp.events.Publish` carries that list as received (``raw_properties``),
so a broker can store it and send it back out in ``basic.deliver`` byte for byte:
header tables keep their exact integer widths, and nothing is decoded or encoded twice.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from buzon.amqp.replies import AmqpProtocolError, ReplyCode
from buzon.amqp.tables import FieldTable, decode_table, encode_table


@dataclass(slots=True)
class Properties:
    """The basic properties of a message; None = absent.

    ``timestamp`` is the wire value, seconds since 1970. The deprecated 14th property,
    ``cluster-id``, is skipped when read and never written.
    """

    content_type: str | None = None
    content_encoding: str | None = None
    headers: FieldTable | None = None
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None


# (flag bit, kind) in spec order; cluster-id (bit 2) is read and dropped.
_SHORTSTR, _TABLE, _OCTET, _TIMESTAMP, _CLUSTER_ID = range(5)
_LAYOUT = (
    ("content_type", 0x8000, _SHORTSTR),
    ("content_encoding", 0x4000, _SHORTSTR),
    ("headers", 0x2000, _TABLE),
    ("delivery_mode", 0x1000, _OCTET),
    ("priority", 0x0800, _OCTET),
    ("correlation_id", 0x0400, _SHORTSTR),
    ("reply_to", 0x0200, _SHORTSTR),
    ("expiration", 0x0100, _SHORTSTR),
    ("message_id", 0x0080, _SHORTSTR),
    ("timestamp", 0x0040, _TIMESTAMP),
    ("type", 0x0020, _SHORTSTR),
    ("user_id", 0x0010, _SHORTSTR),
    ("app_id", 0x0008, _SHORTSTR),
    ("cluster_id", 0x0004, _CLUSTER_ID),
)
_KNOWN_FLAGS = sum(flag for _, flag, _ in _LAYOUT)
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")

EMPTY = b"\x00\x00"
"""The property list of a message without properties."""


def _short_string(buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    stop = pos + 1 + buf[pos] if pos < end else end + 1
    if stop > end:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, "content header truncated")
    try:
        return str(buf[pos + 1 : stop], "utf-8"), stop
    except UnicodeDecodeError as exc:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, "property is not UTF-8") from exc


def _read(kind: int, buf: memoryview, pos: int, end: int) -> tuple[object, int]:
    if kind in (_SHORTSTR, _CLUSTER_ID):
        return _short_string(buf, pos, end)
    if kind == _TABLE:
        return decode_table(buf, pos, end)
    size = 1 if kind == _OCTET else 8
    if pos + size > end:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, "content header truncated")
    value = buf[pos] if kind == _OCTET else _U64.unpack(buf[pos : pos + 8])[0]
    return value, pos + size


@functools.cache
def _plan(flags: int) -> tuple[tuple[str, int], ...]:
    """The properties a flag word announces, in order (a few flag words recur)."""
    return tuple((name, kind) for name, flag, kind in _LAYOUT if flags & flag)


def decode_properties(raw: bytes) -> Properties:
    """Decode a property list (flags, then values), as a content header carries it.

    Raises:
        AmqpProtocolError: SYNTAX_ERROR when truncated, malformed, followed by stray
            bytes, or flagging a property 0-9-1 does not define.
    """
    buf = memoryview(raw)
    end = len(buf)
    if end < 2:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, "content header truncated")
    flags: int = _U16.unpack(buf[:2])[0]
    if flags & ~_KNOWN_FLAGS:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, f"unknown property flags {flags:#06x}")
    props = Properties()
    pos = 2
    for name, kind in _plan(flags):
        value, pos = _read(kind, buf, pos, end)
        if kind != _CLUSTER_ID:
            setattr(props, name, value)
    if pos != end:
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, "stray bytes after the properties")
    return props


def encode_properties(props: Properties) -> bytes:
    """Encode properties as a property list (what ``deliver`` and friends take).

    Raises:
        ValueError: a string is over 255 bytes in UTF-8, an octet or timestamp is out of
            range, or a header value has no AMQP form (our own bug).
    """
    flags = 0
    parts: list[bytes] = []
    for name, flag, kind in _LAYOUT[:-1]:
        value = getattr(props, name)
        if value is None:
            continue
        flags |= flag
        if kind == _SHORTSTR:
            raw = value.encode()
            if len(raw) > 255:
                raise ValueError(f"property {name} is over 255 bytes")
            parts += (bytes((len(raw),)), raw)
        elif kind == _TABLE:
            parts.append(encode_table(value))
        elif kind == _OCTET:
            parts.append(bytes((value,)))
        else:
            parts.append(_U64.pack(value))
    return _U16.pack(flags) + b"".join(parts)
