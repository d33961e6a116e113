"""``buzon publish``: send messages to a queue or a channel.

How the STOMP login is found is in ``stomp_login``. Every message asks for a receipt, so
the command exits 0 only when the broker accepted all of them; up to ``WINDOW`` receipts
are awaited at once, which keeps a long run fast without letting an unconfirmed backlog
grow. A name that is no queue (or channel) is an error, never a new destination: every
SEND says ``auto-create:false`` (see ``missing``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

from buzon.cli.missing import missing_for_command
from buzon.cli.session import (
    CliError,
    add_action,
    positive_int,
)
from buzon.cli.stomp_login import (
    StompLogin,
    access_key,
    add_access_key_options,
    add_stomp_options,
    address_of,
    stomp_login,
)
from buzon.cli.timing import duration_ms, moment_ms
from buzon.client import ApiError, AsyncClient, DestinationKind
from buzon.errors import BuzonError, ErrorCode
from buzon.priority import parse_priority

WINDOW = 256
"""Publishes awaiting their receipt at once: enough to hide the round trip on a LAN."""
LINE_BUFFER = 1024
"""stdin lines read ahead of the publisher."""
PROGRESS_MIN_MESSAGES = 1000
PROGRESS_MIN_SECONDS = 3.0
"""A run shows a progress bar from this many messages, or when its rate makes it last this long."""

Body = str | bytes


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
        "--priority",
        type=_priority,
        metavar="P",
        help="0 (lowest) to 9: a queue hands out higher priorities first (default 4)",
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
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument(
        "--delay",
        type=duration_ms,
        metavar="DURATION",
        help="queues: deliver no earlier than DURATION from now (500ms, 5s, 2m, 1h, 1d)",
    )
    timing.add_argument(
        "--deliver-at",
        type=moment_ms,
        metavar="TIME",
        help="queues: deliver no earlier than TIME (ISO 8601 like 2026-12-03T10:00:00Z, local"
        " time without a zone, or ms since the epoch)",
    )
    parser.add_argument(
        "--routing-key",
        metavar="KEY",
        help="channels: the message's routing key (direct and topic channels route by it)",
    )
    add_access_key_options(parser)
    add_stomp_options(parser)


def _priority(text: str) -> int:
    try:
        return parse_priority(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


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
    priority: int | None = None
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
    address = address_of(kind, args.queue or args.channel)
    if args.routing_key:
        if kind is DestinationKind.QUEUE:
            raise CliError(detail="--routing-key is for channels (a queue has no routing)")
        address = f"{address}/{args.routing_key}"  # STOMP's keyed address
    headers = _headers(args.header)
    if args.delay is not None:
        headers["delay"] = str(args.delay)
    if args.deliver_at is not None:
        headers["deliver-at"] = str(args.deliver_at)
    run = _Run(
        address=address,
        headers=headers,
        content_type=headers.pop("content-type", None),
        key=None,
        rate=args.rate,
        priority=args.priority,
    )
    body: Body | None = _read_file(args.file) if args.file else args.message
    login = stomp_login(args)
    run.key = access_key(args)
    total = None if body is None else args.count
    try:
        elapsed = asyncio.run(_publish_run(login, run, _bodies(body, args.count), total))
    except ApiError as exc:
        if exc.code is not ErrorCode.DESTINATION_NOT_FOUND:
            raise
        raise missing_for_command(args, login, kind, args.queue or args.channel) from None
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
                if exc.code is ErrorCode.DESTINATION_NOT_FOUND and not run.confirmed:
                    raise
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
                create=False,
                priority=run.priority,
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
