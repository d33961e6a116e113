"""One channel's protocol state: open or closing, and the message being assembled.

A published message arrives as three kinds of frame on its channel: ``basic.publish``,
one content header announcing the body size, then body frames until that size is reached.
Other channels' frames may come in between; this channel's may not.
"""

from __future__ import annotations

from buzon.amqp.codec import decode_content_header
from buzon.amqp.events import Publish
from buzon.amqp.properties import Properties, decode_properties
from buzon.amqp.replies import AmqpProtocolError, ReplyCode

_BASIC = 60


def _unexpected(text: str) -> AmqpProtocolError:
    return AmqpProtocolError(ReplyCode.UNEXPECTED_FRAME, text)


class ChannelState:
    """An open channel; ``closing`` once we sent ``channel.close``."""

    __slots__ = ("body", "body_size", "closing", "decoded", "publish", "received")

    def __init__(self) -> None:
        self.closing = False
        self.publish: tuple[str, str, bool, bool] | None = None
        """``(exchange, routing_key, mandatory, immediate)`` of a publish awaiting content."""
        self.body_size = -1  # -1: no content header yet
        # the body so far: the first frame as it came, then one growing buffer (so memory
        # is the body's size however small the frames are)
        self.body: bytes | bytearray = b""
        self.received = 0
        # the property list of the message being received, and what it decodes to; kept
        # for the next one, as publishers mostly send the same list with every message
        self.decoded: tuple[bytes, Properties] = (b"", Properties())

    @property
    def reserved(self) -> int:
        """The announced body size of the message being received (0 if none)."""
        return self.body_size if self.publish is not None and self.body_size > 0 else 0

    @property
    def in_content(self) -> bool:
        """Whether a publish's content header or body is still due."""
        return self.publish is not None

    def on_header(self, channel: int, payload: memoryview, max_size: int) -> str | None:
        """Take a content header.

        Returns:
            None, or why the message is refused (too large): the caller closes the
            channel, so its body frames are dropped, never buffered.

        Raises:
            AmqpProtocolError: UNEXPECTED_FRAME without a publish, or a second header;
                SYNTAX_ERROR or FRAME_ERROR for a malformed one.
        """
        if self.publish is None or self.body_size >= 0:
            raise _unexpected(f"content header on channel {channel} without basic.publish")
        class_id, body_size, raw = decode_content_header(payload)
        if class_id != _BASIC:
            raise _unexpected(f"content header for class {class_id}, not basic")
        if raw != self.decoded[0]:
            self.decoded = (raw, decode_properties(raw))
        if body_size > max_size:
            return f"message of {body_size} bytes is larger than the limit of {max_size}"
        self.body_size = body_size
        return None

    def on_body(self, payload: bytes) -> None:
        """Take a body frame.

        Raises:
            AmqpProtocolError: UNEXPECTED_FRAME before the header or past the size.
        """
        if self.body_size < 0:
            raise _unexpected("content body without a content header")
        self.received += len(payload)
        if self.received > self.body_size:
            raise _unexpected(f"body longer than the {self.body_size} bytes announced")
        body = self.body
        if not body:
            self.body = payload
        elif payload:
            if isinstance(body, bytes):
                body = self.body = bytearray(body)
            body += payload

    def complete(self, channel: int) -> Publish | None:
        """The assembled message once its whole body is in, else None."""
        publish = self.publish
        if publish is None or self.received < self.body_size or self.body_size < 0:
            return None
        body = self.body
        raw, properties = self.decoded
        event = Publish(channel, *publish, properties, raw, bytes(body) if body else b"")
        self._reset()
        return event

    def close(self) -> None:
        """We sent ``channel.close``: forget any partial message."""
        self.closing = True
        self._reset()

    def _reset(self) -> None:
        self.publish = None
        self.body_size = -1
        self.body = b""
        self.received = 0
