"""The AMQP 0-9-1 bytes of the AMQP load generator, without sockets.

pamqp builds and decodes every frame once or rarely (the handshake, declarations, closes);
the few frames of the hot path are byte templates made from pamqp's output when a run
starts (a publish: method, content header and body frame around the body) or packed with
``struct`` (an ack), and the few the broker sends on it (deliver, content header and body,
ack, nack) are read at fixed offsets. So a message costs the load generator a ``bytes``
join and a few ``struct`` calls, not a pamqp object.

A message's body starts with its sequence number and its send time (``perf_counter_ns``),
so the receiver can check it and time it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pamqp import commands, frame
from pamqp.base import Frame
from pamqp.header import ContentHeader

METHOD, HEADER, BODY, HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
FRAME_HEAD = struct.Struct(">BHI")  # type, channel, payload size
METHOD_IDS = struct.Struct(">HH")  # class, method
LONGLONG = struct.Struct(">Q")
STAMP = struct.Struct(">QQ")  # a body's first bytes: sequence number, send time (ns)
ACK = struct.Struct(">BHIHHQB")  # a whole basic.ack frame but its end octet
ACK_SIZE = 2 + 2 + 8 + 1  # class, method, delivery tag, bits
BASIC = 60
DELIVER, ACK_METHOD, NACK, RETURN = 60, 80, 120, 50


class ProtocolFailure(Exception):
    """The broker sent something this load generator cannot take (a nack, a close, a
    frame it did not expect); the message says what."""


def marshal(method: Frame, channel: int) -> bytes:
    return frame.marshal(method, channel)


@dataclass(frozen=True)
class PublishTemplate:
    """Every publish of a run as bytes: ``message(seq, ts)`` is the three frames of one."""

    head: bytes  # basic.publish, the content header, the body frame's header
    padding: bytes

    @classmethod
    def build(
        cls, channel: int, exchange: str, routing_key: str, size: int, persistent: bool
    ) -> PublishTemplate:
        if size < STAMP.size:
            raise ValueError(f"messages must be at least {STAMP.size} bytes, not {size}")
        properties = commands.Basic.Properties(delivery_mode=2 if persistent else 1)
        content = frame.marshal(ContentHeader(0, size, properties), channel)
        publish = frame.marshal(
            commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel
        )
        head = publish + content + FRAME_HEAD.pack(BODY, channel, size)
        return cls(head, b"x" * (size - STAMP.size) + bytes([FRAME_END]))

    def message(self, seq: int, sent_ns: int) -> bytes:
        return self.head + STAMP.pack(seq, sent_ns) + self.padding


def ack_frame(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    return ACK.pack(METHOD, channel, ACK_SIZE, BASIC, ACK_METHOD, delivery_tag, multiple) + b"\xce"


def stamp(body: bytes) -> tuple[int, int]:
    """A body's sequence number and send time."""
    seq, sent_ns = STAMP.unpack_from(body)
    return int(seq), int(sent_ns)


def deliver_tag(payload: bytes) -> tuple[int, bool]:
    """A basic.deliver's delivery tag and redelivered flag (its payload: class, method,
    consumer tag, delivery tag, bits, ...)."""
    after_tag = 5 + payload[4]
    return LONGLONG.unpack_from(payload, after_tag)[0], bool(payload[after_tag + 8] & 1)


def ack_args(payload: bytes) -> tuple[int, bool]:
    """A basic.ack's (or nack's) delivery tag and ``multiple`` flag."""
    return LONGLONG.unpack_from(payload, 4)[0], bool(payload[12] & 1)


def body_size(payload: bytes) -> int:
    """A content header's body size (after class id and weight)."""
    return int(LONGLONG.unpack_from(payload, 4)[0])


class FrameReader:
    """Splits a byte stream into frames: ``feed`` bytes, iterate ``frames()``."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """(type, channel, payload) of each whole frame received; a partial one waits."""
        buffer, pos = self.buffer, 0
        try:
            while len(buffer) - pos >= 8:
                kind, channel, size = FRAME_HEAD.unpack_from(buffer, pos)
                end = pos + 7 + size
                if len(buffer) <= end:
                    break
                if buffer[end] != FRAME_END:
                    raise ProtocolFailure(f"frame end octet is {buffer[end]:#x}, not 0xce")
                payload = bytes(buffer[pos + 7 : end])
                pos = end + 1
                yield kind, channel, payload
        finally:
            del buffer[:pos]


def decode(kind: int, channel: int, payload: bytes) -> Frame:
    """A method frame as pamqp's object (off the hot path)."""
    whole = FRAME_HEAD.pack(kind, channel, len(payload)) + payload + bytes([FRAME_END])
    value = frame.unmarshal(whole)[2]
    if not isinstance(value, Frame):
        raise ProtocolFailure(f"expected a method frame, got {value!r}")
    return value


class Confirms:
    """Which publishes the broker confirmed: delivery tags start at 1 on the channel, an
    ack covers one tag or (``multiple``) every tag up to it. A tag confirmed twice, or one
    never published, is a failure."""

    def __init__(self, count: int) -> None:
        self.acked = bytearray(count + 1)
        self.published = 0
        self.confirmed = 0
        self.low = 1  # every tag below this one is confirmed

    def ack(self, tag: int, multiple: bool) -> int:
        """Record an ack; return how many publishes it newly confirmed."""
        if tag > self.published or tag < 1:
            raise ProtocolFailure(f"ack of delivery tag {tag}: only {self.published} published")
        acked, before = self.acked, self.confirmed
        if multiple:
            for each in range(self.low, tag + 1):
                if not acked[each]:
                    acked[each] = 1
                    self.confirmed += 1
        elif acked[tag]:
            raise ProtocolFailure(f"delivery tag {tag} confirmed twice")
        else:
            acked[tag] = 1
            self.confirmed += 1
        while self.low <= self.published and acked[self.low]:
            self.low += 1
        return self.confirmed - before

    @property
    def outstanding(self) -> int:
        return self.published - self.confirmed
