"""``buzon consume QUEUE`` and ``buzon subscribe CHANNEL``: print messages as they arrive.

Both subscribe in ``client-individual`` mode, whatever ``--ack`` says, because only an
acknowledged subscription honours a prefetch window: without one the broker would push a
whole queue at a ``--max 1`` consumer and drop what it did not print. The modes differ in
when the ACK goes: by default as soon as a message arrives, before it is printed (at most
once, like STOMP ``auto``); with ``--ack`` after it is printed (at least once: if buzon
stops first, the broker hands the message out again).

A name that is no queue (or channel) is an error, never a new destination: the SUBSCRIBE
says ``auto-create:false`` (see ``missing``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

from buzon.cli.missing import missing_for_command
from buzon.cli.session import add_action, positive_int
from buzon.cli.stomp_login import (
    access_key,
    add_access_key_options,
    add_stomp_options,
    address_of,
    stomp_login,
)
from buzon.client import (
    ApiError,
    BlockingMessage,
    BlockingSubscription,
    BuzonConnectionError,
    DestinationKind,
)
from buzon.errors import ErrorCode

DEFAULT_PREFETCH = 100
"""Messages the broker may send ahead of the acknowledgements (the broker's own default)."""

_COMMANDS = {
    DestinationKind.QUEUE: (
        "consume",
        "print messages from a queue as they arrive (each message goes to one consumer)",
    ),
    DestinationKind.CHANNEL: (
        "subscribe",
        "print messages published to a channel from now on (every subscriber gets each one)",
    ),
}


def register(commands: Any) -> None:
    """Add ``buzon consume`` and ``buzon subscribe`` to the top-level subcommands."""
    for kind, (name, summary) in _COMMANDS.items():
        parser = add_action(commands, name, _consume, summary, prints_data=True)
        parser.epilog = (
            "Each message is acknowledged as it arrives (at most once), or with --ack after"
            " it is printed (at least once). With --max, messages the broker had sent ahead"
            " and that were not printed go back to the queue, marked redelivered."
        )
        parser.add_argument("name", metavar=kind.value.upper())
        parser.add_argument(
            "--ack",
            action="store_true",
            help="acknowledge each message after printing it (default: as it arrives)",
        )
        parser.add_argument(
            "--prefetch",
            type=positive_int,
            default=DEFAULT_PREFETCH,
            metavar="N",
            help=f"messages the broker may send ahead of the acks (default {DEFAULT_PREFETCH})",
        )
        parser.add_argument("--max", type=positive_int, metavar="N", help="exit after N messages")
        add_access_key_options(parser)
        add_stomp_options(parser)
        parser.set_defaults(kind=kind)


def _consume(args: argparse.Namespace) -> int:
    address = address_of(args.kind, args.name)
    login = stomp_login(args)
    key = access_key(args)
    prefetch = min(args.prefetch, args.max or args.prefetch)
    with login.client() as client:
        try:
            messages = client.subscribe(
                address, ack="client-individual", prefetch=prefetch, access_key=key, create=False
            )
        except ApiError as exc:
            if exc.code is not ErrorCode.DESTINATION_NOT_FOUND:
                raise
            raise missing_for_command(args, login, args.kind, args.name) from None
        if sys.stderr.isatty():  # a person is watching; stdout stays the messages alone
            print(f"waiting for messages on {address} (Ctrl-C to stop)", file=sys.stderr)
        _print_messages(messages, args)
    return 0


def _print_messages(messages: BlockingSubscription, args: argparse.Namespace) -> None:
    show = _print_json if args.json else _print_text
    shown = 0
    for message in messages:
        if not args.ack and not _settle(message):
            continue
        try:
            show(message)
        except BrokenPipeError:
            _silence_stdout()
            return
        if args.ack:
            _settle(message)
        shown += 1
        if shown == args.max:
            return


def _settle(message: BlockingMessage) -> bool:
    """ACK ``message``; False when its connection is gone (the broker redelivers it)."""
    try:
        message.ack()
    except BuzonConnectionError:
        return False
    return True


def _silence_stdout() -> None:
    """The reader of stdout left (``| head``): send the rest, and the final flush, nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def body_text(body: bytes) -> str:
    """A body as printable text; a binary one is described, not shown."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return f"(binary body, {len(body)} bytes: use --json to see it)"


def _print_text(message: BlockingMessage) -> None:
    """Print the body of ``message``."""
    print(body_text(message.body), flush=True)


def body_json(body: bytes) -> dict[str, str]:
    """A body for JSON output: ``body`` when it is UTF-8 text, else ``body_base64``."""
    try:
        return {"body": body.decode()}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode()}


def _json_of(message: BlockingMessage) -> dict[str, object]:
    """``message`` as JSON types (see :func:`body_json` for its body)."""
    return {
        "message_id": message.message_id,
        "destination": message.destination,
        "headers": dict(message.headers),
        **body_json(message.body),
        "redelivered": message.redelivered,
    }


def _print_json(message: BlockingMessage) -> None:
    """Print ``message`` as one line of JSON."""
    print(json.dumps(_json_of(message), ensure_ascii=False), flush=True)
