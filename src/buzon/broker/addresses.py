"""Destination addresses: ``/queue/<name>`` and ``/topic/<name>``, and valid names."""

from __future__ import annotations

import re

from buzon.errors import BrokerError, ErrorCode
from buzon.store.records import DestinationKind

MAX_NAME_LENGTH = 200
# A name is one URL path segment of the HTTP API, so it must survive any client: no
# character that needs escaping, and not only dots (clients resolve "." and ".." away).
_NAME = re.compile(rf"(?!\.+\Z)[A-Za-z0-9_.:@\-]{{1,{MAX_NAME_LENGTH}}}")
_RULE = f"1-{MAX_NAME_LENGTH} letters, digits or -_.:@, not only dots"
# How much of a rejected destination an error detail repeats.
_DETAIL_CHARS = 64

PREFIXES = {DestinationKind.QUEUE: "/queue/", DestinationKind.CHANNEL: "/topic/"}
"""The STOMP address prefix of each kind."""

EXTEND_ADDRESS = "/buzon/extend"
"""Where a SEND extends the ack deadline of a delivery instead of publishing (see
``deadlines``): ``/buzon/`` is no destination kind, so no queue or channel can have it."""


def address(kind: DestinationKind, name: str) -> str:
    """The STOMP destination of a queue or channel: ``/queue/<name>`` or ``/topic/<name>``."""
    return PREFIXES[kind] + name


def check_name(name: str) -> None:
    """Raise BrokerError(BAD_DESTINATION) unless ``name`` is a valid destination name."""
    if not _NAME.fullmatch(name):
        raise BrokerError(
            ErrorCode.BAD_DESTINATION,
            f"{name[:_DETAIL_CHARS]!r}: names are {_RULE}",
        )


def parse_destination(destination: str) -> tuple[DestinationKind, str]:
    """Split a destination into its kind and name.

    Args:
        destination: e.g. ``/queue/jobs`` or ``/topic/news``.

    Returns:
        the kind and the bare name.

    Raises:
        BrokerError: ``BAD_DESTINATION`` for any other prefix or an invalid name.
    """
    for kind, prefix in PREFIXES.items():
        if destination.startswith(prefix):
            name = destination[len(prefix) :]
            if _NAME.fullmatch(name):
                return kind, name
            break
    raise BrokerError(
        ErrorCode.BAD_DESTINATION,
        f"{destination[:_DETAIL_CHARS]!r}: expected /queue/<name> or /topic/<name>, the name"
        f" {_RULE}",
    )
