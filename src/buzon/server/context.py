"""What every connection and request of one server shares: settings, services, bookkeeping."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buzon.auth import Accounts, SecretHasher
from buzon.broker import Broker
from buzon.durations import Durations
from buzon.server.config import Settings
from buzon.server.connection_events import ConnectionEvents
from buzon.server.loop_lag import new_lag_durations
from buzon.server.rates import RateMeter
from buzon.server.redrive import Redrives
from buzon.server.resources import Resources
from buzon.store import Store

if TYPE_CHECKING:
    from buzon.server.cluster import ClusterNode
    from buzon.server.connection import Connection


@dataclass(eq=False)
class ServerContext:
    """Shared state of one running server; owned by :class:`buzon.server.app.BuzonServer`."""

    settings: Settings
    store: Store
    hasher: SecretHasher
    accounts: Accounts
    broker: Broker
    resources: Resources
    rates: RateMeter
    started_at: float = field(default_factory=time.time)
    # the bound STOMP ports by URL scheme ("stomp", "stomp+ssl"), for GET /api/v1/info
    stomp_ports: dict[str, int] = field(default_factory=dict)
    # where clients reach this node: one URL per bound listener (the API's for HTTP)
    listeners: tuple[str, ...] = ()
    connections: set[Connection[Any]] = field(default_factory=set)
    # this node's membership of a cluster (PostgreSQL storage), else None
    cluster: ClusterNode | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closing: bool = False
    # set whenever no connection is open; shutdown waits on it
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    connection_events: ConnectionEvents = field(default_factory=ConnectionEvents)
    loop_lag: Durations = field(default_factory=new_lag_durations)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # the redrives started on this node (dead-letter queues moved back)
    redrives: Redrives = field(init=False)
    # told when the store's volume goes under its free-space floor (True) and back (False)
    storage_watchers: set[Callable[[bool], None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.redrives = Redrives(self.broker, self.tasks)

    def add_connection(self, connection: Connection[Any]) -> None:
        """Count an accepted connection."""
        self.connections.add(connection)
        self.idle.clear()

    def remove_connection(self, connection: Connection[Any]) -> None:
        """Forget a closed connection; the last one out sets :attr:`idle`."""
        self.connections.discard(connection)
        if not self.connections:
            self.idle.set()

    def storage_changed(self, full: bool) -> None:
        """The disk floor was crossed (``full``) or space returned: tell the watchers."""
        for watcher in tuple(self.storage_watchers):
            watcher(full)

    def new_connection_id(self) -> str:
        return f"c{next(self._ids)}"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a connection's background step (a login, a key check); cancelled at shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
