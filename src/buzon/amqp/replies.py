"""AMQP 0-9-1 reply codes, and which of them close a channel or the whole connection.

The spec splits errors in two: a *soft* error closes only the channel it happened on
(``channel.close``), a *hard* error closes the connection (``connection.close``). Both
kinds are here, with the side each one closes, so no caller has to remember it.
"""

from __future__ import annotations

import enum

from buzon.errors import BuzonError, ErrorCode


class ReplyCode(enum.IntEnum):
    """Every reply code of AMQP 0-9-1 (the numbers clients turn into their exceptions)."""

    REPLY_SUCCESS = 200
    CONTENT_TOO_LARGE = 311
    NO_ROUTE = 312
    NO_CONSUMERS = 313
    CONNECTION_FORCED = 320
    INVALID_PATH = 402
    ACCESS_REFUSED = 403
    NOT_FOUND = 404
    RESOURCE_LOCKED = 405
    PRECONDITION_FAILED = 406
    FRAME_ERROR = 501
    SYNTAX_ERROR = 502
    COMMAND_INVALID = 503
    CHANNEL_ERROR = 504
    UNEXPECTED_FRAME = 505
    RESOURCE_ERROR = 506
    NOT_ALLOWED = 530
    NOT_IMPLEMENTED = 540
    INTERNAL_ERROR = 541

    @property
    def closes_connection(self) -> bool:
        """Whether this code is a connection (hard) error rather than a channel one."""
        return self in CONNECTION_ERRORS


CHANNEL_ERRORS = frozenset(
    {
        ReplyCode.CONTENT_TOO_LARGE,
        ReplyCode.NO_ROUTE,
        ReplyCode.NO_CONSUMERS,
        ReplyCode.ACCESS_REFUSED,
        ReplyCode.NOT_FOUND,
        ReplyCode.RESOURCE_LOCKED,
        ReplyCode.PRECONDITION_FAILED,
    }
)
"""Soft errors: ``channel.close`` with one of these leaves the connection usable.
(312 and 313 travel in ``basic.return`` rather than in a close.)"""

CONNECTION_ERRORS = frozenset(
    {
        ReplyCode.CONNECTION_FORCED,
        ReplyCode.INVALID_PATH,
        ReplyCode.FRAME_ERROR,
        ReplyCode.SYNTAX_ERROR,
        ReplyCode.COMMAND_INVALID,
        ReplyCode.CHANNEL_ERROR,
        ReplyCode.UNEXPECTED_FRAME,
        ReplyCode.RESOURCE_ERROR,
        ReplyCode.NOT_ALLOWED,
        ReplyCode.NOT_IMPLEMENTED,
        ReplyCode.INTERNAL_ERROR,
    }
)
"""Hard errors: only ``connection.close`` may carry these. 403 also closes a connection
when a login is refused (the one place the spec uses a soft code there)."""


class AmqpProtocolError(BuzonError):
    """The peer's bytes broke AMQP 0-9-1; raised inside the codec, never out of it.

    :class:`~buzon.amqp.AmqpConnection` turns it into ``connection.close`` with ``code``.

    Args:
        code: the reply code the close carries (kept as ``reply_code``).
        text: a short explanation built from the peer's own input.
    """

    def __init__(self, code: ReplyCode, text: str) -> None:
        super().__init__(ErrorCode.FRAME_MALFORMED, text)
        self.reply_code = code
        self.text = text
