"""Chat: every participant sees every line, because a channel fans each message out.

Start a broker (``buzon serve``), then run one participant per terminal::

    BUZON_PASSWORD=... python examples/chat.py alice
    BUZON_PASSWORD=... python examples/chat.py bob

Type a line and press Enter: it is published to ``/topic/<room>`` with a ``from`` header,
and every participant connected at that moment prints it (you too). Ctrl-D leaves.

Settings: ``--stomp-url`` (default ``$BUZON_STOMP_URL``, else ``stomp://127.0.0.1:61613``),
``--user`` (default ``$BUZON_USER``, else ``admin``) and that user's password in
``$BUZON_PASSWORD``; ``--room`` names the channel. Participants may share one account: the
name on the command line is what the others see.

This example uses the blocking client: the main thread reads your lines and publishes
them, a second thread prints what the channel delivers.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from buzon.client import BlockingSubscription, Client


def show(room: BlockingSubscription) -> None:
    """Print every line said in the room until the subscription ends."""
    for message in room:
        print(f"<{message.headers.get('from', '?')}> {message.text}", flush=True)


def chat(client: Client, address: str, name: str) -> None:
    room = client.subscribe(address)
    listener = threading.Thread(target=show, args=(room,))
    listener.start()
    try:
        print(f"{name} joined {address}; type lines, Ctrl-D leaves", flush=True)
        for line in sys.stdin:
            text = line.rstrip("\n")
            if text:
                client.publish(address, text, headers={"from": name})
    finally:
        room.unsubscribe()
        listener.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A chat room on a channel.")
    parser.add_argument("name", help="your name in the room")
    parser.add_argument(
        "--stomp-url", default=os.environ.get("BUZON_STOMP_URL", "stomp://127.0.0.1:61613")
    )
    parser.add_argument("--user", default=os.environ.get("BUZON_USER", "admin"))
    parser.add_argument("--room", default="example-chat", help="the channel's name")
    args = parser.parse_args(argv)
    password = os.environ.get("BUZON_PASSWORD")
    if not password:
        parser.error(f"set BUZON_PASSWORD to the password of {args.user}")
    with Client(args.stomp_url, login=args.user, passcode=password) as client:
        chat(client, f"/topic/{args.room}", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
