"""Why a connection ended, recorded per connection for its close log line and counted
by reason in ``/metrics``."""

from __future__ import annotations

import enum

from buzon.errors import ErrorCode


class CloseReason(enum.Enum):
    CLIENT_DISCONNECT = "client_disconnect"
    CONNECTION_LOST = "connection_lost"
    PROTOCOL_ERROR = "protocol_error"  # the peer's bytes or frame order broke STOMP
    REFUSED = "refused"  # the broker refused a frame (access denied, queue full, unknown id)
    SERVER_ERROR = "server_error"  # a bug or the store failed
    AUTH_FAILED = "auth_failed"
    ACCOUNT_DISABLED = "account_disabled"
    PERMISSIONS_CHANGED = "permissions_changed"  # role, password, token or access key
    DESTINATION_DELETED = "destination_deleted"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    SLOW_CONSUMER = "slow_consumer"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    CLOSED_BY_ADMIN = "closed_by_admin"
    SHUTDOWN = "shutdown"


_BY_ERROR = {
    ErrorCode.AUTH_FAILED: CloseReason.AUTH_FAILED,
    ErrorCode.TOO_MANY_ATTEMPTS: CloseReason.AUTH_FAILED,
    ErrorCode.ACCOUNT_DISABLED: CloseReason.ACCOUNT_DISABLED,
    ErrorCode.PERMISSIONS_CHANGED: CloseReason.PERMISSIONS_CHANGED,
    ErrorCode.DESTINATION_DELETED: CloseReason.DESTINATION_DELETED,
    ErrorCode.HANDSHAKE_TIMEOUT: CloseReason.HANDSHAKE_TIMEOUT,
    ErrorCode.HEARTBEAT_TIMEOUT: CloseReason.IDLE_TIMEOUT,
    ErrorCode.SLOW_CONSUMER: CloseReason.SLOW_CONSUMER,
    ErrorCode.TOO_MANY_CONNECTIONS: CloseReason.TOO_MANY_CONNECTIONS,
    ErrorCode.CONNECTION_CLOSED_BY_ADMIN: CloseReason.CLOSED_BY_ADMIN,
    ErrorCode.SERVER_SHUTDOWN: CloseReason.SHUTDOWN,
    ErrorCode.INTERNAL_ERROR: CloseReason.SERVER_ERROR,
    ErrorCode.STORAGE_UNAVAILABLE: CloseReason.SERVER_ERROR,
}

# What the STOMP layer itself reports: the peer's framing or frame order is wrong.
_PROTOCOL = frozenset(
    {
        ErrorCode.FRAME_MALFORMED,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.LINE_TOO_LONG,
        ErrorCode.TOO_MANY_HEADERS,
        ErrorCode.HEADERS_TOO_LARGE,
        ErrorCode.BAD_ENCODING,
        ErrorCode.BAD_ESCAPE,
        ErrorCode.BAD_CONTENT_LENGTH,
        ErrorCode.UNKNOWN_COMMAND,
        ErrorCode.MISSING_HEADER,
        ErrorCode.BAD_HEADER_VALUE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.NOT_CONNECTED,
        ErrorCode.UNEXPECTED_FRAME,
    }
)


def reason_for(code: ErrorCode | None) -> CloseReason:
    """Why a connection the server closed with ERROR ``code`` ended (no code: the peer
    broke the protocol and the STOMP layer answered)."""
    if code is None or code in _PROTOCOL:
        return CloseReason.PROTOCOL_ERROR
    return _BY_ERROR.get(code, CloseReason.REFUSED)
