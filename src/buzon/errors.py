"""The one error registry of buzon.

Every error a peer can see carries an :class:`ErrorCode`: a stable machine name, the
HTTP status it maps to, and a short message that is safe to send to anyone (it never
contains user input, secrets or internals). Details that help the peer fix its request
travel separately (``detail``), are built from the peer's own input only, and are kept
short.

Exception tree (each layer adds its own leaves under these)::

    BuzonError                      root of everything buzon raises on purpose
    ├── LocalProtocolError          buzon itself misused an API (a bug: tests must catch it)
    ├── FrameError                  a peer sent bytes that are not valid STOMP 1.2 (stomp/)
    ├── AuthenticationFailed        wrong login or passcode (never says which)
    └── BrokerError                 an engine command was refused (broker/)

This module is a leaf: it imports nothing from buzon.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Stable error codes: ``(http_status, safe message)``; the name is the code."""

    # framing and protocol (the peer's bytes or frame order are wrong)
    FRAME_MALFORMED = (400, "malformed frame")
    FRAME_TOO_LARGE = (413, "frame too large")
    LINE_TOO_LONG = (431, "command or header line too long")
    TOO_MANY_HEADERS = (431, "too many headers")
    HEADERS_TOO_LARGE = (431, "header block too large")
    BAD_ENCODING = (400, "headers are not valid UTF-8")
    BAD_ESCAPE = (400, "invalid header escape sequence")
    BAD_CONTENT_LENGTH = (400, "invalid content-length")
    UNKNOWN_COMMAND = (400, "unknown command")
    MISSING_HEADER = (400, "missing required header")
    BAD_HEADER_VALUE = (400, "invalid header value")
    UNSUPPORTED_VERSION = (505, "unsupported protocol version")
    NOT_CONNECTED = (400, "CONNECT required first")
    UNEXPECTED_FRAME = (400, "frame not allowed now")
    HEARTBEAT_TIMEOUT = (408, "heart-beat timeout")
    HANDSHAKE_TIMEOUT = (408, "handshake timeout")
    # authentication and authorisation
    AUTH_FAILED = (401, "authentication failed")
    ACCESS_DENIED = (403, "access denied")
    # engine commands
    BAD_DESTINATION = (400, "invalid destination")
    DESTINATION_NOT_FOUND = (404, "destination not found")
    DUPLICATE_SUBSCRIPTION = (409, "subscription id already in use")
    UNKNOWN_SUBSCRIPTION = (404, "unknown subscription")
    UNKNOWN_ACK_ID = (404, "unknown ack id")
    UNKNOWN_TRANSACTION = (404, "unknown transaction")
    DUPLICATE_TRANSACTION = (409, "transaction already open")
    LIMIT_EXCEEDED = (429, "limit exceeded")
    SLOW_CONSUMER = (429, "slow consumer")
    # server
    TOO_MANY_CONNECTIONS = (503, "too many connections")
    SERVER_SHUTDOWN = (503, "server shutting down")
    INTERNAL_ERROR = (500, "internal error")

    @property
    def http_status(self) -> int:
        status: int = self.value[0]
        return status

    @property
    def message(self) -> str:
        text: str = self.value[1]
        return text


class BuzonError(Exception):
    """Root of every error buzon raises on purpose.

    Args:
        code: the stable code; its ``message`` is what peers see first.
        detail: optional short explanation built from the peer's own input.
    """

    default_code = ErrorCode.INTERNAL_ERROR

    def __init__(self, code: ErrorCode | None = None, detail: str = "") -> None:
        self.code = code if code is not None else self.default_code
        self.detail = detail
        super().__init__(f"{self.code.message}: {detail}" if detail else self.code.message)


class LocalProtocolError(BuzonError):
    """buzon's own code called an API in a state where that is not allowed (a bug)."""


class FrameError(BuzonError):
    """The peer's bytes are not a valid STOMP 1.2 frame, or break a configured limit."""

    default_code = ErrorCode.FRAME_MALFORMED


class AuthenticationFailed(BuzonError):
    """Login refused. The message never says whether the user or the password was wrong."""

    default_code = ErrorCode.AUTH_FAILED


class BrokerError(BuzonError):
    """The engine refused a command (unknown subscription, bad destination, ...)."""

    default_code = ErrorCode.INTERNAL_ERROR
