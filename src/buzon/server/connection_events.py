"""Connection lifecycle events: a log line when a connection opens and one when it closes,
and the closes counted by reason for ``/metrics``.

Both run once per connection, never per frame. The facts travel as structured fields
(logging's ``extra``): ``conn``, ``peer``, ``transport``, and at close ``protocol``,
``user`` (once logged in), ``reason`` and ``duration_s``; the log format decides how they
are shown.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from buzon.auth import Principal
from buzon.server.close_reasons import CloseReason

log = logging.getLogger("buzon.connections")


class TrackedConnection(Protocol):
    """What the events read from a connection (any protocol over any transport)."""

    @property
    def id(self) -> str: ...

    @property
    def peer(self) -> str: ...

    @property
    def connected_at(self) -> float: ...

    @property
    def close_reason(self) -> CloseReason | None: ...

    @property
    def protocol(self) -> str: ...

    @property
    def transport_name(self) -> str: ...

    @property
    def principal(self) -> Principal | None: ...


@dataclass(slots=True)
class ConnectionEvents:
    """Connections opened since start, and closed by reason.

    Attributes:
        opened: connections accepted.
        closed: connections ended, by why.
    """

    opened: int = 0
    closed: Counter[CloseReason] = field(default_factory=Counter)

    def record_open(self, connection: TrackedConnection) -> None:
        self.opened += 1
        log.info(
            "connection opened",
            extra={
                "conn": connection.id,
                "peer": connection.peer,
                "transport": connection.transport_name,
            },
        )

    def record_close(self, connection: TrackedConnection) -> None:
        reason = connection.close_reason or CloseReason.CONNECTION_LOST
        self.closed[reason] += 1
        fields: dict[str, object] = {
            "conn": connection.id,
            "peer": connection.peer,
            "transport": connection.transport_name,
            "protocol": connection.protocol,
        }
        principal = connection.principal
        if principal is not None:
            fields["user"] = principal.name
        fields["reason"] = reason.value
        fields["duration_s"] = round(time.time() - connection.connected_at, 3)
        log.info("connection closed", extra=fields)
