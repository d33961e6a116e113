"""``buzon queue`` and ``buzon channel``: create, list, inspect and delete.

Queues and channels are the same kind of owned resource to the API, so one set of
commands serves both, parameterised by :class:`DestinationKind`; only the counters each
kind shows differ (a queue's depth and consumers, a channel's subscribers).
"""

from __future__ import annotations

import argparse
from operator import attrgetter
from typing import Any

from buzon.cli.output import Column, print_fields, print_json, print_table
from buzon.cli.session import add_action, logged_in, read_secret
from buzon.client import Destination, DestinationKind

_COUNTERS = {
    DestinationKind.QUEUE: ("depth", "in_flight", "consumers"),
    DestinationKind.CHANNEL: ("subscribers",),
}
"""The fields each kind adds to what every destination has."""


def register(commands: Any, kind: DestinationKind) -> None:
    """Add ``buzon <kind>`` and its actions to the top-level subcommands."""
    plural = kind.collection
    group: argparse.ArgumentParser = commands.add_parser(
        kind.value,
        help=f"{plural}: create, list, inspect, delete",
        description=f"{kind.value.capitalize()}s on a broker, as the logged-in user.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = add_action(actions, "create", _create, f"create a {kind}", prints_data=True)
    create.add_argument("name", metavar="NAME")
    keys = create.add_mutually_exclusive_group()
    keys.add_argument(
        "--access-key",
        metavar="KEY",
        help="others must present KEY to publish or consume (visible in the process list:"
        " prefer --access-key-stdin)",
    )
    keys.add_argument(
        "--access-key-stdin",
        action="store_true",
        help="read the access key from the first line of stdin",
    )
    listing = add_action(actions, "list", _list, f"list {plural}", prints_data=True)
    info = add_action(actions, "info", _info, f"show one {kind}", prints_data=True)
    summary = f"delete a {kind} and its messages (owner or admin)"
    delete = add_action(actions, "delete", _delete, summary, prints_data=False)
    for parser in (info, delete):
        parser.add_argument("name", metavar="NAME")
    for parser in (create, listing, info, delete):
        parser.set_defaults(kind=kind)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _columns(kind: DestinationKind) -> list[Column[Destination]]:
    counters = [(_label(name), attrgetter(name)) for name in _COUNTERS[kind]]
    return [
        ("Name", attrgetter("name")),
        ("Owner", attrgetter("owner")),
        ("Access key", attrgetter("protected")),
        *counters,
        ("Published", attrgetter("published")),
        ("Delivered", attrgetter("delivered")),
    ]


def _fields(info: Destination) -> list[tuple[str, object]]:
    return [
        ("name", info.name),
        ("address", info.address),
        ("id", info.id),
        ("owner", info.owner),
        ("access key", info.protected),
        ("created", info.created_at),
        *((_label(name).lower(), getattr(info, name)) for name in _COUNTERS[info.kind]),
        ("published", info.published),
        ("delivered", info.delivered),
    ]


def _create(args: argparse.Namespace) -> int:
    kind: DestinationKind = args.kind
    key: str | None = args.access_key
    if args.access_key_stdin:
        key = read_secret("access key", stdin_flag="--access-key-stdin", from_stdin=True)
    with logged_in(args) as client:
        info = client.create_destination(kind, args.name, access_key=key)
    if args.json:
        print_json(info)
    else:
        protected = ", protected by an access key" if info.protected else ""
        print(f"created {kind} {info.name} ({info.address}){protected}")
    return 0


def _list(args: argparse.Namespace) -> int:
    kind: DestinationKind = args.kind
    with logged_in(args) as client:
        found = client.list_destinations(kind)
    if args.json:
        print_json(found)
    else:
        print_table(found, _columns(kind), empty=f"no {kind.collection}")
    return 0


def _info(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        info = client.get_destination(args.kind, args.name)
    if args.json:
        print_json(info)
    else:
        print_fields(_fields(info))
    return 0


def _delete(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        client.delete_destination(args.kind, args.name)
    print(f"deleted {args.kind} {args.name}")
    return 0
