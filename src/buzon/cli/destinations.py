"""``buzon queue`` and ``buzon channel``: create, list, inspect and delete (and purge, peek,
and a queue's scheduled messages).

Queues and channels are the same kind of owned resource to the API, so one set of
commands serves both, parameterised by :class:`DestinationKind`; only the counters each
kind shows differ (a queue's depth and consumers, a channel's subscribers), and queues
have a policy (set with ``create``'s options), can be purged, and keep messages that
``peek`` shows without consuming them.
"""

from __future__ import annotations

import argparse
from operator import attrgetter
from typing import Any

from buzon.cli import bindings, redrive
from buzon.cli.consume import body_json, body_text
from buzon.cli.output import Column, print_fields, print_json, print_table
from buzon.cli.session import Handler, add_action, logged_in, positive_int, read_secret
from buzon.client import (
    ChannelInfo,
    Destination,
    DestinationKind,
    Overflow,
    PeekedMessage,
    QueueInfo,
    QueuePolicy,
    ScheduledMessage,
)
from buzon.store.records import DEFAULT_DEDUP_WINDOW_MS, MAX_DEDUP_WINDOW_MS

_COUNTERS = {
    DestinationKind.QUEUE: ("depth", "scheduled", "in_flight", "consumers"),
    DestinationKind.CHANNEL: ("type", "subscribers", "bindings"),
}
"""The fields each kind adds to what every destination has."""

DEFAULT_PEEK = 10
"""Messages ``queue peek`` shows unless told otherwise (the API's own default)."""
DEFAULT_SCHEDULED = 20
"""Messages ``queue scheduled`` shows unless told otherwise (the API's own default)."""
MAX_MULTIPLIER = 1000.0
"""The largest ``--retry-multiplier`` the API takes."""

_PEEK_COLUMNS: list[Column[PeekedMessage]] = [
    ("Message id", attrgetter("message_id")),
    ("Redelivered", attrgetter("redelivered")),
    ("Headers", lambda m: ", ".join(f"{k}={v}" for k, v in m.headers.items()) or None),
    ("Body", lambda m: body_text(m.body)),
]

_SCHEDULED_COLUMNS: list[Column[ScheduledMessage]] = [
    ("Message id", attrgetter("message_id")),
    ("Deliver at", attrgetter("deliver_at")),
    ("In", lambda m: f"{m.seconds_left:.1f} s"),
    ("Headers", lambda m: ", ".join(f"{k}={v}" for k, v in m.headers.items()) or None),
    ("Body", lambda m: body_text(m.body)),
]


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
    _access_key_options(create, "others must present KEY to publish or consume")
    listing = add_action(actions, "list", _list, f"list {plural}", prints_data=True)
    info = add_action(actions, "info", _info, f"show one {kind}", prints_data=True)
    summary = f"delete a {kind} and its messages (owner or admin)"
    delete = add_action(actions, "delete", _delete, summary, prints_data=False)
    named = [info, delete]
    if kind is DestinationKind.CHANNEL:
        create.add_argument(
            "--type",
            choices=["fanout", "direct", "topic"],
            default="fanout",
            help="how it routes, fixed at creation: every subscriber and bound queue"
            " (fanout, default), those whose binding key equals the routing key (direct), or"
            " whose pattern matches it word by word, '*' one word, '#' zero or more (topic)",
        )
        bindings.register(actions)
    if kind is DestinationKind.QUEUE:
        _policy_options(create)
        summary = "drop a queue's waiting messages (owner or admin)"
        named.append(add_action(actions, "purge", _purge, summary, prints_data=False))
        named.append(_peek_action(actions))
        named.append(_scheduled_action(actions))
        for verb, summary in (
            ("deliver-now", "deliver a scheduled message at once (owner or admin)"),
            ("cancel-scheduled", "drop a scheduled message for good (owner or admin)"),
        ):
            action = add_action(actions, verb, _settle_scheduled, summary, prints_data=False)
            action.add_argument("name", metavar="NAME")
            action.add_argument("message_id", metavar="MESSAGE_ID")
            action.set_defaults(deliver=verb == "deliver-now")
        named.append(_redrive_action(actions))
    for parser in named:
        parser.add_argument("name", metavar="NAME")
    for parser in (create, listing, *named):
        parser.set_defaults(kind=kind)


def _access_key_options(parser: argparse.ArgumentParser, key_help: str) -> None:
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--access-key",
        metavar="KEY",
        help=f"{key_help} (visible in the process list: prefer --access-key-stdin)",
    )
    keys.add_argument(
        "--access-key-stdin",
        action="store_true",
        help="read the access key from the first line of stdin",
    )


def _access_key(args: argparse.Namespace) -> str | None:
    if args.access_key_stdin:
        return read_secret("access key", stdin_flag="--access-key-stdin", from_stdin=True)
    key: str | None = args.access_key
    return key


def _peek_action(actions: Any) -> argparse.ArgumentParser:
    summary = "show a queue's waiting messages, oldest first, without consuming them"
    return _listing_action(actions, "peek", _peek, summary, DEFAULT_PEEK)


def _scheduled_action(actions: Any) -> argparse.ArgumentParser:
    summary = "show a queue's scheduled messages (delayed, or waiting to be retried), soonest first"
    return _listing_action(actions, "scheduled", _scheduled, summary, DEFAULT_SCHEDULED)


def _listing_action(
    actions: Any, verb: str, handler: Handler, summary: str, default: int
) -> argparse.ArgumentParser:
    """An action that shows some of a queue's messages: ``--limit`` and the access key."""
    listing = add_action(actions, verb, handler, summary, prints_data=True)
    listing.add_argument(
        "--limit",
        type=positive_int,
        default=default,
        metavar="N",
        help=f"show at most N messages (default {default}, at most 100)",
    )
    _access_key_options(listing, "the key of another user's protected queue")
    return listing


def _multiplier(text: str) -> float:
    """argparse type: a retry multiplier, 1 or more (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= MAX_MULTIPLIER:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {MAX_MULTIPLIER:g}")
    return value


def _redrive_action(actions: Any) -> argparse.ArgumentParser:
    summary = "move a dead-letter queue's messages back to their original queues (owner or admin)"
    parser = add_action(actions, "redrive", _redrive, summary, prints_data=True)
    redrive.add_options(parser)
    _access_key_options(parser, "the target's key, when it is another user's protected queue")
    return parser


def _policy_options(parser: argparse.ArgumentParser) -> None:
    policy = parser.add_argument_group("policy (fixed at creation)")
    policy.add_argument(
        "--transient",
        action="store_true",
        help="keep messages in memory only (they do not survive a restart)",
    )
    policy.add_argument("--max-length", type=positive_int, metavar="N", help="waiting messages")
    policy.add_argument(
        "--max-length-bytes", type=positive_int, metavar="BYTES", help="waiting body bytes"
    )
    policy.add_argument(
        "--overflow",
        choices=[o.value for o in Overflow],
        default=Overflow.REJECT_PUBLISH.value,
        help="past a maximum: refuse publishes (default) or drop the oldest",
    )
    policy.add_argument("--ttl", type=positive_int, metavar="MS", help="message lifetime in ms")
    policy.add_argument(
        "--dead-letter-queue",
        metavar="QUEUE",
        help="where expired, dropped and too-often-delivered messages go",
    )
    policy.add_argument(
        "--max-deliveries", type=positive_int, metavar="N", help="deliveries before dead-letter"
    )
    policy.add_argument(
        "--ack-timeout-ms",
        type=positive_int,
        metavar="MS",
        help="a delivery not acknowledged within this long goes back to the queue (the"
        " consumer stays connected; see /buzon/extend to keep a lease)",
    )
    policy.add_argument(
        "--backlog-window",
        type=positive_int,
        metavar="N",
        help="waiting messages kept in memory, the rest on disk (default: the broker's)",
    )
    policy.add_argument(
        "--backlog-window-bytes",
        type=positive_int,
        metavar="BYTES",
        help="body bytes of that window (default: the broker's)",
    )
    policy.add_argument(
        "--retry-delay-ms",
        type=positive_int,
        metavar="MS",
        help="a NACKed message waits MS before its first redelivery (default: at once)",
    )
    policy.add_argument(
        "--retry-multiplier",
        type=_multiplier,
        default=1.0,
        metavar="X",
        help="each further NACK of it multiplies that wait by X (1 or more, e.g. 2 or 1.5)",
    )
    policy.add_argument(
        "--retry-max-delay-ms",
        type=positive_int,
        metavar="MS",
        help="the longest retry wait (default: no bound but the broker's --max-delay-ms)",
    )
    policy.add_argument(
        "--dedup-window-ms",
        type=dedup_window,
        metavar="MS",
        default=DEFAULT_DEDUP_WINDOW_MS,
        help="how long a publish's idempotency-key is remembered: a repeat within it is not"
        " enqueued again (0 ignores keys; default 600000, 10 minutes)",
    )
    keys = policy.add_mutually_exclusive_group()
    keys.add_argument(
        "--dead-letter-key",
        metavar="KEY",
        help="the access key of the dead-letter queue, when it is another user's protected"
        " queue (visible in the process list: prefer --dead-letter-key-stdin)",
    )
    keys.add_argument(
        "--dead-letter-key-stdin",
        action="store_true",
        help="read the dead-letter queue's key from stdin (the line after the access key's,"
        " with --access-key-stdin)",
    )


def dedup_window(text: str) -> int:
    """argparse type: a dedup window in ms, 0 (keys ignored) up to a week."""
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_DEDUP_WINDOW_MS):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of ms from 0 to {MAX_DEDUP_WINDOW_MS}"
        )
    return int(text)


def _policy_of(args: argparse.Namespace) -> QueuePolicy:
    return QueuePolicy(
        durable=not args.transient,
        max_length=args.max_length,
        max_length_bytes=args.max_length_bytes,
        overflow=Overflow(args.overflow),
        message_ttl_ms=args.ttl,
        dead_letter_queue=args.dead_letter_queue,
        max_deliveries=args.max_deliveries,
        backlog_window=args.backlog_window,
        backlog_window_bytes=args.backlog_window_bytes,
        retry_delay_ms=args.retry_delay_ms,
        retry_multiplier=args.retry_multiplier,
        retry_max_delay_ms=args.retry_max_delay_ms,
        ack_timeout_ms=args.ack_timeout_ms,
        dedup_window_ms=args.dedup_window_ms,
    )


def describe_policy(policy: QueuePolicy) -> str:
    """One line for a queue's policy, e.g. ``durable, at most 10 messages (drop-head)``."""
    parts = ["durable" if policy.durable else "transient (memory only)"]
    bounds = [
        f"{n} {unit}"
        for n, unit in ((policy.max_length, "messages"), (policy.max_length_bytes, "bytes"))
        if n is not None
    ]
    if bounds:
        parts.append(f"at most {' and '.join(bounds)} ({policy.overflow.value})")
    if policy.message_ttl_ms is not None:
        parts.append(f"messages live {policy.message_ttl_ms} ms")
    if policy.max_deliveries is not None:
        parts.append(f"at most {policy.max_deliveries} deliveries")
    if policy.dead_letter_queue is not None:
        parts.append(f"dead letters to {policy.dead_letter_queue}")
    if policy.ack_timeout_ms is not None:
        parts.append(f"ack within {policy.ack_timeout_ms} ms")
    window = [
        f"{n} {unit}"
        for n, unit in (
            (policy.backlog_window, "messages"),
            (policy.backlog_window_bytes, "bytes"),
        )
        if n is not None
    ]
    if window:
        parts.append(f"at most {' and '.join(window)} in memory")
    if policy.retry_delay_ms is not None:
        parts.append(_describe_retry(policy))
    if policy.dedup_window_ms:
        parts.append(f"idempotency keys kept {policy.dedup_window_ms} ms")
    else:
        parts.append("idempotency keys ignored")
    return ", ".join(parts)


def _describe_retry(policy: QueuePolicy) -> str:
    """The retry back-off, e.g. ``retries wait 1000 ms, x2 each time, at most 60000 ms``."""
    retry = f"retries wait {policy.retry_delay_ms} ms"
    if policy.retry_multiplier != 1.0:
        retry += f", x{policy.retry_multiplier:g} each time"
    if policy.retry_max_delay_ms is not None:
        retry += f", at most {policy.retry_max_delay_ms} ms"
    return retry


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
        *_extra_fields(info),
    ]


def _extra_fields(info: Destination) -> list[tuple[str, object]]:
    if isinstance(info, QueueInfo):
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(info.dead_lettered_by_reason.items()))
        return [
            ("scheduled total", info.scheduled_total),
            ("retried", info.retried),
            ("lease expired", info.lease_expired),
            ("late settles", info.late_settles),
            ("dead lettered", reasons or None),
            ("policy", describe_policy(info.policy)),
        ]
    if isinstance(info, ChannelInfo):
        durables = ", ".join(
            f"{d.name} ({d.owner or 'deleted user'}, {d.backlog} waiting)"
            for d in info.durable_subscriptions
        )
        return [("durable subscriptions", durables or None)]
    return []


def _create(args: argparse.Namespace) -> int:
    kind: DestinationKind = args.kind
    key = _access_key(args)
    with logged_in(args) as client:
        info: Destination
        if kind is DestinationKind.QUEUE:
            dead_letter_key: str | None = args.dead_letter_key
            if args.dead_letter_key_stdin:
                dead_letter_key = read_secret(
                    "dead-letter queue's key", stdin_flag="--dead-letter-key-stdin", from_stdin=True
                )
            info = client.create_queue(
                args.name,
                access_key=key,
                policy=_policy_of(args),
                dead_letter_access_key=dead_letter_key,
            )
        else:
            info = client.create_channel(args.name, access_key=key, type=args.type)
    if args.json:
        print_json(info)
    else:
        protected = ", protected by an access key" if info.protected else ""
        routes = ""
        if isinstance(info, ChannelInfo) and info.type != "fanout":
            routes = f", routing by {info.type} keys"
        print(f"created {kind} {info.name} ({info.address}){routes}{protected}")
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


def _purge(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        purged = client.purge_queue(args.name)
    print(f"purged {purged} waiting messages from queue {args.name}")
    return 0


def _peek(args: argparse.Namespace) -> int:
    key = _access_key(args)
    with logged_in(args) as client:
        waiting = client.peek(args.name, limit=args.limit, access_key=key)
    if args.json:
        print_json([_peeked_json(message) for message in waiting])
    else:
        print_table(waiting, _PEEK_COLUMNS, empty=f"no messages waiting in queue {args.name}")
    return 0


def _scheduled(args: argparse.Namespace) -> int:
    key = _access_key(args)
    with logged_in(args) as client:
        waiting = client.scheduled(args.name, limit=args.limit, access_key=key)
    if args.json:
        print_json(
            [
                {
                    "message_id": message.message_id,
                    "headers": message.headers,
                    **body_json(message.body),
                    "deliver_at": message.deliver_at.isoformat(),
                    "seconds_left": message.seconds_left,
                }
                for message in waiting
            ]
        )
    else:
        empty = f"no messages scheduled in queue {args.name}"
        print_table(waiting, _SCHEDULED_COLUMNS, empty=empty)
    return 0


def _settle_scheduled(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        if args.deliver:
            client.deliver_now(args.name, args.message_id)
        else:
            client.cancel_scheduled(args.name, args.message_id)
    done = "delivered" if args.deliver else "cancelled"
    print(f"{done} scheduled message {args.message_id} of queue {args.name}")
    return 0


def _peeked_json(message: PeekedMessage) -> dict[str, object]:
    """A peeked message as JSON types, its body as ``consume --json`` gives it."""
    return {
        "message_id": message.message_id,
        "headers": message.headers,
        **body_json(message.body),
        "redelivered": message.redelivered,
    }


def _redrive(args: argparse.Namespace) -> int:
    return redrive.run(args, _access_key(args))
