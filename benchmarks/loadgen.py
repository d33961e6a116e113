"""STOMP load generator: queue and fan-out throughput, latency, and the broker's CPU cost.

Runs in its own process (uvloop when installed) against a broker it starts itself
(``python -m buzon serve`` on a free port) or against ``--port`` (any STOMP 1.2 broker, to
compare). Clients are ``asyncio.Protocol`` objects pipelining frames: the producer keeps a
window of outstanding receipts (one receipt per ``--receipt-every`` sends), consumers ack
each message (client-individual) in one write per read.

Each message carries its send time (``perf_counter_ns``) in a header; latency is measured on
receipt in the same process, so the clocks agree.

Scenarios:
    queue    1 producer, N consumers (client-individual acks): delivered msgs/s
    fanout   1 publisher, N subscribers (auto): deliveries/s
    confirm  1 producer, a receipt per message with ``--window`` in flight, no consumer:
             confirmed msgs/s and confirmation latency (with ``--storage sqlite``, every
             confirmed message is on disk)

Usage:
    python benchmarks/loadgen.py queue   [--messages 100000] [--consumers 4] [--runs 5]
    python benchmarks/loadgen.py fanout  [--messages 20000] [--subscribers 10] [--runs 5]
    python benchmarks/loadgen.py confirm [--messages 20000] [--window 64] --storage sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import cast

from buzon.stomp import NEED_DATA, Command, Frame, FrameParser

PASSWORD = "loadgen-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def connect_frame(login: str, passcode: str) -> bytes:
    return (
        f"CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\n"
        "heart-beat:0,0\n\n\x00"
    ).encode()


@dataclass
class Stats:
    """What the receivers of one run saw, shared by all of them.

    ``counts[seq]`` is how often message ``seq`` arrived (queue: must end at exactly 1
    each); ``out_of_order`` counts deliveries that broke publish order for their receiver.
    """

    expected: int
    done: asyncio.Event
    counts: bytearray
    latencies_ns: list[int] = field(default_factory=list)
    delivered: int = 0
    out_of_order: int = 0
    last_delivery: float = 0.0

    @classmethod
    def for_messages(cls, messages: int, expected: int) -> Stats:
        return cls(expected, asyncio.Event(), bytearray(messages + 1))


class Client(asyncio.Protocol):
    """One STOMP connection; parses with buzon's FrameParser, writes pre-built bytes."""

    def __init__(self, stats: Stats, ack: bool) -> None:
        self.parser = FrameParser()
        self.transport: asyncio.Transport | None = None
        self.connected = asyncio.Event()
        self.receipts: asyncio.Queue[str] = asyncio.Queue()
        self.stats = stats
        self.ack = ack
        self.last_seq = 0
        # receipt id -> send time, when confirmation latency is measured
        self.sent: dict[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        acks: list[bytes] = []
        now = time.perf_counter_ns()
        while (frame := parser.next_frame()) is not NEED_DATA:
            if not isinstance(frame, Frame):
                continue
            command = frame.command
            if command is Command.MESSAGE:
                self.on_message(frame, now, acks)
            elif command is Command.RECEIPT:
                receipt = frame.get("receipt-id") or ""
                if self.sent is not None and receipt in self.sent:
                    self.stats.latencies_ns.append(now - self.sent.pop(receipt))
                self.receipts.put_nowait(receipt)
            elif command is Command.CONNECTED:
                self.connected.set()
            elif command is Command.ERROR:
                raise SystemExit(f"broker sent ERROR: {frame.get('message')} {frame.body!r}")
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        stats = self.stats
        if stats.delivered >= stats.expected and not stats.done.is_set():
            stats.last_delivery = time.perf_counter()
            stats.done.set()

    def on_message(self, frame: Frame, now: int, acks: list[bytes]) -> None:
        stats = self.stats
        stats.delivered += 1
        seq = int(frame.get("seq") or 0)
        stats.counts[seq] = min(stats.counts[seq] + 1, 255)
        if seq <= self.last_seq:
            stats.out_of_order += 1
        self.last_seq = seq
        sent = frame.get("ts")
        if sent is not None:
            stats.latencies_ns.append(now - int(sent))
        if self.ack:
            acks.append(b"ACK\nid:%s\n\n\x00" % (frame.get("ack") or "").encode())


async def open_client(host: str, port: int, stats: Stats, *, ack: bool = False) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(stats, ack), host, port)
    assert client.transport is not None
    client.transport.write(connect_frame("admin", PASSWORD))
    await asyncio.wait_for(client.connected.wait(), 10)
    return client


async def subscribe(client: Client, destination: str, ack: str, prefetch: int) -> None:
    assert client.transport is not None
    client.transport.write(
        f"SUBSCRIBE\ndestination:{destination}\nid:1\nack:{ack}\n"
        f"prefetch-count:{prefetch}\nreceipt:sub\n\n\x00".encode()
    )
    await asyncio.wait_for(client.receipts.get(), 10)


async def produce(
    client: Client, destination: str, count: int, size: int, receipt_every: int, window: int
) -> None:
    """Send ``count`` messages, keeping at most ``window`` receipts outstanding."""
    assert client.transport is not None
    body = b"x" * size
    head = f"SEND\ndestination:{destination}\ncontent-length:{size}\n".encode()
    outstanding = 0
    batch: list[bytes] = []
    for i in range(1, count + 1):
        receipt = b"receipt:%d\n" % i if i % receipt_every == 0 or i == count else b""
        if receipt and client.sent is not None:
            client.sent[str(i)] = time.perf_counter_ns()
        batch.append(
            b"%sseq:%d\nts:%d\n%s\n%s\x00" % (head, i, time.perf_counter_ns(), receipt, body)
        )
        if receipt:
            client.transport.write(b"".join(batch))
            batch.clear()
            outstanding += 1
            while outstanding >= window:
                await client.receipts.get()
                outstanding -= 1
    while outstanding:
        await client.receipts.get()
        outstanding -= 1


def check(stats: Stats, messages: int, copies: int) -> None:
    """Exit with a message unless every message arrived exactly ``copies`` times, in order."""
    counts = stats.counts
    missing = sum(1 for seq in range(1, messages + 1) if counts[seq] < copies)
    extra = sum(1 for seq in range(1, messages + 1) if counts[seq] > copies)
    if missing or extra or stats.out_of_order:
        raise SystemExit(
            f"incorrect delivery: {missing} messages missing, {extra} duplicated,"
            f" {stats.out_of_order} out of order"
        )


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    broker_cpu: float
    loadgen_cpu: float
    deliveries: int


async def run_confirm(args: argparse.Namespace, host: str, port: int, pid: int | None) -> Result:
    """Publish with a receipt per message, ``window`` in flight; nobody consumes."""
    stats = Stats.for_messages(0, 1)
    producer = await open_client(host, port, stats)
    producer.sent = {}
    destination = f"/queue/confirm-{time.monotonic_ns()}"
    cpu_before = cpu_seconds(pid) if pid else 0.0
    own_before = time.process_time()
    started = time.perf_counter()
    await produce(producer, destination, args.messages, args.size, 1, args.window)
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(pid) - cpu_before) if pid else float("nan")
    own = time.process_time() - own_before
    assert producer.transport is not None
    producer.transport.close()
    if len(stats.latencies_ns) != args.messages:
        raise SystemExit(f"{args.messages - len(stats.latencies_ns)} publishes not confirmed")
    lat = sorted(stats.latencies_ns)
    return Result(
        rate=args.messages / elapsed,
        p50_ms=lat[len(lat) // 2] / 1e6,
        p99_ms=lat[int(len(lat) * 0.99)] / 1e6,
        broker_cpu=cpu,
        loadgen_cpu=own,
        deliveries=args.messages,
    )


async def run_scenario(args: argparse.Namespace, host: str, port: int, pid: int | None) -> Result:
    if args.scenario == "confirm":
        return await run_confirm(args, host, port, pid)
    messages = args.messages
    if args.scenario == "queue":
        destination = f"/queue/bench-{time.monotonic_ns()}"
        copies, ack_mode = 1, "client-individual"
        stats = Stats.for_messages(messages, messages)
        receivers = [await open_client(host, port, stats, ack=True) for _ in range(args.consumers)]
    else:
        destination = f"/topic/bench-{time.monotonic_ns()}"
        # every subscriber gets every message: each one is counted once per subscriber
        copies, ack_mode = args.subscribers, "auto"
        stats = Stats.for_messages(messages, messages * args.subscribers)
        receivers = [await open_client(host, port, stats) for _ in range(args.subscribers)]
    for receiver in receivers:
        await subscribe(receiver, destination, ack_mode, args.prefetch)
    producer = await open_client(host, port, Stats.for_messages(0, 1))
    cpu_before = cpu_seconds(pid) if pid else 0.0
    own_before = time.process_time()
    started = time.perf_counter()
    await produce(producer, destination, messages, args.size, args.receipt_every, args.window)
    await asyncio.wait_for(stats.done.wait(), args.timeout)
    elapsed = stats.last_delivery - started
    cpu = (cpu_seconds(pid) - cpu_before) if pid else float("nan")
    own = time.process_time() - own_before
    for client in [*receivers, producer]:
        assert client.transport is not None
        client.transport.close()
    check(stats, messages, copies)
    lat = sorted(stats.latencies_ns)
    return Result(
        rate=stats.delivered / elapsed,
        p50_ms=lat[len(lat) // 2] / 1e6,
        p99_ms=lat[int(len(lat) * 0.99)] / 1e6,
        broker_cpu=cpu,
        loadgen_cpu=own,
        deliveries=stats.delivered,
    )


def start_broker(storage: str, data_dir: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "BUZON_ADMIN_PASSWORD": PASSWORD, "BUZON_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buzon",
            "serve",
            "--stomp-port",
            "0",
            "--http-port",
            "0",
            "--storage",
            storage,
            "--data-dir",
            data_dir,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"stomp://[^:]+:(\d+)", line)
        if found:
            return process, int(found.group(1))
    raise SystemExit("broker did not start")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["queue", "fanout", "confirm"])
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--receipt-every", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="receipts outstanding at most")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="use a running broker")
    parser.add_argument("--pid", type=int, default=None, help="its pid, for CPU seconds")
    parser.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    args = parser.parse_args()
    if args.messages is None:
        args.messages = 100_000 if args.scenario == "queue" else 20_000
    return args


async def main() -> None:
    args = parse_args()
    broker = None
    port, pid = args.port, args.pid
    data_dir = tempfile.mkdtemp(prefix="buzon-bench-")
    if port is None:
        broker, port = start_broker(args.storage, data_dir)
        pid = broker.pid
    results = []
    unit = "confirmed" if args.scenario == "confirm" else "deliveries"
    try:
        for run in range(1, args.runs + 1):
            result = await run_scenario(args, args.host, port, pid)
            results.append(result)
            print(
                f"run {run}: {result.rate:,.0f} {unit}/s  p50 {result.p50_ms:.2f} ms  "
                f"p99 {result.p99_ms:.2f} ms  broker CPU {result.broker_cpu:.2f} s  "
                f"loadgen CPU {result.loadgen_cpu:.2f} s  ({result.deliveries} deliveries)",
                flush=True,
            )
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    med = statistics.median
    rate = med(r.rate for r in results)
    cpu = med(r.broker_cpu for r in results)
    deliveries = results[0].deliveries
    p50 = med(r.p50_ms for r in results)
    p99 = med(r.p99_ms for r in results)
    print(
        f"{args.scenario} ({args.storage}): median {rate:,.0f} {unit}/s, p50 {p50:.2f} ms,"
        f" p99 {p99:.2f} ms, broker {cpu:.2f} CPU-s per {deliveries} {unit}"
        f" ({cpu * 100_000 / deliveries:.2f} CPU-s per 100k); every message checked"
    )


def run_loop() -> None:
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


if __name__ == "__main__":
    run_loop()
