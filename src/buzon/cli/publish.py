"""``buzon publish``, and how every messaging command logs in over STOMP.

STOMP logins. The broker checks a user name and a password on every STOMP connection
(the bearer token that ``buzon user login`` keeps is for the HTTP API only), so the
messaging commands (``publish``, ``consume``, ``subscribe``, ``shell``) find:

- where: ``--stomp-url``, else ``$BUZON_STOMP_URL``, else port 61613 on the host of the
  HTTP URL (``--url``, ``$BUZON_URL``);
- who: ``--username``, else the user named in the STOMP URL, else the user logged in with
  ``buzon user login`` to that HTTP URL;
- the password: the first line of stdin with ``--password-stdin``, else
  ``$BUZON_PASSWORD``, else asked at the terminal. Never an argument and never in the URL,
  where other local users would read it in the process list.

Publishing. Every message asks for a receipt, so the command exits 0 only when the broker
accepted all of them; up to ``WINDOW`` receipts are awaited at once, which keeps a long run
fast without letting an unconfirmed backlog grow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

from buzon.cli.session import (
    CliError,
    Credentials,
    add_action,
    login_hint,
    read_secret,
    url_of,
)
from buzon.client import AsyncClient, Client, DestinationKind
from buzon.client.urls import parse_stomp_url
from buzon.errors import BuzonError, ErrorCode

DEFAULT_STOMP_PORT = 61613
WINDOW = 256
"""Publishes awaiting their receipt at once: enough to hide the round trip on a LAN."""
LINE_BUFFER = 1024
"""stdin lines read ahead of the publisher."""
PROGRESS_MIN_MESSAGES = 1000
PROGRESS_MIN_SECONDS = 3.0
"""A run shows a progress bar from this many messages, or when its rate makes it last this long."""

Body = str | bytes


@dataclass(frozen=True, slots=True)
class StompLogin:
    """Where and as whom a messaging command connects over STOMP."""

    url: str
    username: str
    password: str = field(repr=False)

    def async_client(self) -> AsyncClient:
        """An asyncio client for this login (connect it with ``async with``)."""
        return AsyncClient(self.url, login=self.username, passcode=self.password)

    def client(self) -> Client:
        """A blocking client for this login (connect it with ``with``)."""
        return Client(self.url, login=self.username, passcode=self.password)


def add_stomp_url_option(parser: argparse.ArgumentParser) -> None:
    """``--stomp-url`` (see the module docstring)."""
    parser.add_argument(
        "--stomp-url",
        metavar="URL",
        help="the broker's STOMP address, stomp://HOST:PORT"
        f" (default: $BUZON_STOMP_URL, else port {DEFAULT_STOMP_PORT} on the host of --url)",
    )


def add_stomp_options(parser: argparse.ArgumentParser) -> None:
    """``--stomp-url``, ``--username`` and ``--password-stdin`` (see the module docstring)."""
    add_stomp_url_option(parser)
    parser.add_argument(
        "--username", help="log in as this user (default: the one of 'buzon user login')"
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else $BUZON_PASSWORD, else asked)",
    )


def add_access_key_options(parser: argparse.ArgumentParser) -> None:
    """``--access-key`` and ``--access-key-stdin``."""
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--access-key",
        metavar="KEY",
        help="the key of another user's protected queue or channel (visible in the process"
        " list: prefer --access-key-stdin)",
    )
    keys.add_argument(
        "--access-key-stdin",
        action="store_true",
        help="read the access key from stdin (the line after the password with --password-stdin)",
    )


def address_of(kind: DestinationKind, name: str) -> str:
    """The STOMP destination of a queue (``/queue/NAME``) or a channel (``/topic/NAME``)."""
    return f"/{'topic' if kind is DestinationKind.CHANNEL else 'queue'}/{name}"


def stomp_address(args: argparse.Namespace) -> tuple[str, str | None]:
    """The STOMP URL without credentials, and the user it names, if any.

    Raises:
        CliError: the URL carries a password.
        RequestError: it is not a ``stomp://`` or ``stomp+ssl://`` URL.
    """
    given: str | None = args.stomp_url or os.environ.get("BUZON_STOMP_URL")
    if not given:
        return f"stomp://{_bracketed(urlsplit(url_of(args)).hostname)}:{DEFAULT_STOMP_PORT}", None
    address = parse_stomp_url(given)
    if address.passcode is not None:
        raise CliError(
            detail="the STOMP URL must not hold a password (other users can read it);"
            " use --password-stdin or $BUZON_PASSWORD"
        )
    scheme = "stomp+ssl" if address.tls else "stomp"
    return f"{scheme}://{_bracketed(address.host)}:{address.port}", address.login


def _bracketed(host: str | None) -> str:
    host = host or "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _stomp_user(args: argparse.Namespace, named: str | None) -> str:
    given: str | None = args.username or named
    if given:
        return given
    url = url_of(args)
    login = Credentials().get(url)
    if login is None:
        raise CliError(
            ErrorCode.NOT_AUTHENTICATED,
            f"who should log in? give --username, or run: {login_hint(url)}",
        )
    return login.username


def _stomp_password(from_stdin: bool) -> str:
    """The password: a line of stdin, else ``$BUZON_PASSWORD``, else asked at the terminal."""
    from_env = None if from_stdin else os.environ.get("BUZON_PASSWORD")
    if from_env:
        return from_env
    return read_secret("password", stdin_flag="--password-stdin", from_stdin=from_stdin)


def stomp_login(args: argparse.Namespace) -> StompLogin:
    """Resolve the STOMP URL, user and password of a messaging command."""
    url, named = stomp_address(args)
    username = _stomp_user(args, named)
    return StompLogin(url, username, _stomp_password(args.password_stdin))


def access_key(args: argparse.Namespace) -> str | None:
    """``--access-key``, or a line of stdin with ``--access-key-stdin`` (read after the
    password, so call this after :func:`stomp_login`)."""
    if args.access_key_stdin:
        return read_secret("access key", stdin_flag="--access-key-stdin", from_stdin=True)
    key: str | None = args.access_key
    return key


# -- the command ---------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add ``buzon publish`` to the top-level subcommands."""
    summary = "publish messages to a queue or a channel"
    parser = add_action(commands, "publish", _publish, summary, prints_data=False)
    parser.epilog = (
        "Without MESSAGE or --file, each line of stdin is one message (empty lines are"
        " skipped). With --password-stdin the first line is the password, and with"
        " --access-key-stdin the next one is the key."
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", metavar="NAME", help="to this queue (one consumer gets each)")
    target.add_argument("--channel", metavar="NAME", help="to this channel (every subscriber)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("message", nargs="?", metavar="MESSAGE", help="the message text")
    source.add_argument("--file", type=Path, help="send FILE's content, as it is, as one message")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a header for the consumers (repeatable)",
    )
    parser.add_argument(
        "--count", type=positive_int, default=1, metavar="N", help="publish each message N times"
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="publish at most R messages per second (default: as fast as the broker confirms)",
    )
    add_access_key_options(parser)
    add_stomp_options(parser)


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero."""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


@dataclass(slots=True)
class _Run:
    """What to publish, and how far it got."""

    address: str
    headers: dict[str, str]
    content_type: str | None
    key: str | None
    rate: float | None
    confirmed: int = 0


def _headers(pairs: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not name or not equals:
            raise CliError(detail=f"--header {pair!r}: write it as NAME=VALUE")
        headers[name] = value
    return headers


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(detail=f"cannot read {path}: {exc.strerror}") from None


def _publish(args: argparse.Namespace) -> int:
    kind = DestinationKind.QUEUE if args.queue else DestinationKind.CHANNEL
    headers = _headers(args.header)
    run = _Run(
        address=address_of(kind, args.queue or args.channel),
        headers=headers,
        content_type=headers.pop("content-type", None),
        key=None,
        rate=args.rate,
    )
    body: Body | None = _read_file(args.file) if args.file else args.message
    login = stomp_login(args)
    run.key = access_key(args)
    total = None if body is None else args.count
    elapsed = asyncio.run(_publish_run(login, run, _bodies(body, args.count), total))
    print(_summary(run, elapsed))
    return 0


def _summary(run: _Run, elapsed: float) -> str:
    count = run.confirmed
    rate = f" ({count / elapsed:,.0f} msg/s)" if elapsed > 0 and count else ""
    noun = "message" if count == 1 else "messages"
    took = f"{elapsed * 1000:.1f} ms" if elapsed < 1 else f"{elapsed:.2f} s"
    return f"published {count} {noun} to {run.address} in {took}{rate}"


async def _publish_run(
    login: StompLogin, run: _Run, bodies: AsyncIterator[Body], total: int | None
) -> float:
    """Connect, publish everything, and return the seconds from first send to last receipt."""
    async with login.async_client() as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _progress(total, run.rate) as advance:
            try:
                await _publish_all(client, run, bodies, advance)
            except BuzonError as exc:
                noun = "message was" if run.confirmed == 1 else "messages were"
                raise CliError(exc.code, f"{exc} ({run.confirmed} {noun} accepted)") from None
        return loop.time() - started


async def _publish_all(
    client: AsyncClient, run: _Run, bodies: AsyncIterator[Body], advance: Callable[[], None]
) -> None:
    pending: deque[asyncio.Task[None]] = deque()
    pace = _Pace(run.rate)

    async def confirm_oldest() -> None:
        await pending.popleft()
        run.confirmed += 1
        advance()

    try:
        async for body in bodies:
            await pace.wait()
            publishing = client.publish(
                run.address,
                body,
                headers=run.headers,
                content_type=run.content_type,
                access_key=run.key,
            )
            pending.append(asyncio.create_task(publishing))
            if len(pending) >= WINDOW:
                await confirm_oldest()
        while pending:
            await confirm_oldest()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class _Pace:
    """Spaces sends ``1 / rate`` seconds apart, from the first one (no drift over a run)."""

    def __init__(self, rate: float | None) -> None:
        self._rate = rate
        self._sent = 0
        self._start: float | None = None

    async def wait(self) -> None:
        if self._rate is None:
            return
        now = asyncio.get_running_loop().time()
        if self._start is None:
            self._start = now
        due = self._start + self._sent / self._rate
        self._sent += 1
        if due > now:
            await asyncio.sleep(due - now)


async def _bodies(body: Body | None, count: int) -> AsyncIterator[Body]:
    if body is not None:
        for _ in range(count):
            yield body
        return
    async for line in _stdin_lines():
        for _ in range(count):
            yield line


async def _stdin_lines() -> AsyncIterator[str]:
    """Non-empty lines of stdin, read on a daemon thread.

    Not ``asyncio.to_thread``: at exit asyncio waits for its executor, so a read blocked
    on a terminal would keep Ctrl-C from ending the command.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    room = threading.Semaphore(LINE_BUFFER)
    threading.Thread(target=_read_lines, args=(loop, lines, room), daemon=True).start()
    while (line := await lines.get()) is not None:
        room.release()
        if line:
            yield line


def _read_lines(
    loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None], room: threading.Semaphore
) -> None:
    try:
        for raw in sys.stdin:
            room.acquire()
            loop.call_soon_threadsafe(lines.put_nowait, raw.removesuffix("\n").removesuffix("\r"))
        loop.call_soon_threadsafe(lines.put_nowait, None)
    except RuntimeError:
        return  # the command ended (its loop is closed) while lines were still coming


@contextlib.contextmanager
def _progress(total: int | None, rate: float | None) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for long runs at a terminal; yields the per-message tick."""
    if not _wants_progress(total, rate):
        yield lambda: None
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("publishing", total=total)
        yield lambda: bar.advance(task)


def _wants_progress(total: int | None, rate: float | None) -> bool:
    """Only runs worth watching get a bar, and only on a terminal."""
    if not sys.stderr.isatty():
        return False
    if total is None:
        return not sys.stdin.isatty()  # lines piped in, not typed
    long_by_rate = rate is not None and total / rate >= PROGRESS_MIN_SECONDS
    return total >= PROGRESS_MIN_MESSAGES or long_by_rate
