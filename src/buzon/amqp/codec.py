"""AMQP 0-9-1 frames and method arguments, driven by pamqp's generated spec.

pamqp 4.0.1 (the codec of aio-pika's stack) was evaluated as the wire codec with
``benchmarks/bench_amqp_codec.py`` and malformed input. What it gets right, and what we
take from it: every class and method id, each method's argument names and types in spec
order (generated from the spec XML), the 14 property flags, and a client-side encoder
the tests use as an independent reference. What rules it out for the server's input:

- Its field-table decoder copies the rest of the buffer for every value, so its cost is
  quadratic: one 128 KiB frame holding an array of 130,000 voids took 1 to 7 s of CPU
  (65,000 void table entries: 2 to 3.5 s) on this 2-core machine; ours takes 0.07 to
  0.3 s for the same frame. Any logged-in peer could stall the event loop with it.
- Deep nesting raises ``RecursionError`` out of ``frame.unmarshal``, not its
  ``UnmarshalingException`` (every other malformed input we tried is wrapped: truncated
  arguments, bad UTF-8, unknown ids and field types, out-of-range timestamps).
- It does not bound anything: a frame header announcing 4 GiB is just "not all data
  received", so a caller buffering until a frame is whole would buffer 4 GiB.
- ``Frame.marshal`` validates names against the 0-9-1 regex and a 127-byte cap, so echoing
  a name a client was allowed to use (``basic.deliver`` for queue ``cola ñ``) would raise.
- Tables: byte arrays decode to ``bytearray`` but only ``bytearray`` encodes, ``S``
  strings that are not UTF-8 decode to ``bytes`` that cannot be encoded again, integers
  are re-encoded at the smallest width, and timestamps above 2^32 are read as ms.
- Speed, per 128 B message (µs, best of 5, machine shared with other work, so only the
  ratio is stable): in, ``basic.publish`` + header + body: pamqp's unmarshal alone 14 to
  29, ``AmqpConnection`` with assembly into a ``Publish`` event 9 to 22; out,
  ``basic.deliver`` + header + body: pamqp 13 to 28, :func:`deliver_frames` 6 (it
  reuses the publish's raw property list instead of encoding properties again).

So pamqp is a dependency for the spec, and this module reads arguments with one loop over
a ``memoryview`` (bounded, linear, every read checked) and writes them without validation.
Hand-written fast paths exist for the two hot shapes only: :func:`decode_publish` and
:func:`deliver_frames`.
"""

from __future__ import annotations

import struct
from typing import Final

from pamqp import base, commands

from buzon.amqp.replies import AmqpProtocolError, ReplyCode
from buzon.amqp.tables import FieldTable, decode_table, encode_table

FRAME_METHOD: Final = 1
FRAME_HEADER: Final = 2
FRAME_BODY: Final = 3
FRAME_HEARTBEAT: Final = 8
FRAME_OVERHEAD: Final = 8
"""Bytes a frame adds around its payload: type, channel, size, and the end octet."""
FRAME_MIN_SIZE: Final = 4096
"""The smallest ``frame_max`` a peer may ask for, and the largest frame before tuning."""

PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME: Final = b"\x08\x00\x00\x00\x00\x00\x00\xce"

Method = type[base.Frame]
"""A method is named by its pamqp class, e.g. ``commands.Queue.DeclareOk``."""

_FRAME_HEAD = struct.Struct(">BHI")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_CONTENT_HEAD = struct.Struct(">HHQ")
_BASIC = commands.Basic.frame_id


def method_name(method: Method) -> str:
    """The spec's name of a method, e.g. ``queue.declare-ok``."""
    cls, _, name = method.name.partition(".")
    words = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    return f"{cls.lower()}.{words}"


METHODS: Final[dict[int, Method]] = {
    index: method
    for index, method in commands.INDEX_MAPPING.items()
    if issubclass(method, base.Frame)
}
"""``class_id << 16 | method_id`` -> method, for every method of 0-9-1."""

_FIELDS: dict[Method, tuple[tuple[str, str], ...]] = {
    method: tuple((slot, method.amqp_type(slot)) for slot in method.__slots__)
    for method in METHODS.values()
}


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One frame around ``payload``."""
    return b"".join((_FRAME_HEAD.pack(frame_type, channel, len(payload)), payload, b"\xce"))


# -- method arguments in -------------------------------------------------------------------


class Arguments:
    """A decoded method's arguments by their spec name (``queue``, ``no_ack``, ...).

    The accessors say what type the spec gives an argument; asking for the wrong one is
    our own bug and raises ``TypeError``.
    """

    __slots__ = ("values",)

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def text(self, name: str) -> str:
        value = self.values[name]
        if not isinstance(value, str):
            raise TypeError(f"{name} is not a string")
        return value

    def raw(self, name: str) -> bytes:
        value = self.values[name]
        if not isinstance(value, bytes):
            raise TypeError(f"{name} is not a long string")
        return value

    def number(self, name: str) -> int:
        value = self.values[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is not a number")
        return value

    def flag(self, name: str) -> bool:
        value = self.values[name]
        if not isinstance(value, bool):
            raise TypeError(f"{name} is not a bit")
        return value

    def table(self, name: str) -> FieldTable:
        value = self.values[name]
        if not isinstance(value, dict):
            raise TypeError(f"{name} is not a table")
        return value


def _truncated(method: Method) -> AmqpProtocolError:
    return AmqpProtocolError(ReplyCode.SYNTAX_ERROR, f"{method_name(method)} truncated")


def _short_string(method: Method, buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    if pos >= end or pos + 1 + buf[pos] > end:
        raise _truncated(method)
    stop = pos + 1 + buf[pos]
    try:
        return str(buf[pos + 1 : stop], "utf-8"), stop
    except UnicodeDecodeError as exc:
        text = f"{method_name(method)}: a short string is not UTF-8"
        raise AmqpProtocolError(ReplyCode.SYNTAX_ERROR, text) from exc


_WIDTHS = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}


def _number(method: Method, kind: str, buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    width = _WIDTHS[kind]
    if pos + width > end:
        raise _truncated(method)
    return int.from_bytes(buf[pos : pos + width]), pos + width


def _argument(method: Method, kind: str, buf: memoryview, pos: int, end: int) -> tuple[object, int]:
    if kind == "shortstr":
        return _short_string(method, buf, pos, end)
    if kind == "longstr":
        size, pos = _number(method, "long", buf, pos, end)
        if pos + size > end:
            raise _truncated(method)
        return bytes(buf[pos : pos + size]), pos + size
    if kind == "table":
        return decode_table(buf, pos, end)
    return _number(method, kind, buf, pos, end)


def decode_method(payload: memoryview) -> tuple[Method, Arguments]:
    """Decode a method frame's payload.

    Raises:
        AmqpProtocolError: NOT_IMPLEMENTED for ids 0-9-1 does not define (the ids are in
            the text); SYNTAX_ERROR for truncated or malformed arguments.
    """
    end = len(payload)
    if end < 4:
        raise AmqpProtocolError(ReplyCode.FRAME_ERROR, "method frame shorter than its ids")
    index = int.from_bytes(payload[:4])
    method = METHODS.get(index)
    if method is None:
        text = f"unknown method: class {index >> 16}, method {index & 0xFFFF}"
        raise AmqpProtocolError(ReplyCode.NOT_IMPLEMENTED, text)
    values: dict[str, object] = {}
    pos, bit = 4, 8
    for name, kind in _FIELDS[method]:
        if kind != "bit":
            bit = 8
            values[name], pos = _argument(method, kind, payload, pos, end)
            continue
        if bit == 8:
            if pos >= end:
                raise _truncated(method)
            bit, pos = 0, pos + 1
        values[name] = bool(payload[pos - 1] >> bit & 1)
        bit += 1
    return method, Arguments(values)


def decode_publish(payload: memoryview) -> tuple[str, str, bool, bool]:
    """``basic.publish``'s ``(exchange, routing_key, mandatory, immediate)``; the hot path.

    The caller has checked the ids. Same errors as :func:`decode_method`.
    """
    method, end = commands.Basic.Publish, len(payload)
    exchange, pos = _short_string(method, payload, 6, end)
    routing_key, pos = _short_string(method, payload, pos, end)
    if pos >= end:
        raise _truncated(method)
    bits = payload[pos]
    return exchange, routing_key, bool(bits & 1), bool(bits & 2)


PUBLISH_INDEX: Final = commands.Basic.Publish.index


def decode_content_header(payload: memoryview) -> tuple[int, int, bytes]:
    """A content header's ``(class_id, body_size, property list)``.

    Raises:
        AmqpProtocolError: FRAME_ERROR when shorter than its fixed part.
    """
    if len(payload) < _CONTENT_HEAD.size + 2:
        raise AmqpProtocolError(ReplyCode.FRAME_ERROR, "content header truncated")
    class_id, _weight, body_size = _CONTENT_HEAD.unpack(payload[: _CONTENT_HEAD.size])
    return class_id, body_size, bytes(payload[_CONTENT_HEAD.size :])


# -- frames out ------------------------------------------------------------------------------


def _encode_argument(kind: str, value: object, out: list[bytes]) -> None:
    if kind == "shortstr":
        raw = str(value).encode()
        if len(raw) > 255:
            raise ValueError(f"short string over 255 bytes: {raw[:40]!r}...")
        out += (bytes((len(raw),)), raw)
    elif kind == "longstr":
        raw = value if isinstance(value, bytes) else str(value).encode()
        out += (_U32.pack(len(raw)), raw)
    elif kind == "table":
        out.append(encode_table(value if isinstance(value, dict) else {}))
    elif isinstance(value, int):
        out.append(value.to_bytes(_WIDTHS[kind]))
    else:
        raise TypeError(f"{kind} argument {value!r} is not a number")


def method_frame(channel: int, method: Method, *values: object) -> bytes:
    """A method frame; ``values`` are the arguments in spec order (``ticket`` included).

    Raises:
        ValueError, TypeError, OverflowError: a value does not fit its argument (our bug).
    """
    fields = _FIELDS[method]
    if len(values) != len(fields):
        raise TypeError(f"{method_name(method)} takes {len(fields)} arguments")
    out = [_U32.pack(method.index)]
    bits = bit = 0
    for (_, kind), value in zip(fields, values, strict=True):
        if kind == "bit":
            bits |= bool(value) << bit
            bit += 1
            if bit < 8:
                continue
        if bit:
            out.append(bytes((bits,)))
            bits = bit = 0
        if kind != "bit":
            _encode_argument(kind, value, out)
    if bit:
        out.append(bytes((bits,)))
    return frame(FRAME_METHOD, channel, b"".join(out))


def content_frames(channel: int, properties: bytes, body: bytes, frame_max: int) -> list[bytes]:
    """A content header and the body frames after it, each at most ``frame_max`` long.

    The pieces are returned separately, so a body that fits one frame is not copied
    until the connection joins its output. The pieces of the latest call are kept: a
    fan-out delivers one message (the same ``properties`` and ``body`` objects) to many
    consumers in a row, and each gets the same pieces without building them again.
    """
    global _last_content
    last = _last_content
    if last[1] is properties and last[2] is body and last[0] == (channel, frame_max):
        return last[3]
    pieces = [frame(FRAME_HEADER, channel, _CONTENT_HEAD.pack(_BASIC, 0, len(body)) + properties)]
    step = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), step):
        chunk = body[start : start + step] if len(body) > step else body
        pieces += (_FRAME_HEAD.pack(FRAME_BODY, channel, len(chunk)), chunk, b"\xce")
    _last_content = ((channel, frame_max), properties, body, pieces)
    return pieces


# (channel, frame max), properties, body, their pieces: the latest content_frames
_last_content: tuple[tuple[int, int], bytes, bytes, list[bytes]] = ((-1, 0), b"", b"", [])

_DELIVER_INDEX = _U32.pack(commands.Basic.Deliver.index)


def deliver_frames(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> list[bytes]:
    """``basic.deliver`` with its content; the hot path, written without the spec loop.

    Raises:
        ValueError: a name is over 255 bytes in UTF-8 (our bug).
    """
    tag, ex, key = consumer_tag.encode(), exchange.encode(), routing_key.encode()
    if max(len(tag), len(ex), len(key)) > 255:
        raise ValueError("consumer tag, exchange or routing key over 255 bytes")
    args = b"".join(
        (
            _DELIVER_INDEX,
            bytes((len(tag),)),
            tag,
            _U64.pack(delivery_tag),
            b"\x01" if redelivered else b"\x00",
            bytes((len(ex),)),
            ex,
            bytes((len(key),)),
            key,
        )
    )
    return [
        _FRAME_HEAD.pack(FRAME_METHOD, channel, len(args)),
        args,
        b"\xce",
        *content_frames(channel, properties, body, frame_max),
    ]
