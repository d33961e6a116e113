"""The limits an AMQP connection enforces, with their defaults and the reason for each."""

from __future__ import annotations

from dataclasses import dataclass

from buzon.amqp.codec import FRAME_MIN_SIZE

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AmqpLimits:
    """What the server offers in ``connection.tune`` and refuses beyond.

    Raises:
        ValueError: a limit is out of the range the protocol allows.
    """

    channel_max: int = 2047
    """RabbitMQ's default; a client asking for more is told this in ``tune``."""

    frame_max: int = 131072
    """128 KiB, RabbitMQ's default: large bodies travel in several frames of this size."""

    heartbeat: int = 60
    """Seconds between heart-beats the server suggests; the client's ``tune-ok`` wins."""

    max_message_size: int = 16 * MIB
    """The largest body a content header may announce: the STOMP listener's body limit,
    so one message fits every surface. Refused before any body byte is buffered."""

    max_pending_content: int = 64 * MIB
    """The announced bodies of messages still arriving, summed over all channels: without
    it, 2047 channels each holding a partial 16 MiB message could pin 32 GiB. A client
    publishes on a few channels at once; going over closes the connection (506)."""

    pre_open_frame_max: int = 2 * FRAME_MIN_SIZE
    """The largest frame before ``tune-ok``: anyone may send these. The spec guarantees a
    client 4 KiB; 8 KiB leaves room for a long token as the password."""

    def __post_init__(self) -> None:
        if not 1 <= self.channel_max <= 65535:
            raise ValueError("channel_max must be 1 to 65535")
        if not FRAME_MIN_SIZE <= self.frame_max < 2**32:
            raise ValueError(f"frame_max must be at least {FRAME_MIN_SIZE}")
        if not 0 <= self.heartbeat <= 65535:
            raise ValueError("heartbeat must be 0 to 65535 seconds")
        if self.max_message_size < 0 or self.pre_open_frame_max < FRAME_MIN_SIZE:
            raise ValueError("message and pre-open frame limits too small")
        if self.max_pending_content < self.max_message_size:
            raise ValueError("max_pending_content must hold at least one maximal message")
