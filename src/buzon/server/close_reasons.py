"""Why a connection ended, recorded per connection for logs and (later) the stats API."""

from __future__ import annotations

import enum


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
