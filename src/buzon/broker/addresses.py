"""Destination addresses: ``/queue/<name>``, ``/topic/<name>[/<key>]``, and valid names.

A front end turns its own way of naming a destination into an :class:`Address` (kind and
name, plus a routing key or binding pattern for a channel); the engine never parses
protocol text beyond this module. In STOMP, everything after a channel name's ``/`` is the
key: ``/topic/logs/app.error`` publishes to channel ``logs`` with routing key
``app.error``, and a SUBSCRIBE to ``/topic/logs/app.*`` binds with that pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from buzon.errors import BrokerError, ErrorCode
from buzon.store.records import DestinationKind

MAX_NAME_LENGTH = 200
# A name is one URL path segment of the HTTP API, so it must survive any client: no
# character that needs escaping, and not only dots (clients resolve "." and ".." away).
_NAME = re.compile(rf"(?!\.+\Z)[A-Za-z0-9_.:@\-]{{1,{MAX_NAME_LENGTH}}}")
_RULE = f"1-{MAX_NAME_LENGTH} letters, digits or -_.:@, not only dots"
# How much of a rejected destination an error detail repeats.
_DETAIL_CHARS = 64

MAX_KEY_BYTES = 255
"""Longest routing key or binding pattern, in UTF-8 bytes (AMQP's short string)."""
# no control characters: a key travels in STOMP headers, URLs and log lines
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PREFIXES = {DestinationKind.QUEUE: "/queue/", DestinationKind.CHANNEL: "/topic/"}
"""The STOMP address prefix of each kind."""
_CHANNEL_PREFIX = PREFIXES[DestinationKind.CHANNEL]

EXTEND_ADDRESS = "/buzon/extend"
"""Where a SEND extends the ack deadline of a delivery instead of publishing (see
``deadlines``): ``/buzon/`` is no destination kind, so no queue or channel can have it."""


@dataclass(frozen=True, slots=True)
class Address:
    """A destination as the engine sees it, whatever the protocol that named it.

    Attributes:
        kind: queue or channel.
        name: the queue's or channel's name.
        key: for a channel, the routing key of a publish or the binding pattern of a
            subscription ("" for none: a plain subscription receives every message);
            always "" for a queue.
    """

    kind: DestinationKind
    name: str
    key: str = ""

    @property
    def base(self) -> str:
        """The destination's own address, without the key (``/topic/logs``)."""
        return PREFIXES[self.kind] + self.name

    def __str__(self) -> str:
        """The STOMP form: ``/topic/logs/app.error``, or the base when there is no key."""
        return keyed(self.base, self.key)


def address(kind: DestinationKind, name: str) -> str:
    """The STOMP destination of a queue or channel: ``/queue/<name>`` or ``/topic/<name>``."""
    return PREFIXES[kind] + name


def keyed(base: str, key: str) -> str:
    """A channel's address with a routing key or pattern (``base`` alone for "")."""
    return f"{base}/{key}" if key else base


def key_in(destination: str, base: str) -> str:
    """The key part of ``destination``, an address of the destination at ``base`` (as
    :meth:`Destinations.resolve` found it): "" when it names the destination alone."""
    return destination[len(base) + 1 :]


def routing_key_of(destination: str) -> str:
    """The routing key a message published to ``destination`` carries ("" for a queue or
    a channel's plain address); what a stored message's key is rebuilt from."""
    return split_address(destination)[2]


def split_address(destination: str) -> tuple[DestinationKind, str, str]:
    """Kind, name and key of an address the engine made (a message's destination), on the
    hot path of deliveries, so unchecked: ``/topic/logs/app.error`` is
    ``(CHANNEL, "logs", "app.error")``, ``/queue/jobs`` is ``(QUEUE, "jobs", "")``."""
    if not destination.startswith(_CHANNEL_PREFIX):
        return DestinationKind.QUEUE, destination[len(PREFIXES[DestinationKind.QUEUE]) :], ""
    name, _, key = destination[len(_CHANNEL_PREFIX) :].partition("/")
    return DestinationKind.CHANNEL, name, key


def check_name(name: str) -> None:
    """Raise BrokerError(BAD_DESTINATION) unless ``name`` is a valid destination name."""
    if not _NAME.fullmatch(name):
        raise BrokerError(
            ErrorCode.BAD_DESTINATION,
            f"{name[:_DETAIL_CHARS]!r}: names are {_RULE}",
        )


def check_key(key: str, what: str = "routing key") -> None:
    """Raise BrokerError(BAD_DESTINATION) unless ``key`` is a valid routing key or binding
    pattern: at most 255 UTF-8 bytes, no control characters (``what`` names it)."""
    if len(key) > MAX_KEY_BYTES or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise BrokerError(
            ErrorCode.BAD_DESTINATION, f"a {what} is at most {MAX_KEY_BYTES} bytes (UTF-8)"
        )
    if _CONTROL.search(key):
        raise BrokerError(ErrorCode.BAD_DESTINATION, f"a {what} cannot contain control characters")


def parse_address(destination: str) -> Address:
    """Parse a STOMP destination into an :class:`Address`.

    Args:
        destination: ``/queue/<name>``, ``/topic/<name>`` or ``/topic/<name>/<key>``.

    Raises:
        BrokerError: ``BAD_DESTINATION`` for any other prefix, an invalid name, or a key
            that :func:`check_key` refuses.
    """
    for kind, prefix in PREFIXES.items():
        if destination.startswith(prefix):
            rest = destination[len(prefix) :]
            name, slash, key = (
                rest.partition("/")
                if kind is DestinationKind.CHANNEL
                else (
                    rest,
                    "",
                    "",
                )
            )
            if not _NAME.fullmatch(name) or (slash and not key):
                break
            if key:
                check_key(key)
            return Address(kind, name, key)
    raise BrokerError(
        ErrorCode.BAD_DESTINATION,
        f"{destination[:_DETAIL_CHARS]!r}: expected /queue/<name>, /topic/<name> or"
        f" /topic/<name>/<routing key>, the name {_RULE}",
    )


def parse_destination(destination: str) -> tuple[DestinationKind, str]:
    """Split a destination into its kind and name (a channel's key, if any, is checked
    and left out: see :func:`parse_address`).

    Raises:
        BrokerError: ``BAD_DESTINATION``.
    """
    parsed = parse_address(destination)
    return parsed.kind, parsed.name
