"""``buzon connection``: the broker's open STOMP connections; an admin may close one.

An admin sees every connection, anyone else only their own (the API decides). Closing one
sends its client an ERROR (CONNECTION_CLOSED_BY_ADMIN) and hands its unacknowledged
messages back to their queues; the client may connect again.
"""

from __future__ import annotations

import argparse
from operator import attrgetter
from typing import Any

from buzon.cli.output import Column, print_json, print_table
from buzon.cli.session import add_action, logged_in
from buzon.client import ConnectionInfo

_COLUMNS: list[Column[ConnectionInfo]] = [
    ("Id", attrgetter("id")),
    ("User", attrgetter("user")),
    ("Peer", attrgetter("peer")),
    ("Transport", attrgetter("transport")),
    ("Protocol", attrgetter("protocol")),
    ("Since", attrgetter("connected_at")),
    ("Subscriptions", attrgetter("subscriptions")),
]


def register(commands: Any) -> None:
    """Add ``buzon connection`` and its actions to the top-level subcommands."""
    group: argparse.ArgumentParser = commands.add_parser(
        "connection",
        help="open STOMP connections: list, close (admin)",
        description="Open STOMP connections: an admin sees and may close all of them,"
        " others see their own.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    summary = "list open STOMP connections (an admin sees all, others their own)"
    add_action(actions, "list", _list, summary, prints_data=True)
    summary = "close a STOMP connection (admin); its unacknowledged messages go back"
    close = add_action(actions, "close", _close, summary, prints_data=False)
    close.add_argument("id", metavar="ID", help="the connection's id, as 'list' shows it")


def _list(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        found = client.connections()
    if args.json:
        print_json(found)
    else:
        print_table(found, _COLUMNS, empty="no open connections")
    return 0


def _close(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        client.close_connection(args.id)
    print(f"closed connection {args.id}")
    return 0
