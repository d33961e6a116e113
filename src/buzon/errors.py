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
    ├── StoreError                  a store refused a write (duplicate name, ...) (store/)
    ├── AuthError                   users, tokens and access keys (auth/)
    │   ├── AuthenticationFailed    wrong login or passcode (never says which), rate limited
    │   └── AccessDenied            authenticated, but not allowed (role, owner, access key)
    ├── BrokerError                 an engine command was refused (broker/)
    └── RequestError                an HTTP request or CLI input is invalid (server/, cli/)

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
    NOT_AUTHENTICATED = (401, "authentication required")
    TOO_MANY_ATTEMPTS = (429, "too many failed attempts, try again later")
    ACCOUNT_DISABLED = (403, "account disabled")
    ACCESS_DENIED = (403, "access denied")
    ACCESS_KEY_REQUIRED = (403, "access key required")
    ACCESS_KEY_WRONG = (403, "wrong access key")
    PERMISSIONS_CHANGED = (401, "permissions changed, log in again")
    # users
    INVALID_USERNAME = (400, "invalid username")
    WEAK_PASSWORD = (400, "password does not meet the minimum")
    USERNAME_TAKEN = (409, "username already taken")
    REGISTRATION_CLOSED = (403, "registration is closed")
    USER_NOT_FOUND = (404, "user not found")
    LAST_ADMIN = (409, "the last admin cannot be removed")
    # engine commands
    BAD_DESTINATION = (400, "invalid destination")
    DESTINATION_NOT_FOUND = (404, "destination not found")
    DESTINATION_EXISTS = (409, "destination already exists")
    DESTINATION_DELETED = (410, "destination deleted")
    RESOURCE_LOCKED = (409, "queue is exclusive to another connection")
    PRECONDITION_FAILED = (409, "declared differently from what exists")
    QUEUE_FULL = (429, "queue is full")
    UNKNOWN_RECEIPT = (404, "unknown or expired receipt")
    DUPLICATE_SUBSCRIPTION = (409, "subscription id already in use")
    UNKNOWN_SUBSCRIPTION = (404, "unknown subscription")
    UNKNOWN_ACK_ID = (404, "unknown ack id")
    UNKNOWN_TRANSACTION = (404, "unknown transaction")
    DUPLICATE_TRANSACTION = (409, "transaction already open")
    LIMIT_EXCEEDED = (429, "limit exceeded")
    SLOW_CONSUMER = (429, "slow consumer")
    # storage
    STORAGE_UNAVAILABLE = (503, "storage unavailable")
    STORAGE_FULL = (507, "storage full")
    STORAGE_CORRUPT = (500, "the data directory is damaged")
    STORAGE_TOO_NEW = (500, "the data directory is from a newer buzon")
    # HTTP requests
    BAD_REQUEST = (400, "invalid request")
    NOT_FOUND = (404, "not found")
    METHOD_NOT_ALLOWED = (405, "method not allowed")
    REQUEST_TOO_LARGE = (413, "request too large")
    UNSUPPORTED_MEDIA_TYPE = (415, "unsupported media type")
    # server
    TOO_MANY_CONNECTIONS = (503, "too many connections")
    CONNECTION_NOT_FOUND = (404, "connection not found")
    CONNECTION_CLOSED_BY_ADMIN = (410, "connection closed by an administrator")
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


GENERIC_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.ACCESS_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.REQUEST_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.LIMIT_EXCEEDED,
    503: ErrorCode.SERVER_SHUTDOWN,
}
"""The code for an HTTP answer that names none (a framework's own 404, a proxy's page)."""


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


class StoreError(BuzonError):
    """A store refused a write: the record would break a uniqueness rule."""

    default_code = ErrorCode.INTERNAL_ERROR


class AuthError(BuzonError):
    """Users, tokens and access keys: a registration, login or permission was refused."""

    default_code = ErrorCode.ACCESS_DENIED


class AuthenticationFailed(AuthError):
    """Login refused. The message never says whether the user or the password was wrong.

    Args:
        code: AUTH_FAILED, NOT_AUTHENTICATED, TOO_MANY_ATTEMPTS or ACCOUNT_DISABLED.
        detail: a short explanation.
        retry_after: for TOO_MANY_ATTEMPTS, seconds until another attempt is accepted.
    """

    default_code = ErrorCode.AUTH_FAILED

    def __init__(
        self, code: ErrorCode | None = None, detail: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


class AccessDenied(AuthError):
    """The principal is known but may not do this (role, ownership or access key)."""

    default_code = ErrorCode.ACCESS_DENIED


class RequestError(BuzonError):
    """An HTTP request or a command-line input is malformed or too large."""

    default_code = ErrorCode.BAD_REQUEST


class BrokerError(BuzonError):
    """The engine refused a command (unknown subscription, bad destination, ...)."""

    default_code = ErrorCode.INTERNAL_ERROR
