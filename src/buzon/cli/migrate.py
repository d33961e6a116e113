"""``buzon migrate --from sqlite:DIR --to postgresql://USER@HOST:PORT/DB``: copy a stopped
single-node broker's accounts, destinations and waiting messages into a new PostgreSQL
database, where ``buzon serve --storage postgresql`` nodes take over
(docs/migrating-to-postgresql.md). The SQLite directory is only read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

from buzon.cli.session import CliError

if TYPE_CHECKING:
    from buzon.store.transfer import Copied
    from buzon.store.transfer import Progress as CopyProgress

SOURCE_SCHEME = "sqlite:"
TARGET_SCHEMES = ("postgresql", "postgres")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "migrate",
        help="copy a stopped broker's SQLite data into a new PostgreSQL database",
        description="Copy the users, tokens, queues, channels, durable subscriptions and"
        " waiting messages of a stopped single-node broker (its --data-dir) into a new, empty"
        " PostgreSQL database, for buzon serve --storage postgresql. The data directory is"
        " only read.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="sqlite:DIR",
        help="the data directory of the stopped broker, e.g. sqlite:buzon-data",
    )
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="postgresql://USER@HOST:PORT/DB",
        help="the new database (a password comes best from PGPASSWORD or ~/.pgpass)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args.source)
    url = _database_url(args.target)
    # imported here: the PostgreSQL driver, which other commands do not need
    from buzon.store.transfer import copy_to_postgres

    # the store's own warnings would repeat the failure the one error line reports
    logging.getLogger("buzon.store").addHandler(logging.NullHandler())
    with _progress() as progress:
        copied = asyncio.run(copy_to_postgres(data_dir, url, progress=progress))
    print(_summary(copied, data_dir, url))
    return 0


def _data_dir(source: str) -> Path:
    if not source.startswith(SOURCE_SCHEME) or source == SOURCE_SCHEME:
        raise CliError(
            detail=f"--from takes sqlite:DIR, the data directory of a stopped buzon serve"
            f" (got {source[:100]!r})"
        )
    return Path(source.removeprefix(SOURCE_SCHEME)).expanduser()


def _database_url(target: str) -> str:
    scheme, sep, rest = target.partition("://")
    if scheme not in TARGET_SCHEMES or not sep or not rest:
        raise CliError(
            detail=f"--to takes postgresql://USER@HOST:PORT/DB (got {_shown(target)[:100]!r})"
        )
    return target


def _shown(url: str) -> str:
    """The URL without its password, if it holds one."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@contextlib.contextmanager
def _progress() -> Iterator[CopyProgress | None]:
    """A progress bar of the messages on stderr, at a terminal only."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("copying messages", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _summary(copied: Copied, data_dir: Path, url: str) -> str:
    counts = ", ".join(
        (
            _count(copied.users, "user"),
            _count(copied.tokens, "login token"),
            _count(copied.destinations, "queue or channel", "queues and channels"),
            _count(copied.durable_subscriptions, "durable subscription"),
        )
    )
    waiting = _count(copied.messages, "waiting message")
    lines = [
        f"copied {counts} and {waiting} from {data_dir} to {_shown(url)} ({data_dir} is"
        " unchanged); start the nodes with --storage postgresql --database-url and that URL"
    ]
    if copied.unclean:
        lines.append(
            "the broker's last run did not stop cleanly: the messages are marked redelivered"
        )
    return "\n".join(lines)


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number:,} {one if number == 1 else many or one + 's'}"
