"""``buzon cluster status``: the broker processes sharing one database, and which are alive.

An admin's command (the API refuses others). A broker on SQLite or memory storage is a
cluster of one, itself. The table shows each node's last heartbeat as an age, which is what
a person checks; ``--json`` gives the times themselves.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from buzon.cli.output import Column, print_json, print_table
from buzon.cli.session import add_action, logged_in
from buzon.client import NodeInfo


def _age(node: NodeInfo) -> str:
    """How long ago the node's last heartbeat was, to the second (clocks may differ a
    little, so a heartbeat seemingly in the future shows as now)."""
    seconds = max(0, round((datetime.now(UTC) - node.heartbeat_at).total_seconds()))
    return f"{seconds} s ago"


_COLUMNS: list[Column[NodeInfo]] = [
    ("Name", attrgetter("name")),
    ("Alive", attrgetter("alive")),
    ("Listeners", lambda node: " ".join(node.listeners)),
    ("Last heartbeat", _age),
    ("Started", attrgetter("started_at")),
    ("Connections", attrgetter("connections")),
]


def register(commands: Any) -> None:
    """Add ``buzon cluster`` and its action to the top-level subcommands."""
    group: argparse.ArgumentParser = commands.add_parser(
        "cluster",
        help="the broker's cluster: its nodes and whether they are alive (admin)",
        description="The nodes sharing the broker's database (admin); a broker on SQLite is"
        " a cluster of one.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    summary = "show each node: listeners, last heartbeat, connections, alive or not (admin)"
    add_action(actions, "status", _status, summary, prints_data=True)


def _status(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        nodes = client.cluster()
    if args.json:
        print_json(nodes)
    else:
        print_table(nodes, _COLUMNS, empty="no nodes")
    return 0
