"""``buzon queue redrive``: move a dead-letter queue's messages back, and wait for the end.

The broker does the moving (``POST /queues/{name}/redrive``); the command follows it by
polling, with a progress bar on stderr at a terminal and one summary line at the end.
Ctrl-C cancels the redrive, so that a command stopped by hand leaves nothing running.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

from buzon.cli.output import print_json
from buzon.cli.session import CliError, logged_in, positive_int
from buzon.client import ManagementClient, RedriveInfo

POLL = 0.2
"""Seconds between two looks at a running redrive."""

INTERRUPTED = 130


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--to``, ``--rate`` and ``--limit`` of ``buzon queue redrive``."""
    parser.add_argument(
        "--to", metavar="QUEUE", help="move them to QUEUE instead of where each came from"
    )
    parser.add_argument(
        "--rate", type=positive_int, metavar="N", help="at most N messages a second, evenly"
    )
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="move at most N (the oldest)"
    )


def run(args: argparse.Namespace, key: str | None) -> int:
    """Start the redrive of ``args.name``, follow it to its end; 0 when it is done.

    Raises:
        CliError: it failed (or was cancelled elsewhere).
    """
    with logged_in(args) as client:
        started = client.redrive(
            args.name, to=args.to, rate_per_s=args.rate, limit=args.limit, access_key=key
        )
        try:
            with _progress(started) as show:
                final = _follow(client, started, show)
        except KeyboardInterrupt:
            stopped = client.cancel_redrive(started.id)
            if stopped.state == "done":  # it had finished: nothing was interrupted
                final = stopped
            else:
                print(
                    f"buzon: interrupted; the redrive was cancelled after moving"
                    f" {stopped.moved} of {stopped.total} messages",
                    file=sys.stderr,
                )
                return INTERRUPTED
    if final.state != "done":
        raise CliError(
            detail=f"the redrive of queue {final.queue} failed after moving {final.moved} of"
            f" {final.total} messages: {final.error}"
        )
    if args.json:
        print_json(final)
    else:
        print(_summary(final))
    return 0


def _follow(
    client: ManagementClient, redrive: RedriveInfo, show: Callable[[RedriveInfo], None]
) -> RedriveInfo:
    """Poll until the redrive ends; return how it ended."""
    while redrive.running:
        show(redrive)
        time.sleep(POLL)
        redrive = client.redrive_status(redrive.id)
    show(redrive)
    return redrive


@contextlib.contextmanager
def _progress(redrive: RedriveInfo) -> Iterator[Callable[[RedriveInfo], None]]:
    """A progress bar of the moved messages on stderr, at a terminal only."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"redriving {redrive.queue}", total=redrive.total)
        yield lambda now: bar.update(task, completed=now.moved, total=now.total)


def _summary(redrive: RedriveInfo) -> str:
    where = f"queue {redrive.to}" if redrive.to else "their original queues"
    line = f"moved {redrive.moved} of {redrive.total} messages from {redrive.queue} to {where}"
    if redrive.moved < redrive.total:
        line += f" ({redrive.total - redrive.moved} left the queue meanwhile)"
    return line
