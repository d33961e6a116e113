"""AMQP field tables and arrays: decoding in linear time, encoding without loss.

pamqp's decoder copies the rest of the buffer for every value it reads, so its cost grows
with the square of a table's size: one 128 KiB frame of empty array items took 3 s of CPU
in ``benchmarks/bench_amqp_codec.py`` (a denial of service from any logged-in peer), and
deep nesting ends in ``RecursionError``. This decoder walks one ``memoryview`` with an
offset and stops at :data:`MAX_DEPTH`.

Value types (the RabbitMQ errata set, which every client speaks):

====  ==========================  ==================================
tag   wire                        Python
====  ==========================  ==================================
t     boolean                     ``bool``
b B   int8, uint8                 ``int``
s u   int16, uint16               ``int``
I i   int32, uint32               ``int``
l L   int64, uint64               ``int``
f d   float32, float64            ``float``
D     decimal (scale, int32)      ``decimal.Decimal``
S     long string                 ``str`` (``bytes`` when not UTF-8)
x     byte array                  ``bytes``
T     timestamp (seconds, u64)    ``datetime`` (UTC)
A     array                       ``list``
F     table                       ``dict``
V     void                        ``None``
====  ==========================  ==================================

Encoding picks one tag per Python type: ``t``, ``I`` (or ``l`` beyond 32 bits), ``d``,
``D``, ``S``, ``x``, ``T``, ``A``, ``F``, ``V``, so ``decode(encode(v)) == v``.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Callable
from typing import TypeAlias

from buzon.amqp.replies import AmqpProtocolError, ReplyCode

FieldValue: TypeAlias = (
    "bool | int | float | decimal.Decimal | str | bytes | datetime.datetime"
    " | list[FieldValue] | dict[str, FieldValue] | None"
)
FieldTable: TypeAlias = "dict[str, FieldValue]"

MAX_DEPTH = 32
"""Tables and arrays nest at most this deep (``x-death`` headers use three levels)."""

_U32 = struct.Struct(">I")
_SCALARS: dict[int, struct.Struct] = {
    ord(tag): struct.Struct(">" + code)
    for tag, code in (
        ("b", "b"),
        ("B", "B"),
        ("s", "h"),
        ("u", "H"),
        ("I", "i"),
        ("i", "I"),
        ("l", "q"),
        ("L", "Q"),
        ("f", "f"),
        ("d", "d"),
    )
}
_DECIMAL = struct.Struct(">Bi")
_TIMESTAMP = struct.Struct(">Q")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)


def _malformed(text: str) -> AmqpProtocolError:
    return AmqpProtocolError(ReplyCode.SYNTAX_ERROR, text)


def _truncated() -> AmqpProtocolError:
    return _malformed("field table truncated")


def _sized_end(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Read a 4-byte size at ``pos``: ``(start, stop)`` of what it measures."""
    if pos + 4 > end:
        raise _truncated()
    start = pos + 4
    stop = start + _U32.unpack(buf[pos:start])[0]
    if stop > end:
        raise _truncated()
    return start, stop


def _long_string(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    start, stop = _sized_end(buf, pos, end)
    raw = bytes(buf[start:stop])
    try:
        return raw.decode(), stop
    except UnicodeDecodeError:
        return raw, stop


def _byte_array(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    start, stop = _sized_end(buf, pos, end)
    return bytes(buf[start:stop]), stop


def _decimal(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    if pos + 5 > end:
        raise _truncated()
    scale, value = _DECIMAL.unpack(buf[pos : pos + 5])
    return decimal.Decimal(value).scaleb(-scale), pos + 5


def _timestamp(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    if pos + 8 > end:
        raise _truncated()
    seconds: int = _TIMESTAMP.unpack(buf[pos : pos + 8])[0]
    try:
        return _EPOCH + datetime.timedelta(seconds=seconds), pos + 8
    except OverflowError as exc:
        raise _malformed(f"timestamp {seconds} out of range") from exc


def _boolean(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    if pos >= end:
        raise _truncated()
    return buf[pos] != 0, pos + 1


def _void(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    return None, pos


def _array(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    pos, stop = _sized_end(buf, pos, end)
    items: list[FieldValue] = []
    while pos < stop:
        item, pos = _value(buf, pos, stop, depth + 1)
        items.append(item)
    return items, stop


def _table(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldTable, int]:
    pos, stop = _sized_end(buf, pos, end)
    table: FieldTable = {}
    while pos < stop:
        name_end = pos + 1 + buf[pos]
        if name_end > stop:
            raise _truncated()
        try:
            name = str(buf[pos + 1 : name_end], "utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed("field name is not UTF-8") from exc
        table[name], pos = _value(buf, name_end, stop, depth + 1)
    return table, stop


_Decoder = Callable[[memoryview, int, int, int], "tuple[FieldValue, int]"]
_DECODERS: dict[int, _Decoder] = {
    ord("t"): _boolean,
    ord("D"): _decimal,
    ord("S"): _long_string,
    ord("x"): _byte_array,
    ord("T"): _timestamp,
    ord("A"): _array,
    ord("F"): _table,
    ord("V"): _void,
}


def _value(buf: memoryview, pos: int, end: int, depth: int) -> tuple[FieldValue, int]:
    if depth > MAX_DEPTH:
        raise _malformed(f"field tables nested deeper than {MAX_DEPTH}")
    if pos >= end:
        raise _truncated()
    tag = buf[pos]
    scalar = _SCALARS.get(tag)
    if scalar is not None:
        stop = pos + 1 + scalar.size
        if stop > end:
            raise _truncated()
        number: int | float = scalar.unpack(buf[pos + 1 : stop])[0]
        return number, stop
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise _malformed(f"unknown field type {tag:#04x}")
    return decoder(buf, pos + 1, end, depth)


def decode_table(buf: memoryview, pos: int, end: int) -> tuple[FieldTable, int]:
    """Decode the field table at ``buf[pos:]``, not reading past ``end``.

    Returns:
        The table, and the offset just after it.

    Raises:
        AmqpProtocolError: SYNTAX_ERROR for a truncated or malformed table.
    """
    return _table(buf, pos, end, 0)


# -- encoding --------------------------------------------------------------------------------


def _encode_int(value: int, out: list[bytes]) -> None:
    if value in _INT32:
        out.append(b"I" + _SCALARS[ord("I")].pack(value))
    elif value in _INT64:
        out.append(b"l" + _SCALARS[ord("l")].pack(value))
    else:
        raise ValueError(f"integer {value} does not fit 64 bits")


def _encode_decimal(value: decimal.Decimal, out: list[bytes]) -> None:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not -255 <= exponent <= 0:
        raise ValueError(f"decimal {value} has no AMQP form (0 to 255 places)")
    number = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if number not in _INT32:
        raise ValueError(f"decimal {value} has more digits than 32 bits hold")
    out.append(b"D" + _DECIMAL.pack(-exponent, number))


def _encode_datetime(value: datetime.datetime, out: list[bytes]) -> None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    seconds = (value - _EPOCH) // datetime.timedelta(seconds=1)
    if seconds < 0:
        raise ValueError(f"timestamp {value} is before 1970")
    out.append(b"T" + _TIMESTAMP.pack(seconds))


def _encode_value(value: FieldValue, out: list[bytes]) -> None:  # noqa: C901 (one branch a type)
    if isinstance(value, bool):
        out.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, int):
        _encode_int(value, out)
    elif isinstance(value, float):
        out.append(b"d" + _SCALARS[ord("d")].pack(value))
    elif isinstance(value, str):
        raw = value.encode()
        out += (b"S", _U32.pack(len(raw)), raw)
    elif isinstance(value, bytes):
        out += (b"x", _U32.pack(len(value)), value)
    elif isinstance(value, decimal.Decimal):
        _encode_decimal(value, out)
    elif isinstance(value, datetime.datetime):
        _encode_datetime(value, out)
    elif isinstance(value, dict):
        out.append(b"F" + encode_table(value))
    elif isinstance(value, list):
        out.append(b"A" + _sized([part for item in value for part in _encoded(item)]))
    elif value is None:
        out.append(b"V")
    else:
        raise ValueError(f"{type(value).__name__} has no AMQP field type")


def _encoded(value: FieldValue) -> list[bytes]:
    out: list[bytes] = []
    _encode_value(value, out)
    return out


def _sized(parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_table(table: FieldTable) -> bytes:
    """Encode a field table, its 4-byte size first.

    Raises:
        ValueError: a name is over 255 bytes, or a value has no AMQP form (our own bug:
            values from a peer always fit).
    """
    parts: list[bytes] = []
    for name, value in table.items():
        raw = name.encode()
        if len(raw) > 255:
            raise ValueError(f"field name {name[:40]!r}... is over 255 bytes")
        parts += (bytes((len(raw),)), raw)
        _encode_value(value, parts)
    return _sized(parts)
