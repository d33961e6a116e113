"""Destination names, the registry of queues and channels, and routing a publish to one.

A destination is ``/queue/<name>`` or ``/topic/<name>``; the name is 1 to 200 ASCII
letters, digits, ``-``, ``_``, ``.`` or ``:``. Destinations are created on first use and
kept for the broker's lifetime (a queue keeps its messages while nobody consumes).

The registry is keyed by the full destination string, so a publish to an existing
destination is one dict lookup; names are parsed and checked only on a miss.
"""

from __future__ import annotations

import enum
import re
import secrets

from buzon.broker.channel import Channel
from buzon.broker.config import BrokerConfig
from buzon.broker.flow import QueuedBytes
from buzon.broker.message import Headers, Message
from buzon.broker.queue import Queue
from buzon.errors import BrokerError, ErrorCode

MAX_NAME_LENGTH = 200
_NAME = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_NAME_LENGTH}}}")
# How much of a rejected destination an error detail repeats.
_DETAIL_CHARS = 64


class DestinationKind(enum.Enum):
    """The two messaging models, by their STOMP destination prefix."""

    QUEUE = "/queue/"
    CHANNEL = "/topic/"


def parse_destination(destination: str) -> tuple[DestinationKind, str]:
    """Split a destination into its kind and name.

    Args:
        destination: e.g. ``/queue/jobs`` or ``/topic/news``.

    Returns:
        the kind and the bare name.

    Raises:
        BrokerError: ``BAD_DESTINATION`` for any other prefix or an invalid name.
    """
    for kind in DestinationKind:
        if destination.startswith(kind.value):
            name = destination[len(kind.value) :]
            if _NAME.fullmatch(name):
                return kind, name
            break
    raise BrokerError(
        ErrorCode.BAD_DESTINATION,
        f"{destination[:_DETAIL_CHARS]!r}: expected /queue/<name> or /topic/<name>, the name"
        f" 1-{MAX_NAME_LENGTH} letters, digits or -_.:",
    )


class Destinations:
    """Every queue and channel of one broker, and the message numbering.

    Args:
        config: passed to new channels (pending bounds, slow-consumer policy).
        gauge: passed to new queues (producer flow control).
    """

    __slots__ = ("_config", "_gauge", "_id_prefix", "_seq", "_targets", "channels", "queues")

    def __init__(self, config: BrokerConfig, gauge: QueuedBytes) -> None:
        self._config = config
        self._gauge = gauge
        self._targets: dict[str, Queue | Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.channels: dict[str, Channel] = {}
        # Message ids must not repeat across broker restarts that clients may straddle.
        self._id_prefix = secrets.token_hex(4)
        self._seq = 0

    def validate(self, destination: str) -> None:
        """Check a destination without creating it (for staged transactional sends).

        Raises:
            BrokerError: ``BAD_DESTINATION``.
        """
        if destination not in self._targets:
            parse_destination(destination)

    def lookup(self, destination: str) -> Queue | Channel:
        """The queue or channel named ``destination``, created if it does not exist yet.

        Raises:
            BrokerError: ``BAD_DESTINATION``.
        """
        target = self._targets.get(destination)
        if target is None:
            kind, name = parse_destination(destination)
            if kind is DestinationKind.QUEUE:
                target = self.queues[name] = Queue(name, self._gauge)
            else:
                target = self.channels[name] = Channel(name, self._config)
            self._targets[destination] = target
        return target

    def publish(self, destination: str, headers: Headers, body: bytes) -> str:
        """Number a new message and hand it to its destination.

        Returns:
            the message id.

        Raises:
            BrokerError: ``BAD_DESTINATION``.
        """
        target = self.lookup(destination)
        self._seq += 1
        message_id = f"{self._id_prefix}-{self._seq}"
        target.publish(Message(message_id, destination, headers, body, self._seq))
        return message_id
