"""The backlog scenario: a queue that fills with nobody consuming, a restart with the whole
backlog waiting, then the drain; the broker's memory all along, and the latency of other
traffic meanwhile.

Against one broker it starts itself on a real disk: ``buzon serve --storage sqlite`` (its
defaults otherwise), or a private RabbitMQ node with the STOMP plugin (``rabbitmq.py``):

1. fill: with no consumer attached, one producer sends ``--messages`` persistent messages
   of ``--size`` bytes to one queue (durable on both brokers: RabbitMQ's STOMP plugin declares
   the queue of a ``persistent:true`` SEND durable), pipelined: a receipt every
   ``--receipt-every`` messages, ``--window`` of them outstanding. The rate runs from the
   first send to the last receipt.
2. stop: SIGTERM to the broker process, timed until it has exited.
3. restart: the broker starts again on the same data, timed from its start until it answers
   a STOMP CONNECT with CONNECTED; its resident memory right then.
4. drain: ``--consumers`` consumers (client-individual acks, ``--prefetch``) take every
   message from the restarted broker; every delivery is checked (none lost, none twice, each
   consumer's in publish order). The rate runs from the subscriptions to the last delivery.

During the fill and during the drain, ``probe.py`` (a process of its own) sends non-persistent
messages through queues of their own at each of ``--probe-rates`` msgs/s and times each
send-to-delivery. The broker's resident memory (VmRSS: ``/proc/PID/statm``'s resident field)
is sampled every 20 ms for each phase's peak and every ``--sample-every`` seconds for the
plot: across the restart, the old process until it exits, the new one from when it is known
(buzon: once it prints its addresses; RabbitMQ: once it answers).

Every wait is bounded: a step fails after ``--timeout`` seconds, or when ``--stall`` seconds
pass without a receipt (fill) or a delivery (drain). The result is printed and, with
``--json``, appended as one JSON line (the comparison runner reads it back).

Usage:
    python benchmarks/backlog.py --broker buzon --messages 1000000
    python benchmarks/backlog.py --broker rabbitmq --messages 1000000 --json runs.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import machine
import rabbitmq
from loadgen import PASSWORD, Target, run_loop, spawn_broker, token_login
from stomp_load import (
    Client,
    Login,
    RssPeak,
    Stats,
    check,
    open_client,
    produce,
    rss_kib,
    send_head,
    subscribe,
)

BUZON, RABBITMQ = "buzon", "RabbitMQ"
PROBE = Path(__file__).with_name("probe.py")
# Connections a run opens at most: producer, consumers, two per probe rate, and spares.
CONNECTIONS = 32
# Seconds to let the broker finish what the fill started before its memory is read.
SETTLE_S = 1.0
# Seconds the probe gets to connect, and to report once told to stop.
PROBE_START_S, PROBE_STOP_S = 30.0, 60.0


@dataclass
class Latency:
    """The probe at one rate during one phase: send-to-delivery times in ms."""

    phase: str
    rate: float
    sent: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Phase:
    """A span of the run, in seconds from the start of the fill."""

    name: str
    start: float
    end: float


@dataclass
class BacklogResult:
    """One run of the backlog scenario against one broker."""

    broker: str
    version: str
    erlang: str  # RabbitMQ's Erlang/OTP version; "" for buzon
    messages: int
    fill_rate: float
    drain_rate: float
    fill_peak_kib: int
    drain_peak_kib: int
    filled_rss_kib: int
    stop_s: float
    restart_s: float
    restarted_rss_kib: int
    latencies: list[Latency] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    # (seconds from the start of the fill, broker RSS in KiB, which broker process: 0 before
    # the restart, 1 after)
    rss: list[tuple[float, int, int]] = field(default_factory=list)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> BacklogResult:
        return cls(
            **{
                **record,
                "latencies": [Latency(**latency) for latency in record["latencies"]],
                "phases": [Phase(**phase) for phase in record["phases"]],
                "rss": [(float(at), int(kib), int(n)) for at, kib, n in record["rss"]],
            }
        )

    def latency(self, phase: str, rate: float) -> Latency | None:
        return next((x for x in self.latencies if x.phase == phase and x.rate == rate), None)


class Server(Protocol):
    """A broker process that can be stopped and started again on the same data."""

    name: str
    version: str
    erlang: str
    pid: int | None
    target: Target
    probe_options: tuple[str, ...]

    def start(self, timeout: float) -> tuple[float, int]:
        """Start; return the seconds until a STOMP CONNECT was answered, and the RSS then."""
        ...

    def stop(self, timeout: float) -> float:
        """SIGTERM; return the seconds until the process had exited."""
        ...


class BuzonServer:
    name = BUZON
    probe_options: tuple[str, ...] = ()

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.version, self.erlang = machine.package("buzon"), ""
        self.process: subprocess.Popen[str] | None = None
        self.pid: int | None = None

    def start(self, timeout: float) -> tuple[float, int]:
        started = time.perf_counter()
        self.process, port, api = spawn_broker("sqlite", self.data_dir, CONNECTIONS, timeout)
        self.pid = self.process.pid
        deadline = started + timeout
        while not rabbitmq.stomp_ready(port, ("admin", PASSWORD)):
            if time.perf_counter() > deadline or self.process.poll() is not None:
                raise SystemExit(f"buzon did not answer a STOMP CONNECT within {timeout:.0f} s")
            time.sleep(0.02)
        took, rss = time.perf_counter() - started, rss_kib(self.pid)
        self.target = Target("127.0.0.1", port, self.pid, token_login(api))
        return took, rss

    def stop(self, timeout: float) -> float:
        assert self.process is not None
        started = time.perf_counter()
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise SystemExit(f"buzon did not stop within {timeout:.0f} s of SIGTERM") from None
        took = time.perf_counter() - started
        self.close()
        return took

    def close(self) -> None:
        """Kill the broker if it still runs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process, self.pid = None, None


class RabbitServer:
    name = RABBITMQ
    probe_options: tuple[str, ...] = ("--unmarked",)  # its messages are transient unless marked

    def __init__(self, home: rabbitmq.Home) -> None:
        self.home = home
        self.version, self.erlang = "unknown", "unknown"
        self.wrapper: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def start(self, timeout: float) -> tuple[float, int]:
        started = time.perf_counter()
        self.wrapper, node = rabbitmq.launch(self.home, timeout)
        took, rss = time.perf_counter() - started, rss_kib(node.beam_pid)
        self.pid, self.version, self.erlang = node.beam_pid, node.version, node.erlang
        self.target = Target("127.0.0.1", node.stomp_port, node.beam_pid, Login(*rabbitmq.LOGIN))
        return took, rss

    def stop(self, timeout: float) -> float:
        assert self.pid is not None
        started = time.perf_counter()
        os.kill(self.pid, signal.SIGTERM)
        gone = rabbitmq.wait_gone(self.pid, timeout)
        took = time.perf_counter() - started
        self.close()
        if not gone:
            raise SystemExit(f"RabbitMQ did not stop within {timeout:.0f} s of SIGTERM")
        return took

    def close(self) -> None:
        """Stop the node if it still runs (SIGTERM, then SIGKILL)."""
        if self.wrapper is not None:
            rabbitmq.halt(self.wrapper, self.pid)
        self.wrapper, self.pid = None, None


class Probe:
    """``probe.py`` running against the broker for one phase."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, server: Server, args: argparse.Namespace) -> Probe:
        target = server.target
        command = [sys.executable, str(PROBE), *server.probe_options]
        command += ["--host", target.host, "--port", str(target.port)]
        command += ["--login", target.who.login, "--passcode", target.who.passcode]
        command += ["--rates", args.probe_rates, "--max-seconds", str(args.timeout)]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        probe = cls(process)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), PROBE_START_S)
        except TimeoutError:
            probe.kill()
            raise SystemExit(f"the probe did not start within {PROBE_START_S:.0f} s") from None
        if line.strip() != b"ready":
            await probe.fail()
        return probe

    async def stop(self, phase: str) -> list[Latency]:
        """Tell it to stop sending; its figures once the messages in flight arrived."""
        assert self.process.stdin is not None
        # a probe that failed meanwhile has closed its end: its error is on stderr
        with contextlib.suppress(RuntimeError, BrokenPipeError, ConnectionResetError):
            self.process.stdin.write(b"stop\n")
        try:
            out, err = await asyncio.wait_for(self.process.communicate(), PROBE_STOP_S)
        except TimeoutError:
            self.kill()
            raise SystemExit(f"the probe did not report within {PROBE_STOP_S:.0f} s") from None
        if self.process.returncode != 0:
            raise SystemExit(f"the probe failed: {err.decode().strip()[-500:]}")
        return [Latency(phase=phase, **summary) for summary in json.loads(out)]

    async def fail(self) -> None:
        self.kill()
        assert self.process.stderr is not None
        err = await asyncio.wait_for(self.process.stderr.read(), PROBE_STOP_S)
        raise SystemExit(f"the probe failed: {err.decode().strip()[-500:]}")

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@contextlib.asynccontextmanager
async def probing(
    server: Server, args: argparse.Namespace, phase: str, into: list[Latency]
) -> AsyncIterator[None]:
    """The probe runs for the body of the ``async with``; its figures go to ``into``."""
    probe = await Probe.start(server, args)
    try:
        yield
        into += await probe.stop(phase)
    finally:
        probe.kill()
        await probe.process.wait()


class RssSeries:
    """The broker's resident memory every ``interval`` seconds: (``perf_counter`` time,
    KiB, the how-manieth broker process: 0 before the restart, 1 after). While no process
    runs, or before a restarted one has answered, nothing is recorded."""

    def __init__(self, server: Server, interval: float) -> None:
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, int, int]] = []

    async def run(self) -> None:
        pids: list[int] = []
        while True:
            pid = self.server.pid
            if pid is not None:
                if pid not in pids:
                    pids.append(pid)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    kib = rss_kib(pid)
                    if kib:  # 0: a process that has exited but is not yet reaped
                        self.samples.append((time.perf_counter(), kib, pids.index(pid)))
            await asyncio.sleep(self.interval)


async def fill(args: argparse.Namespace, to: Target, destination: str) -> Phase:
    """Publish the backlog: from the first send to the last receipt, in ``perf_counter``
    time."""
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    head = send_head(destination, args.size, persistent=True)
    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            produce(
                producer,
                head,
                args.messages,
                args.size,
                args.receipt_every,
                args.window,
                args.stall,
            ),
            args.timeout,
        )
    except TimeoutError:
        raise SystemExit(
            f"fill stopped: no receipt for {args.stall:.0f} s, or not done in {args.timeout:.0f} s"
        ) from None
    finally:
        producer.close()
    return Phase("fill", started, time.perf_counter())


async def drain(args: argparse.Namespace, consumers: list[Client], destination: str) -> None:
    """Subscribe every consumer; return once ``stats`` has every message (bounded)."""
    for consumer in consumers:
        await subscribe(consumer, destination, "client-individual", args.prefetch)
    stats = consumers[0].stats
    deadline = time.monotonic() + args.timeout
    seen, last_progress = -1, time.monotonic()
    while not stats.done.is_set():
        now = time.monotonic()
        if stats.delivered != seen:
            seen, last_progress = stats.delivered, now
        if now - last_progress > args.stall or now > deadline:
            raise SystemExit(
                f"drain stopped at {stats.delivered:,} of {args.messages:,} messages: no"
                f" delivery for {args.stall:.0f} s, or not done in {args.timeout:.0f} s"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stats.done.wait(), 1.0)


async def run(args: argparse.Namespace, server: Server) -> BacklogResult:
    destination = f"/queue/backlog-{time.monotonic_ns()}"
    latencies: list[Latency] = []
    series = RssSeries(server, args.sample_every)
    sampler = asyncio.get_running_loop().create_task(series.run())
    try:
        async with probing(server, args, "fill", latencies), RssPeak(server.pid) as peak:
            filling = await fill(args, server.target, destination)
        fill_peak = peak.peak
        await asyncio.sleep(SETTLE_S)
        assert server.pid is not None
        filled_rss = rss_kib(server.pid)

        restarting = Phase("restart", time.perf_counter(), 0.0)
        stop_s = await asyncio.to_thread(server.stop, args.timeout)
        restart_s, restarted_rss = await asyncio.to_thread(server.start, args.timeout)
        restarting.end = time.perf_counter()

        to = server.target
        stats = Stats.for_messages(args.messages, args.messages)
        consumers = [
            await open_client(to.host, to.port, to.who, stats, ack=True)
            for _ in range(args.consumers)
        ]
        try:
            async with probing(server, args, "drain", latencies), RssPeak(server.pid) as peak:
                draining = Phase("drain", time.perf_counter(), 0.0)
                await drain(args, consumers, destination)
                draining.end = stats.last_delivery
        finally:
            for consumer in consumers:
                consumer.close()
        check(stats, args.messages, 1)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    origin = filling.start
    return BacklogResult(
        broker=server.name,
        version=server.version,
        erlang=server.erlang,
        messages=args.messages,
        fill_rate=args.messages / (filling.end - filling.start),
        drain_rate=args.messages / (draining.end - draining.start),
        fill_peak_kib=fill_peak,
        drain_peak_kib=peak.peak,
        filled_rss_kib=filled_rss,
        stop_s=stop_s,
        restart_s=restart_s,
        restarted_rss_kib=restarted_rss,
        latencies=latencies,
        phases=[
            Phase(phase.name, phase.start - origin, phase.end - origin)
            for phase in (filling, restarting, draining)
        ],
        rss=[(at - origin, kib, process) for at, kib, process in series.samples if at >= origin],
    )


@contextlib.contextmanager
def buzon_server(base_dir: str) -> Iterator[BuzonServer]:
    data_dir = tempfile.mkdtemp(prefix="buzon-backlog-", dir=base_dir)
    server = BuzonServer(data_dir)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def rabbit_server(base_dir: str) -> Iterator[RabbitServer]:
    if not rabbitmq.installed():
        raise SystemExit(f"RabbitMQ is not installed ({rabbitmq.INSTALL})")
    with rabbitmq.node_home(base_dir) as home:
        server = RabbitServer(home)
        try:
            yield server
        finally:
            server.close()


def describe(result: BacklogResult) -> str:
    """One line: the figures of a run."""
    probes = ", ".join(
        f"{x.phase} @{x.rate:g}/s p50 {x.p50_ms:.2f} p99 {x.p99_ms:.2f} max {x.max_ms:.1f} ms"
        for x in result.latencies
    )
    return (
        f"{result.broker}: {result.messages:,} messages; fill {result.fill_rate:,.0f} msgs/s"
        f" (peak RSS {result.fill_peak_kib / 1024:,.0f} MiB), stop {result.stop_s:.2f} s,"
        f" restart {result.restart_s:.2f} s (RSS {result.restarted_rss_kib / 1024:,.0f} MiB),"
        f" drain {result.drain_rate:,.0f} msgs/s (peak RSS {result.drain_peak_kib / 1024:,.0f}"
        f" MiB); probe: {probes}; every message checked"
    )


async def main() -> None:
    args = parse_args()
    make: Callable[[str], AbstractContextManager[Server]]
    make = buzon_server if args.broker == "buzon" else rabbit_server
    with make(args.base_dir) as server:
        await asyncio.to_thread(server.start, args.timeout)
        result = await run(args, server)
    record(args, result)


def record(args: argparse.Namespace, result: BacklogResult) -> None:
    print(describe(result), flush=True)
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps(asdict(result)) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["buzon", "rabbitmq"], required=True)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--receipt-every", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="receipts outstanding at most")
    parser.add_argument("--probe-rates", default="20,1000", help="probe msgs/s, comma-separated")
    parser.add_argument("--sample-every", type=float, default=0.5, help="RSS plot: seconds")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds a step may take (default: by size)"
    )
    parser.add_argument("--stall", type=float, default=120, help="seconds without progress")
    parser.add_argument("--base-dir", default=None, help="where the broker's data goes")
    parser.add_argument("--json", default=None, help="append the result here as a JSON line")
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.timeout is None:
        args.timeout = 60 + args.messages / 2000
    if args.base_dir is None:
        args.base_dir = machine.disk_dir()
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    return args


if __name__ == "__main__":
    run_loop(main)
