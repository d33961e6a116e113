"""A published message's priority, from its headers (see :mod:`buzon.priority`)."""

from __future__ import annotations

from buzon.broker.message import Headers
from buzon.errors import BrokerError, ErrorCode
from buzon.priority import DEFAULT_PRIORITY, PRIORITY_HEADER, parse_priority


def priority_of(headers: Headers) -> int:
    """The priority the first ``priority`` header asks for, or the default without one.

    Raises:
        BrokerError: BAD_HEADER_VALUE naming the header when its value is not 0 to 9.
    """
    for name, value in headers:
        if name == PRIORITY_HEADER:
            try:
                return parse_priority(value)
            except ValueError as exc:
                raise BrokerError(ErrorCode.BAD_HEADER_VALUE, str(exc)) from None
    return DEFAULT_PRIORITY
