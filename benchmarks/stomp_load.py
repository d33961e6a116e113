"""The load generator's STOMP clients, delivery bookkeeping and process measurements
(a run's ``Result``, which the comparison runner reads back from JSON).

Clients are ``asyncio.Protocol`` objects that parse with buzon's ``FrameParser`` and write
pre-built bytes, so the load generator spends little of the machine on itself. Every
delivery is counted by sequence number, so a run can prove nothing was lost, duplicated
or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from buzon.stomp import NEED_DATA, Command, Frame, FrameParser

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB, from /proc (Linux)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KIB


class RssPeak:
    """Samples a process's resident memory every 20 ms while a run lasts; keeps the peak."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.start = rss_kib(pid) if pid else 0
        self.peak = self.start
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssPeak:
        if self.pid:
            self._task = asyncio.get_running_loop().create_task(self._sample(self.pid))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self.peak = max(self.peak, rss_kib(cast(int, self.pid)))

    async def _sample(self, pid: int) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(pid))
            await asyncio.sleep(0.02)


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


@dataclass(frozen=True)
class Login:
    """Who the load generator's connections log in as."""

    login: str
    passcode: str


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

    def close(self) -> None:
        """Close at once with a reset, so thousands of closes leave no TIME_WAIT behind."""
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.close()


async def open_client(
    host: str,
    port: int,
    who: Login,
    stats: Stats,
    *,
    ack: bool = False,
    make: Callable[[], Client] | None = None,
) -> Client:
    """A logged-in connection: a ``Client``, or what ``make`` makes (a subclass)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(make or (lambda: Client(stats, ack)), host, port)
    assert client.transport is not None
    client.transport.write(connect_frame(who.login, who.passcode))
    await asyncio.wait_for(client.connected.wait(), 30)
    return client


async def subscribe(client: Client, destination: str, ack: str, prefetch: int) -> None:
    assert client.transport is not None
    client.transport.write(
        f"SUBSCRIBE\ndestination:{destination}\nid:1\nack:{ack}\n"
        f"prefetch-count:{prefetch}\nreceipt:sub\n\n\x00".encode()
    )
    await asyncio.wait_for(client.receipts.get(), 10)


def send_head(destination: str, size: int, persistent: bool) -> bytes:
    """The fixed part of every SEND of a run."""
    extra = "persistent:true\n" if persistent else ""
    return f"SEND\ndestination:{destination}\ncontent-length:{size}\n{extra}".encode()


async def produce(
    client: Client,
    head: bytes,
    count: int,
    size: int,
    receipt_every: int,
    window: int,
    stall: float | None = None,
) -> None:
    """Send ``count`` messages, keeping at most ``window`` receipts outstanding; with
    ``stall``, a receipt that takes longer than that many seconds raises TimeoutError."""
    assert client.transport is not None
    body = b"x" * size
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
                await asyncio.wait_for(client.receipts.get(), stall)
                outstanding -= 1
    while outstanding:
        await asyncio.wait_for(client.receipts.get(), stall)
        outstanding -= 1


async def produce_at_rate(client: Client, head: bytes, count: int, size: int, rate: float) -> None:
    """Send ``count`` messages one write each, the i-th at ``i / rate`` seconds from now."""
    assert client.transport is not None
    body = b"x" * size
    started = time.perf_counter()
    for i in range(1, count + 1):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client.transport.write(
            b"%sseq:%d\nts:%d\n\n%s\x00" % (head, i, time.perf_counter_ns(), body)
        )


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


def percentile(sorted_values: list[int], fraction: float) -> float:
    """The value at ``fraction`` of a sorted list, in ms (from ns)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] / 1e6


@dataclass
class Result:
    """One run of one scenario; ``rate`` counts ``deliveries`` per second."""

    scenario: str
    rate: float
    p50_ms: float
    p99_ms: float
    broker_cpu_s: float
    loadgen_cpu_s: float
    deliveries: int
    rss_start_kib: int
    rss_peak_kib: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_per_100k(self) -> float:
        return self.broker_cpu_s * 100_000 / self.deliveries


class Meter:
    """Broker CPU, own CPU, wall time and the broker's peak memory over one run."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.rss = RssPeak(pid)

    async def __aenter__(self) -> Meter:
        await self.rss.__aenter__()
        self.cpu = cpu_seconds(self.pid) if self.pid else 0.0
        self.own = time.process_time()
        self.started = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rss.__aexit__(*exc)
        self.cpu = (cpu_seconds(self.pid) - self.cpu) if self.pid else float("nan")
        self.own = time.process_time() - self.own

    def result(
        self, scenario: str, deliveries: int, elapsed: float, latencies_ns: list[int]
    ) -> Result:
        lat = sorted(latencies_ns)
        return Result(
            scenario=scenario,
            rate=deliveries / elapsed,
            p50_ms=percentile(lat, 0.5),
            p99_ms=percentile(lat, 0.99),
            broker_cpu_s=self.cpu,
            loadgen_cpu_s=self.own,
            deliveries=deliveries,
            rss_start_kib=self.rss.start,
            rss_peak_kib=self.rss.peak,
        )
