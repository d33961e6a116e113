"""``buzon channel bind``, ``unbind`` and ``bindings``: a channel's queue bindings.

A bound queue gets every message of the channel whose routing key the binding key matches
(see ``buzon channel create --type``). Binding needs the right to consume from the channel
and to publish into the queue: another user's protected ones take their access keys.
"""

from __future__ import annotations

import argparse
from operator import attrgetter
from typing import Any

from buzon.cli.output import Column, print_json, print_table
from buzon.cli.session import add_action, logged_in, read_secret
from buzon.client import BindingInfo

_COLUMNS: list[Column[BindingInfo]] = [
    ("Queue", attrgetter("queue")),
    ("Routing key", lambda b: b.routing_key or '""'),
    ("Owner", attrgetter("owner")),
    ("Active", attrgetter("active")),
    ("Created", attrgetter("created_at")),
]


def register(actions: Any) -> None:
    """Add the binding actions to ``buzon channel``."""
    bind = add_action(
        actions,
        "bind",
        _bind,
        "bind a queue: matching messages are enqueued there too",
        prints_data=True,
    )
    unbind = add_action(
        actions,
        "unbind",
        _unbind,
        "remove a queue binding (whoever made it, either owner, or an admin)",
        prints_data=False,
    )
    for parser in (bind, unbind):
        parser.add_argument("name", metavar="NAME", help="the channel")
        parser.add_argument("queue", metavar="QUEUE", help="the queue")
        parser.add_argument(
            "--key",
            default="",
            metavar="K",
            help="the binding key: equal to the routing key (direct), or a pattern with '*'"
            " (one word) and '#' (zero or more) for a topic channel; default empty",
        )
    keys = bind.add_argument_group("access keys (another user's protected channel or queue)")
    for side in ("channel", "queue"):
        keys.add_argument(
            f"--{side}-key-stdin",
            action="store_true",
            help=f"read the {side}'s access key from stdin (the channel's line first)",
        )
    listing = add_action(
        actions, "bindings", _list, "list a channel's queue bindings", prints_data=True
    )
    listing.add_argument("name", metavar="NAME", help="the channel")


def _bind(args: argparse.Namespace) -> int:
    keys = {
        f"{side}_access_key": read_secret(
            f"{side}'s access key", stdin_flag=f"--{side}-key-stdin", from_stdin=True
        )
        for side in ("channel", "queue")
        if getattr(args, f"{side}_key_stdin")
    }
    with logged_in(args) as client:
        info = client.bind(args.name, args.queue, args.key, **keys)
    if args.json:
        print_json(info)
    else:
        print(f"bound queue {info.queue} to channel {info.channel} with key {info.routing_key!r}")
    return 0


def _unbind(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        client.unbind(args.name, args.queue, args.key)
    print(f"unbound queue {args.queue} from channel {args.name} (key {args.key!r})")
    return 0


def _list(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        found = client.bindings(args.name)
    if args.json:
        print_json(found)
    else:
        print_table(found, _COLUMNS, empty=f"no queues bound to channel {args.name}")
    return 0
