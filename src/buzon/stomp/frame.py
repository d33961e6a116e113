"""STOMP 1.2 frames as values: the command, ordered headers and a binary body.

A :class:`Frame` is what the parser produces and the serialiser consumes; it knows nothing
about connection state. The two sentinels :data:`HEARTBEAT` and :data:`NEED_DATA` are the
parser's other answers. Each is the only member of its own enum, so ``x is NEED_DATA``
narrows types for mypy and the sentinels pickle and print sensibly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

Headers: TypeAlias = tuple[tuple[str, str], ...]
"""Ordered ``(name, value)`` pairs; a name may repeat and the first occurrence wins."""


class Command(enum.Enum):
    """The fifteen STOMP 1.2 commands; each value is the command's text on the wire."""

    CONNECT = "CONNECT"
    STOMP = "STOMP"
    CONNECTED = "CONNECTED"
    SEND = "SEND"
    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    ACK = "ACK"
    NACK = "NACK"
    BEGIN = "BEGIN"
    COMMIT = "COMMIT"
    ABORT = "ABORT"
    DISCONNECT = "DISCONNECT"
    MESSAGE = "MESSAGE"
    RECEIPT = "RECEIPT"
    ERROR = "ERROR"

    # Members are singletons, so identity hashing is correct; Enum's default hashes the
    # name in Python code, which costs a function call on every dict lookup of the
    # per-frame dispatch and transition tables.
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class Frame:
    """One STOMP frame.

    Attributes:
        command: the frame's command.
        headers: ordered header pairs, unescaped, repeats kept.
        body: the body bytes (may contain NUL when sent with ``content-length``).
    """

    command: Command
    headers: Headers = ()
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of the first header called ``name``.

        Args:
            name: the header name (case-sensitive, as STOMP specifies).
            default: returned when the header is absent.

        Returns:
            The first value, or ``default``.
        """
        for key, value in self.headers:
            if key == name:
                return value
        return default


class Heartbeat(enum.Enum):
    """Type of :data:`HEARTBEAT`."""

    HEARTBEAT = "HEARTBEAT"


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


HEARTBEAT: Final = Heartbeat.HEARTBEAT
"""Returned by the parser for each EOL received between frames."""

NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by the parser when the buffered bytes hold no complete frame or heart-beat."""
