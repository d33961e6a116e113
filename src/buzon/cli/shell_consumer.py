"""The consumer's side of ``buzon shell``: list, pull from a queue, watch a channel.

Pulling goes through the HTTP API (a lease, then ack or give back), which shows what an
acknowledgement is for. Watching a channel needs a live STOMP subscription; it ends after a
chosen number of messages, at Ctrl-C, or (at a terminal) when Enter is pressed. Enter is
noticed by polling stdin between messages rather than by a reader thread, which would keep
the next menu answer for itself.
"""

from __future__ import annotations

import select
import sys
from operator import attrgetter

from buzon.cli.consume import body_text
from buzon.cli.output import Column, print_table
from buzon.cli.shell_state import ShellState
from buzon.client import (
    BlockingSubscription,
    ChannelInfo,
    DestinationKind,
    ManagementClient,
    QueueInfo,
)

PULL_WAIT_MS = 2_000
"""How long a pull waits for a message to arrive in an empty queue."""
PULL_MOST = 100
POLL_SECONDS = 0.2
"""How often a watch looks for Enter between messages."""

_QUEUE_COLUMNS: list[Column[QueueInfo]] = [
    ("Queue", attrgetter("name")),
    ("Owner", attrgetter("owner")),
    ("Access key", attrgetter("protected")),
    ("Waiting", attrgetter("depth")),
    ("In flight", attrgetter("in_flight")),
    ("Consumers", attrgetter("consumers")),
]
_CHANNEL_COLUMNS: list[Column[ChannelInfo]] = [
    ("Channel", attrgetter("name")),
    ("Owner", attrgetter("owner")),
    ("Access key", attrgetter("protected")),
    ("Subscribers", attrgetter("subscribers")),
]


def list_destinations(state: ShellState) -> None:
    """Show every queue and channel."""
    with state.management() as client:
        queues, channels = client.list_queues(), client.list_channels()
    print_table(queues, _QUEUE_COLUMNS, empty="no queues")
    print_table(channels, _CHANNEL_COLUMNS, empty="no channels")


def pull(state: ShellState) -> None:
    """Lease messages from a queue, show them, then acknowledge them or give them back.

    Whatever ends the action before the answer (Ctrl-C, Ctrl-D, an error) gives them back
    at once: left alone they would stay in flight, invisible, until their lease ran out.
    """
    name = state.prompt.text("Name of the queue")
    with state.management() as client:
        key = state.ask_key(state.find(client, DestinationKind.QUEUE, name))
        most = state.prompt.count("How many messages at most", default=1, most=PULL_MOST)
        messages = client.pull(name, max_messages=most or 1, wait_ms=PULL_WAIT_MS, access_key=key)
        if not messages:
            print(f"  no message arrived in {name} within {PULL_WAIT_MS // 1000} s")
            return
        receipts = [message.receipt for message in messages]
        try:
            for number, message in enumerate(messages, 1):
                again = " (delivered before)" if message.redelivered else ""
                print(f"  [{number}] {body_text(message.body)}{again}")
            acknowledge = state.prompt.yes_no(
                "Acknowledge them (they leave the queue)?", default=True
            )
        except BaseException as stopped:
            if isinstance(stopped, KeyboardInterrupt):
                print()  # Ctrl-C left the cursor after the question
            _give_back(client, name, receipts)
            raise
        if acknowledge:
            print(f"acknowledged {client.ack(name, *receipts)} message(s)")
        else:
            _give_back(client, name, receipts)


def _give_back(client: ManagementClient, name: str, receipts: list[str]) -> None:
    print(f"gave {client.nack(name, *receipts)} message(s) back to {name}")


def watch(state: ShellState) -> None:
    """Subscribe to a channel and print what arrives until told to stop."""
    name = state.prompt.text("Name of the channel")
    with state.management() as management:
        channel = state.find(management, DestinationKind.CHANNEL, name)
    key = state.ask_key(channel)
    limit = state.prompt.count("Stop after how many messages", default=None, most=10**9)
    client = state.stomp_client()
    try:
        subscription = client.subscribe(channel.address, access_key=key, create=False)
        stop = "press Enter or Ctrl-C to stop" if state.prompt.interactive else "Ctrl-C stops"
        print(f"watching {channel.address}; {stop}", flush=True)
        seen = _show(subscription, limit, state.prompt.interactive)
    finally:
        client.close()
    print(f"stopped watching {channel.address} after {seen} message(s)")


def _show(subscription: BlockingSubscription, limit: int | None, interactive: bool) -> int:
    seen = 0
    try:
        while seen != limit:
            try:
                message = subscription.get(timeout=POLL_SECONDS)
            except TimeoutError:
                if interactive and _enter_pressed():
                    break
                continue
            seen += 1
            print(f"  [{seen}] {body_text(message.body)}", flush=True)
    except KeyboardInterrupt:
        print()
    return seen


def _enter_pressed() -> bool:
    """Whether a line was typed at the terminal (and take it, so the menu does not)."""
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        sys.stdin.readline()
    return bool(ready)
