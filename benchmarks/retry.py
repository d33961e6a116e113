"""The retry scenario: every message refused twice with back-off, then acknowledged; the
broker's CPU for it, and its CPU while delayed messages merely wait.

Against one broker it starts itself on a real disk: ``buzon serve`` (``--storage sqlite``
by default), or a private RabbitMQ node with the STOMP plugin (``rabbitmq.py``):

1. retry: ``--consumers`` consumers (client-individual acks, ``--prefetch``) subscribe to a
   fresh queue; one producer sends ``--messages`` persistent messages of ``--size`` bytes
   (pipelined: a receipt every ``--receipt-every``, ``--window`` of them outstanding). A
   consumer NACKs a message's first deliveries, one per entry of ``--backoff``, each NACK
   with ``requeue-delay:<that many ms>`` (0: a plain NACK, requeued at once), and ACKs the
   next. Every message must arrive exactly ``len(backoff) + 1`` times, marked
   ``redelivered:true`` on all but the first delivery and never before its back-off has
   passed; anything else fails the run. The rate is acknowledged messages per second from
   the first send to the last delivery; the broker's CPU (user + system, /proc) runs to
   the receipts of a frame each consumer sends after its last ACK, so the broker has
   handled every ACK. On buzon the queue must then be empty (HTTP queue info).
2. wait (buzon, when ``--wait-messages`` is not 0): the broker's CPU over
   ``--wait-seconds`` while idle; then ``--wait-messages`` persistent messages are sent
   with ``delay:`` ``--wait-delay-ms`` (10 minutes) to a queue a consumer subscribes to,
   and the broker's CPU and memory are read over the same span while they wait. A broker
   that polls its waiting messages shows it here; none may be delivered meanwhile, and the
   phase fails if it outlasts the delay (the figures would include deliveries).

RabbitMQ has no broker-side back-off nor delayed delivery without a plugin: it runs the
retry phase with plain NACKs only (``--backoff 0,0``), as a reference, and no wait phase.

The result is printed and, with ``--json``, appended as one JSON line (the comparison
runner reads it: ``compare.py --only retry``).

Usage:
    python benchmarks/retry.py                        # buzon on SQLite, 100,000 messages
    python benchmarks/retry.py --messages 2000        # a quick self-test
    python benchmarks/retry.py --backoff 0,0 --broker rabbitmq --json runs.jsonl
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

import machine
import rabbitmq
from buzon.stomp import Frame
from loadgen import Target, run_loop, spawn_broker, token_login
from stomp_load import (
    Client,
    Login,
    RssPeak,
    Stats,
    cpu_seconds,
    open_client,
    percentile,
    produce,
    rss_kib,
    send_head,
    subscribe,
)

BUZON, RABBITMQ = "buzon", "RabbitMQ"
# Connections a run opens at most: producer, consumers, the waiting queue's, and spares.
CONNECTIONS = 32
# Seconds to let the broker finish what a phase started before it is measured idle.
SETTLE_S = 1.0
# Seconds a consumer's closing receipt may take once its last delivery arrived.
RECEIPT_S = 30.0


@dataclass
class RetryResult:
    """One run of the retry scenario against one broker."""

    broker: str
    version: str
    storage: str  # buzon's --storage; "" for RabbitMQ
    erlang: str  # RabbitMQ's Erlang/OTP version; "" for buzon
    messages: int
    backoff_ms: list[int]
    elapsed_s: float  # first send to last delivery
    rate: float  # acknowledged messages per second
    deliveries: int
    broker_cpu_s: float
    loadgen_cpu_s: float  # this process's, over the same span
    peak_rss_kib: int
    # how much later than its back-off a redelivery arrived, in ms (none without back-off)
    late_p50_ms: float = math.nan
    late_p99_ms: float = math.nan
    late_max_ms: float = math.nan
    # the wait phase (0 / NaN when it did not run)
    waiting: int = 0
    wait_delay_ms: int = 0
    wait_seconds: float = 0.0
    idle_cpu_s: float = math.nan
    waiting_cpu_s: float = math.nan
    idle_rss_kib: int = 0
    waiting_rss_kib: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_per_100k(self) -> float:
        """Broker CPU-seconds per 100k messages acknowledged (each delivered n times)."""
        return self.broker_cpu_s * 100_000 / self.messages

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RetryResult:
        return cls(**record)


class Tally:
    """What the consumers of the retry phase saw, beyond the delivery counts."""

    def __init__(self, messages: int) -> None:
        self.nacked_at = array.array("q", bytes(8 * (messages + 1)))  # perf_counter_ns
        self.late_ns: list[int] = []
        self.early = 0  # redelivered before its back-off had passed
        self.wrong_flag = 0  # redelivered header missing on a redelivery, or on a first one
        self.acked = 0


class RetryingClient(Client):
    """A consumer that NACKs each message's first deliveries with back-off, then ACKs."""

    def __init__(self, stats: Stats, tally: Tally, backoff: list[int]) -> None:
        super().__init__(stats, ack=True)
        self.tally = tally
        self.backoff = backoff
        self.nacks = [
            b"NACK\nid:%%s\nrequeue-delay:%d\n\n\x00" % ms if ms else b"NACK\nid:%s\n\n\x00"
            for ms in backoff
        ]

    def on_message(self, frame: Frame, now: int, acks: list[bytes]) -> None:
        stats, tally = self.stats, self.tally
        stats.delivered += 1
        seq = int(frame.get("seq") or 0)
        before = stats.counts[seq]
        stats.counts[seq] = min(before + 1, 255)
        if (frame.get("redelivered") == "true") != (before > 0):
            tally.wrong_flag += 1
        if 0 < before <= len(self.backoff) and self.backoff[before - 1]:
            late = now - tally.nacked_at[seq] - self.backoff[before - 1] * 1_000_000
            if late < 0:
                tally.early += 1
            else:
                tally.late_ns.append(late)
        ack_id = (frame.get("ack") or "").encode()
        if before < len(self.backoff):
            tally.nacked_at[seq] = now
            acks.append(self.nacks[before] % ack_id)
        else:
            tally.acked += 1
            acks.append(b"ACK\nid:%s\n\n\x00" % ack_id)


@dataclass
class Broker:
    """The broker under test, once it answers: where, which process, and how to look at
    its queues (buzon's HTTP API; None for RabbitMQ)."""

    name: str
    version: str
    storage: str
    erlang: str
    target: Target
    api: str | None


@contextlib.asynccontextmanager
async def running(args: argparse.Namespace) -> AsyncIterator[Broker]:
    """Start the broker named by ``args.broker``; stop it and delete its data after."""
    if args.broker == "rabbitmq":
        if not rabbitmq.installed():
            raise SystemExit(f"RabbitMQ is not installed ({rabbitmq.INSTALL})")
        with rabbitmq.private_node(args.base_dir) as node:
            target = Target("127.0.0.1", node.stomp_port, node.beam_pid, Login(*rabbitmq.LOGIN))
            yield Broker(RABBITMQ, node.version, "", node.erlang, target, None)
        return
    data_dir = tempfile.mkdtemp(prefix="buzon-retry-", dir=args.base_dir)
    process: subprocess.Popen[str] | None = None
    try:
        process, port, api = spawn_broker(args.storage, data_dir, CONNECTIONS, args.timeout)
        target = Target("127.0.0.1", port, process.pid, token_login(api))
        yield Broker(BUZON, machine.package("buzon"), args.storage, "", target, api)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def queue_info(broker: Broker, name: str) -> dict[str, Any]:
    """buzon's HTTP view of a queue."""
    assert broker.api is not None
    response = httpx.get(
        f"{broker.api}/queues/{name}",
        headers={"Authorization": f"Bearer {broker.target.who.passcode}"},
        timeout=30,
    )
    response.raise_for_status()
    info: dict[str, Any] = response.json()
    return info


async def wait_for_deliveries(args: argparse.Namespace, stats: Stats, what: str) -> None:
    """Return once ``stats`` has every delivery; fail after ``--timeout`` seconds, or after
    ``--stall`` seconds without a delivery."""
    deadline = time.monotonic() + args.timeout
    seen, last_progress = -1, time.monotonic()
    while not stats.done.is_set():
        now = time.monotonic()
        if stats.delivered != seen:
            seen, last_progress = stats.delivered, now
        if now - last_progress > args.stall or now > deadline:
            raise SystemExit(
                f"{what} stopped at {stats.delivered:,} of {stats.expected:,} deliveries: none"
                f" for {args.stall:.0f} s, or not done in {args.timeout:.0f} s"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.done.wait(), 1.0)


async def closing_receipts(consumers: list[Client]) -> None:
    """Each consumer unsubscribes with a receipt: once all came, the broker has handled
    every frame the consumers sent before (a connection's frames are handled in order)."""
    for consumer in consumers:
        assert consumer.transport is not None
        consumer.transport.write(b"UNSUBSCRIBE\nid:1\nreceipt:closing\n\n\x00")
    for consumer in consumers:
        await asyncio.wait_for(consumer.receipts.get(), RECEIPT_S)


def check(stats: Stats, tally: Tally, messages: int, copies: int) -> None:
    """Exit with a message unless every message arrived exactly ``copies`` times, marked
    redelivered exactly when it was, never before its back-off, and was acknowledged."""
    counts = stats.counts
    missing = sum(1 for seq in range(1, messages + 1) if counts[seq] < copies)
    extra = sum(1 for seq in range(1, messages + 1) if counts[seq] > copies)
    if missing or extra or tally.wrong_flag or tally.early or tally.acked != messages:
        raise SystemExit(
            f"incorrect delivery: {missing} messages delivered fewer than {copies} times,"
            f" {extra} more; {tally.wrong_flag} deliveries with a wrong redelivered header,"
            f" {tally.early} redelivered before their back-off; {tally.acked:,} of"
            f" {messages:,} acknowledged"
        )


async def retry_phase(args: argparse.Namespace, broker: Broker) -> RetryResult:
    to = broker.target
    name = f"retry-{time.monotonic_ns()}"
    copies = len(args.backoff) + 1
    stats = Stats.for_messages(args.messages, args.messages * copies)
    tally = Tally(args.messages)
    consumers = [
        await open_client(
            to.host, to.port, to.who, stats, make=lambda: RetryingClient(stats, tally, args.backoff)
        )
        for _ in range(args.consumers)
    ]
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    try:
        for consumer in consumers:
            await subscribe(consumer, f"/queue/{name}", "client-individual", args.prefetch)
        head = send_head(f"/queue/{name}", args.size, persistent=True)
        assert to.pid is not None
        cpu, own = cpu_seconds(to.pid), time.process_time()
        async with RssPeak(to.pid) as peak:
            started = time.perf_counter()
            await asyncio.wait_for(
                produce(producer, head, args.messages, args.size, args.receipt_every, args.window),
                args.timeout,
            )
            await wait_for_deliveries(args, stats, "the retry phase")
            elapsed = stats.last_delivery - started
            await closing_receipts(consumers)
        cpu, own = cpu_seconds(to.pid) - cpu, time.process_time() - own
    finally:
        for client in [*consumers, producer]:
            client.close()
    check(stats, tally, args.messages, copies)
    if broker.api is not None:
        info = queue_info(broker, name)
        left = {key: info.get(key, 0) for key in ("depth", "in_flight", "scheduled")}
        if any(left.values()):
            raise SystemExit(f"the queue is not empty once every message was acked: {left}")
    late = sorted(tally.late_ns)
    return RetryResult(
        broker=broker.name,
        version=broker.version,
        storage=broker.storage,
        erlang=broker.erlang,
        messages=args.messages,
        backoff_ms=args.backoff,
        elapsed_s=elapsed,
        rate=args.messages / elapsed,
        deliveries=stats.delivered,
        broker_cpu_s=cpu,
        loadgen_cpu_s=own,
        peak_rss_kib=peak.peak,
        late_p50_ms=percentile(late, 0.5),
        late_p99_ms=percentile(late, 0.99),
        late_max_ms=late[-1] / 1e6 if late else math.nan,
    )


async def idle_cpu(pid: int, seconds: float) -> float:
    """The broker's CPU-seconds over ``seconds`` of this process doing nothing."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(pid) - before


async def wait_phase(args: argparse.Namespace, broker: Broker, result: RetryResult) -> None:
    """The broker's CPU idle, then with ``--wait-messages`` delayed messages waiting."""
    to = broker.target
    assert to.pid is not None
    await asyncio.sleep(SETTLE_S)
    result.idle_rss_kib = rss_kib(to.pid)
    result.idle_cpu_s = await idle_cpu(to.pid, args.wait_seconds)
    name = f"waiting-{time.monotonic_ns()}"
    stats = Stats.for_messages(args.wait_messages, args.wait_messages)
    consumer = await open_client(to.host, to.port, to.who, stats, ack=True)
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    try:
        await subscribe(consumer, f"/queue/{name}", "client-individual", args.prefetch)
        head = send_head(f"/queue/{name}", args.size, persistent=True)
        head += b"delay:%d\n" % args.wait_delay_ms
        started = time.perf_counter()
        await asyncio.wait_for(
            produce(producer, head, args.wait_messages, args.size, args.receipt_every, args.window),
            args.timeout,
        )
        result.extra["wait_send_rate"] = args.wait_messages / (time.perf_counter() - started)
        await asyncio.sleep(SETTLE_S)
        result.waiting_cpu_s = await idle_cpu(to.pid, args.wait_seconds)
        result.waiting_rss_kib = rss_kib(to.pid)
        waited = time.perf_counter() - started
        if waited * 1000 >= args.wait_delay_ms:
            raise SystemExit(
                f"the wait phase took {waited:.0f} s, past the messages' delay of"
                f" {args.wait_delay_ms / 1000:g} s: give a longer --wait-delay-ms"
            )
        if stats.delivered:
            raise SystemExit(
                f"{stats.delivered:,} delayed messages were delivered after {waited:.1f} s,"
                f" before their delay of {args.wait_delay_ms / 1000:g} s"
            )
        info = queue_info(broker, name)
        if info["depth"] or info.get("scheduled", args.wait_messages) != args.wait_messages:
            raise SystemExit(f"the delayed messages are not all waiting: {info}")
    finally:
        consumer.close()
        producer.close()
    result.waiting = args.wait_messages
    result.wait_delay_ms = args.wait_delay_ms
    result.wait_seconds = args.wait_seconds


def describe(result: RetryResult) -> str:
    """One line: the figures of a run."""
    backoff = "/".join(f"{ms} ms" for ms in result.backoff_ms)
    nacks = len(result.backoff_ms)
    line = (
        f"{result.broker}: {result.messages:,} messages, each NACKed {nacks} times"
        f" ({'requeue-delay ' + backoff if any(result.backoff_ms) else 'requeued at once'})"
        f" then acked: {result.rate:,.0f} acked msgs/s ({result.elapsed_s:.2f} s),"
        f" broker {result.broker_cpu_s:.2f} CPU-s ({result.cpu_per_100k:.2f} per 100k),"
        f" peak RSS {result.peak_rss_kib / 1024:,.0f} MiB"
    )
    if math.isfinite(result.late_p50_ms):
        line += (
            f"; redelivered late by p50 {result.late_p50_ms:.1f} p99 {result.late_p99_ms:.1f}"
            f" max {result.late_max_ms:.1f} ms"
        )
    if result.waiting:
        line += (
            f"; {result.wait_seconds:g} s idle: {result.idle_cpu_s:.2f} CPU-s, with"
            f" {result.waiting:,} delayed messages waiting: {result.waiting_cpu_s:.2f} CPU-s"
            f" (RSS {result.idle_rss_kib / 1024:,.0f} → {result.waiting_rss_kib / 1024:,.0f}"
            " MiB)"
        )
    return line + "; every message checked"


async def main() -> None:
    args = parse_args()
    async with running(args) as broker:
        result = await retry_phase(args, broker)
        if args.wait_messages:
            await wait_phase(args, broker, result)
    record(args, result)


def record(args: argparse.Namespace, result: RetryResult) -> None:
    print(describe(result), flush=True)
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps(asdict(result)) + "\n")


def milliseconds(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError("a comma-separated list of milliseconds ≥ 0")
    return values


def settle_defaults(args: argparse.Namespace) -> str:
    """Fill in the defaults that depend on other options; what is wrong with them, or ""."""
    if args.messages < 1:
        return "--messages must be at least 1"
    if args.broker == "rabbitmq":
        if any(args.backoff):
            return "RabbitMQ has no broker-side back-off: give --backoff 0,0"
        if args.wait_messages:
            return "RabbitMQ has no delayed delivery without a plugin: no wait phase"
    return settle_sizes(args)


def settle_sizes(args: argparse.Namespace) -> str:
    """The wait phase's size and every bound, by ``--messages`` unless given."""
    if args.broker == "rabbitmq":
        args.wait_messages = 0
    if args.wait_messages is None:
        args.wait_messages = args.messages
    if args.wait_seconds is None:
        args.wait_seconds = min(10.0, max(1.0, args.messages / 10_000))
    if args.timeout is None:
        args.timeout = 60 + max(args.messages, args.wait_messages) / 1000
    if args.base_dir is None:
        args.base_dir = machine.disk_dir()
    if args.wait_messages < 0:
        return "--wait-messages must be 0 or more"
    if args.wait_seconds <= 0 or args.wait_delay_ms <= 0:
        return "--wait-seconds and --wait-delay-ms must be positive"
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        return "--timeout must be a positive number of seconds"
    return ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["buzon", "rabbitmq"], default="buzon")
    parser.add_argument("--storage", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--backoff",
        type=milliseconds,
        default=[50, 100],
        help="requeue-delay of each NACK in ms, comma-separated (0: a plain NACK)",
    )
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--receipt-every", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="receipts outstanding at most")
    parser.add_argument(
        "--wait-messages",
        type=int,
        default=None,
        help="delayed messages in the wait phase (default: --messages; buzon only; 0: none)",
    )
    parser.add_argument(
        "--wait-delay-ms",
        type=int,
        default=600_000,
        help="the wait phase's delay: longer than its sends and sampling take",
    )
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=None,
        help="CPU sampling span of the wait phase (default: 1 s per 10,000 messages, 1 to 10)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds a phase may take (default: by size)"
    )
    parser.add_argument("--stall", type=float, default=60, help="seconds without progress")
    parser.add_argument("--base-dir", default=None, help="where the broker's data goes")
    parser.add_argument("--json", default=None, help="append the result here as a JSON line")
    args = parser.parse_args(argv)
    problem = settle_defaults(args)
    if problem:
        parser.error(problem)
    return args


if __name__ == "__main__":
    run_loop(main)
