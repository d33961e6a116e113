"""Why a connection ended, recorded per connection for logs and (later) the stats API."""

from __future__ import annotations

import enum

from buzon.errors import ErrorCode


class CloseReason(enum.Enum):
    CLIENT_DISCONNECT = "client_disconnect"
    CONNECTION_LOST = "connection_lost"
    PROTOCOL_ERROR = "protocol_error"
    AUTH_FAILED = "auth_failed"
    ACCOUNT_DISABLED = "account_disabled"
    DESTINATION_DELETED = "destination_deleted"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    SLOW_CONSUMER = "slow_consumer"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SHUTDOWN = "shutdown"


_BY_ERROR = {
    ErrorCode.AUTH_FAILED: CloseReason.AUTH_FAILED,
    ErrorCode.TOO_MANY_ATTEMPTS: CloseReason.AUTH_FAILED,
    ErrorCode.ACCOUNT_DISABLED: CloseReason.ACCOUNT_DISABLED,
    ErrorCode.DESTINATION_DELETED: CloseReason.DESTINATION_DELETED,
    ErrorCode.HANDSHAKE_TIMEOUT: CloseReason.HANDSHAKE_TIMEOUT,
    ErrorCode.HEARTBEAT_TIMEOUT: CloseReason.IDLE_TIMEOUT,
    ErrorCode.SLOW_CONSUMER: CloseReason.SLOW_CONSUMER,
    ErrorCode.TOO_MANY_CONNECTIONS: CloseReason.TOO_MANY_CONNECTIONS,
    ErrorCode.SERVER_SHUTDOWN: CloseReason.SHUTDOWN,
}


def reason_for(code: ErrorCode | None) -> CloseReason:
    """Why a connection the server closed with ERROR ``code`` ended (no code: the peer
    broke the protocol)."""
    if code is None:
        return CloseReason.PROTOCOL_ERROR
    return _BY_ERROR.get(code, CloseReason.PROTOCOL_ERROR)
