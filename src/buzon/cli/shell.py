"""``buzon shell``: a guided session with numbered menus, for people who would rather be
asked than read flags.

The main menu leads to a publisher menu (account, queues and channels, connect and send)
and a consumer menu (list, pull from a queue, watch a channel). An action that fails, at
the broker or in the answers, prints one ``error:`` line and the menu comes back; Ctrl-C
cancels the action under way; the end of stdin (Ctrl-D) ends the session. It reads plain
lines from stdin, so a script or a test can drive it through a pipe.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from buzon.cli import shell_consumer, shell_publisher
from buzon.cli.session import add_action
from buzon.cli.shell_prompt import EndOfInput, Prompter
from buzon.cli.shell_state import ShellState
from buzon.cli.stomp_login import add_stomp_url_option, stomp_address
from buzon.errors import BuzonError

Action = Callable[[ShellState], None]
Menu = tuple[str, Sequence[tuple[str, Action]]]

_ACCOUNT: list[tuple[str, Action]] = [
    ("register an account", shell_publisher.register_account),
    ("log in", shell_publisher.log_in),
    ("log out", shell_publisher.log_out),
]
PUBLISHER: Menu = (
    "Publisher menu",
    [
        *_ACCOUNT,
        ("create a queue or a channel", shell_publisher.create),
        ("list queues and channels", shell_consumer.list_destinations),
        ("delete a queue or a channel", shell_publisher.delete),
        ("connect to a queue or a channel", shell_publisher.connect),
        ("disconnect", shell_publisher.disconnect),
        ("send a message", shell_publisher.send),
    ],
)
CONSUMER: Menu = (
    "Consumer menu",
    [
        *_ACCOUNT,
        ("list queues and channels", shell_consumer.list_destinations),
        ("pull messages from a queue", shell_consumer.pull),
        ("subscribe to a channel and watch messages arrive", shell_consumer.watch),
    ],
)
MAIN = [
    ("as a publisher: account, queues and channels, send messages", PUBLISHER),
    ("as a consumer: list, pull from a queue, watch a channel", CONSUMER),
]


def register(commands: Any) -> None:
    """Add ``buzon shell`` to the top-level subcommands."""
    summary = "a guided, menu-driven session for publishers and consumers"
    parser = add_action(commands, "shell", run, summary, prints_data=False)
    add_stomp_url_option(parser)


def run(args: argparse.Namespace) -> int:
    """Greet, then run the main menu until quit, Ctrl-D or the end of piped answers."""
    stomp_url, _ = stomp_address(args)  # asks the broker once (GET /info) for the session
    state = ShellState(args, Prompter(), stomp_url)
    print(f"buzon shell: broker {state.url} (STOMP {stomp_url})")
    print("Type the number of a choice and press Enter; Ctrl-C cancels an action, Ctrl-D leaves.")
    try:
        while True:
            choice = state.prompt.choose(
                f"Main menu ({state.status()})", [label for label, _ in MAIN], back="quit"
            )
            if choice is None:
                break
            _menu(state, MAIN[choice][1])
    except EndOfInput:
        pass
    finally:
        state.disconnect()
    print("bye")
    return 0


def _menu(state: ShellState, menu: Menu) -> None:
    title, actions = menu
    while True:
        choice = state.prompt.choose(
            f"{title} ({state.status()})", [label for label, _ in actions], back="back"
        )
        if choice is None:
            return
        _attempt(state, actions[choice][1])


def _attempt(state: ShellState, action: Action) -> None:
    """Run one action; its failure is one line, and the menu comes back."""
    try:
        action(state)
    except BuzonError as exc:
        print(f"error: {exc}")
    except KeyboardInterrupt:
        print("\ncancelled")
