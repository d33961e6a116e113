"""The nodes of the cluster this server belongs to, as ``GET /api/v1/cluster`` shows them.

A store shared by several nodes (PostgreSQL) keeps their runs and heartbeats and lists
them. Any other store (SQLite, memory) serves one process, so the cluster is this node
alone, described from what the server knows: it is alive, since it answers.
"""

from __future__ import annotations

import socket
import time
from typing import Protocol, runtime_checkable

from buzon.server.context import ServerContext
from buzon.store import NodeRecord

ONLY_NODE_ID = 1
"""The id the one node of a single-node store shows."""


@runtime_checkable
class NodeDirectory(Protocol):
    """A store that several nodes share and that lists them."""

    async def nodes(self) -> list[NodeRecord]:
        """Every node run that is alive, and those that stopped lately."""
        ...


def node_name(ctx: ServerContext) -> str:
    """This node's name: ``--node-name``, else the host name and the STOMP port (the
    plain one if it listens, else the TLS one)."""
    if ctx.settings.node_name:
        return ctx.settings.node_name
    port = next(iter(ctx.stomp_ports.values()), ctx.settings.stomp_port)
    return f"{socket.gethostname()}:{port}"


async def cluster_nodes(ctx: ServerContext) -> list[NodeRecord]:
    """The cluster's nodes, as the shared store knows them, or this node alone."""
    store = ctx.store
    if isinstance(store, NodeDirectory):
        return await store.nodes()
    now = time.time()
    return [
        NodeRecord(
            id=ONLY_NODE_ID,
            name=node_name(ctx),
            listeners=ctx.listeners,
            started_at=ctx.started_at,
            heartbeat_at=now,
            connections=len(ctx.connections),
            alive=True,
        )
    ]
