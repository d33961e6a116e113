"""STOMP load generator: throughput, latency, memory and the broker's CPU cost.

Runs in its own process (uvloop when installed) against a broker it starts itself
(``python -m buzon serve`` on free ports) or against ``--port`` (any STOMP 1.2 broker, to
compare; give ``--pid`` for its CPU and memory). Every delivery is checked: a run that
loses, duplicates or reorders a message fails instead of reporting a number.

Scenarios:
    queue    1 producer, N consumers (client-individual acks), a receipt every
             ``--receipt-every`` sends and ``--window`` of them in flight: delivered msgs/s
    fanout   1 publisher, N subscribers (auto ack): deliveries/s
    confirm  1 producer, a receipt per message with ``--window`` in flight, no consumer:
             confirmed msgs/s and confirmation latency (``--persistent`` asks for disk)
    latency  1 producer sending ``--rate`` msgs/s one write each, 1 consumer: delivery
             latency percentiles (the first ``--warmup`` messages are not counted)
    idle     opens ``--connections`` logged-in idle connections, reports the broker's
             memory per connection, then runs the queue scenario while they stay open
    depth    publishes ``--messages`` to a queue nobody consumes, reports the broker's
             memory per waiting message, then drains it with ``--consumers``: drained msgs/s

Each message carries its send time (``perf_counter_ns``) in a header; latency is measured on
receipt in the same process, so the clocks agree.

Usage:
    python benchmarks/loadgen.py queue   [--messages 100000] [--consumers 4] [--runs 5]
    python benchmarks/loadgen.py fanout  [--messages 20000] [--subscribers 10]
    python benchmarks/loadgen.py confirm --window 64 --persistent --storage sqlite
    python benchmarks/loadgen.py latency --rate 1000 --messages 5000
    python benchmarks/loadgen.py idle    --connections 10000
    python benchmarks/loadgen.py depth   --messages 1000000
    python benchmarks/loadgen.py queue --port 61613 --pid 1234 --login guest --passcode guest
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from buzon.cli.tuning import tune_allocator
from stomp_load import (
    Client,
    Login,
    Meter,
    Result,
    Stats,
    check,
    open_client,
    produce,
    produce_at_rate,
    rss_kib,
    send_head,
    subscribe,
)

PASSWORD = "loadgen-password"
# Idle connections are opened this many at a time.
CONNECT_BATCH = 250
# buzon's --max-connections is this many above what a scenario opens.
SPARE_CONNECTIONS = 100
# Seconds to let the broker finish what the connections or messages started before its
# memory is read.
SETTLE_S = 1.0
UNITS = {"confirm": "confirmed", "latency": "deliveries", "depth": "drained"}


@dataclass
class Target:
    host: str
    port: int
    pid: int | None
    who: Login


def close_all(clients: list[Client]) -> None:
    for client in clients:
        client.close()


async def run_confirm(args: argparse.Namespace, to: Target) -> Result:
    """Publish with a receipt per message, ``window`` in flight; nobody consumes."""
    stats = Stats.for_messages(0, 1)
    producer = await open_client(to.host, to.port, to.who, stats)
    producer.sent = {}
    head = send_head(f"/queue/confirm-{time.monotonic_ns()}", args.size, args.persistent)
    async with Meter(to.pid) as meter:
        await produce(producer, head, args.messages, args.size, 1, args.window)
        elapsed = time.perf_counter() - meter.started
    close_all([producer])
    if len(stats.latencies_ns) != args.messages:
        raise SystemExit(f"{args.messages - len(stats.latencies_ns)} publishes not confirmed")
    return meter.result("confirm", args.messages, elapsed, stats.latencies_ns)


async def run_latency(args: argparse.Namespace, to: Target) -> Result:
    """One consumer; messages sent at a steady rate, one write each."""
    messages = args.messages
    stats = Stats.for_messages(messages, messages)
    destination = f"/queue/latency-{time.monotonic_ns()}"
    consumer = await open_client(to.host, to.port, to.who, stats, ack=True)
    await subscribe(consumer, destination, "client-individual", args.prefetch)
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    head = send_head(destination, args.size, args.persistent)
    async with Meter(to.pid) as meter:
        await produce_at_rate(producer, head, messages, args.size, args.rate)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = stats.last_delivery - meter.started
    close_all([consumer, producer])
    check(stats, messages, 1)
    return meter.result("latency", messages, elapsed, stats.latencies_ns[args.warmup :])


async def run_flow(args: argparse.Namespace, to: Target, scenario: str) -> Result:
    """The queue or fan-out scenario."""
    messages = args.messages
    if scenario == "fanout":
        destination = f"/topic/bench-{time.monotonic_ns()}"
        # every subscriber gets every message: each one is counted once per subscriber
        copies, ack_mode, receivers_wanted = args.subscribers, "auto", args.subscribers
    else:
        destination = f"/queue/bench-{time.monotonic_ns()}"
        copies, ack_mode, receivers_wanted = 1, "client-individual", args.consumers
    stats = Stats.for_messages(messages, messages * copies)
    acking = ack_mode != "auto"
    receivers = [
        await open_client(to.host, to.port, to.who, stats, ack=acking)
        for _ in range(receivers_wanted)
    ]
    for receiver in receivers:
        await subscribe(receiver, destination, ack_mode, args.prefetch)
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    head = send_head(destination, args.size, args.persistent)
    async with Meter(to.pid) as meter:
        await produce(producer, head, messages, args.size, args.receipt_every, args.window)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = stats.last_delivery - meter.started
    close_all([*receivers, producer])
    check(stats, messages, copies)
    return meter.result(scenario, stats.delivered, elapsed, stats.latencies_ns)


async def run_idle(args: argparse.Namespace, to: Target) -> Result:
    """Memory per idle connection, then the queue scenario with all of them open."""
    idle: list[Client] = []
    before = rss_kib(to.pid) if to.pid else 0
    nobody = Stats.for_messages(0, 1)
    while len(idle) < args.connections:
        batch = min(CONNECT_BATCH, args.connections - len(idle))
        idle += await asyncio.gather(
            *(open_client(to.host, to.port, to.who, nobody) for _ in range(batch))
        )
    await asyncio.sleep(SETTLE_S)
    after = rss_kib(to.pid) if to.pid else 0
    try:
        result = await run_flow(args, to, "queue")
    finally:
        close_all(idle)
    result.scenario = "idle"
    result.extra = {
        "connections": args.connections,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_connection": (after - before) * 1024 / args.connections,
    }
    return result


async def run_depth(args: argparse.Namespace, to: Target) -> Result:
    """Fill a queue nobody consumes, read the broker's memory, then drain the queue."""
    messages = args.messages
    destination = f"/queue/depth-{time.monotonic_ns()}"
    producer = await open_client(to.host, to.port, to.who, Stats.for_messages(0, 1))
    head = send_head(destination, args.size, args.persistent)
    before = rss_kib(to.pid) if to.pid else 0
    started = time.perf_counter()
    await produce(producer, head, messages, args.size, args.receipt_every, args.window)
    fill_rate = messages / (time.perf_counter() - started)
    await asyncio.sleep(SETTLE_S)
    after = rss_kib(to.pid) if to.pid else 0
    stats = Stats.for_messages(messages, messages)
    consumers = [
        await open_client(to.host, to.port, to.who, stats, ack=True) for _ in range(args.consumers)
    ]
    async with Meter(to.pid) as meter:
        for consumer in consumers:
            await subscribe(consumer, destination, "client-individual", args.prefetch)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = stats.last_delivery - meter.started
    close_all([*consumers, producer])
    check(stats, messages, 1)
    # send-to-delivery times here are mostly time spent waiting: no latency is reported
    result = meter.result("depth", messages, elapsed, [])
    result.extra = {
        "queued": messages,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_message": (after - before) * 1024 / messages,
        "fill_rate": fill_rate,
    }
    return result


async def run_scenario(args: argparse.Namespace, to: Target) -> Result:
    if args.scenario == "confirm":
        return await run_confirm(args, to)
    if args.scenario == "latency":
        return await run_latency(args, to)
    if args.scenario == "idle":
        return await run_idle(args, to)
    if args.scenario == "depth":
        return await run_depth(args, to)
    return await run_flow(args, to, args.scenario)


def serve_command(
    storage: str, data_dir: str, connections: int, extra_args: Sequence[str] = ()
) -> list[str]:
    """``buzon serve`` on free ports (all its listeners: two runs at once, or another
    program on 5672, must not collide), with room for ``connections`` connections and
    more."""
    return [
        *(sys.executable, "-m", "buzon", "serve", "--stomp-port", "0", "--http-port", "0"),
        *("--amqp-port", "0"),
        *("--storage", storage, "--data-dir", data_dir),
        *("--max-connections", str(connections + SPARE_CONNECTIONS)),
        *extra_args,
    ]


def listening_urls(printed: bytes) -> dict[str, str] | None:
    """The URLs of ``buzon serve``'s whole ``buzon listening:`` line, by scheme (``stomp``,
    ``amqp``, ``http``, ...), once it has printed that line."""
    found = re.search(rb"buzon listening:([^\n]*)\n", printed)
    if found is None:
        return None
    urls = re.findall(r"([a-z+]+)://(\S+)", found.group(1).decode())
    return {scheme: f"{scheme}://{rest}" for scheme, rest in urls}


def url_port(url: str) -> int:
    """The port of ``scheme://host:port[/path]``."""
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def spawn_broker_urls(
    storage: str,
    data_dir: str,
    connections: int,
    timeout: float = 60,
    extra_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``serve_command``; return it and its ``listening_urls`` once it has printed
    them (within ``timeout`` seconds, else it is killed)."""
    env = {"BUZON_ADMIN_PASSWORD": PASSWORD, "BUZON_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        serve_command(storage, data_dir, connections, extra_args),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    # read the pipe's bytes directly, so that the wait is bounded (a text-mode line read
    # would block for as long as the broker prints nothing)
    fd, printed = process.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], remaining)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SystemExit(f"broker exited before it listened: {printed.decode()[-500:]}")
            printed += chunk
            urls = listening_urls(printed)
            if urls is not None:
                return process, urls
        raise SystemExit(f"broker did not print its addresses within {timeout:.0f} s")
    except BaseException:
        process.kill()
        process.wait()
        raise


def spawn_broker(
    storage: str,
    data_dir: str,
    connections: int,
    timeout: float = 60,
    extra_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], int, str]:
    """``spawn_broker_urls``: the process, its STOMP port and its API's URL."""
    process, urls = spawn_broker_urls(storage, data_dir, connections, timeout, extra_args)
    try:
        return process, url_port(urls["stomp"]), urls["http"]
    except KeyError as missing:
        process.kill()
        process.wait()
        raise SystemExit(f"broker printed no {missing} URL: {urls}") from None


def start_broker(
    storage: str,
    data_dir: str,
    connections: int,
    host: str = "127.0.0.1",
    timeout: float = 60,
    protocol: str = "stomp",
) -> tuple[subprocess.Popen[str], Target]:
    """``spawn_broker_urls``, then its admin logs in with a bearer token (one argon2 check
    in all, however many connections the scenario opens); the target is its ``protocol``
    listener."""
    process, urls = spawn_broker_urls(storage, data_dir, connections, timeout)
    try:
        if protocol not in urls or "http" not in urls:
            raise SystemExit(f"broker printed no {protocol} or http URL: {urls}")
        return process, Target(
            host, url_port(urls[protocol]), process.pid, token_login(urls["http"])
        )
    except BaseException:
        process.kill()
        process.wait()
        raise


def token_login(api: str) -> Login:
    """The admin's STOMP login: a bearer token from the HTTP API at ``api``."""
    response = httpx.post(
        f"{api}/sessions", json={"username": "admin", "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return Login("admin", response.json()["token"])


def add_target_options(
    parser: argparse.ArgumentParser,
    *,
    passcode: str | None = None,
    storage: str = "sqlite",
    vhost: bool = False,
) -> None:
    """The options every load generator shares: which broker (one it starts, or a running
    one at ``--port``), who logs in, where results go. Without a ``passcode`` default,
    ``--port`` needs one (see :func:`check_target`)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="use a running broker")
    parser.add_argument("--pid", type=int, default=None, help="its pid, for CPU and memory")
    parser.add_argument("--login", default="admin")
    help_text = None if passcode else "default: a token of buzon's admin"
    parser.add_argument("--passcode", default=passcode, help=help_text)
    if vhost:
        parser.add_argument("--vhost", default="/")
    parser.add_argument("--storage", choices=["memory", "sqlite"], default=storage)
    parser.add_argument("--json", default=None, help="append one JSON line per run here")


def check_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse ``--port`` without ``--passcode`` (a running broker's admin token is unknown)."""
    if args.port is not None and args.passcode is None:
        parser.error("--port needs --passcode")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenario", choices=["queue", "fanout", "confirm", "latency", "idle", "depth"]
    )
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--receipt-every", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="receipts outstanding at most")
    parser.add_argument("--persistent", action="store_true", help="send persistent:true")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency: msgs/s")
    parser.add_argument("--warmup", type=int, default=200, help="latency: uncounted messages")
    parser.add_argument("--connections", type=int, default=10_000, help="idle: how many")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    add_target_options(parser, passcode=PASSWORD, storage="memory")
    args = parser.parse_args()
    if args.messages is None:
        defaults = {"queue": 100_000, "idle": 100_000, "latency": 5_000, "depth": 100_000}
        args.messages = defaults.get(args.scenario, 20_000)
    return args


def describe(extra: dict[str, float]) -> str:
    """The idle and depth scenarios' memory figures, or the AMQP load generator's rates of
    its publish-only and consume-only phases, for the report line."""
    if "publish_rate" in extra:
        return (
            f"  publish {extra['publish_rate']:,.0f} msgs/s"
            f" ({extra['publish_cpu_per_100k']:.2f} CPU-s per 100k),"
            f" consume {extra['consume_rate']:,.0f} msgs/s"
            f" ({extra['consume_cpu_per_100k']:.2f} CPU-s per 100k)"
        )
    if "connections" in extra:
        return (
            f"  {extra['connections']:.0f} idle connections,"
            f" {extra['bytes_per_connection']:,.0f} B each"
        )
    if "queued" in extra:
        return (
            f"  {extra['queued']:.0f} waited ({extra['bytes_per_message']:,.0f} B each),"
            f" filled at {extra['fill_rate']:,.0f} msgs/s"
        )
    return ""


def report(args: argparse.Namespace, run: int, result: Result) -> None:
    unit = UNITS.get(args.scenario, "deliveries")
    print(
        f"run {run}: {result.rate:,.0f} {unit}/s  p50 {result.p50_ms:.3f} ms  "
        f"p99 {result.p99_ms:.3f} ms  broker {result.broker_cpu_s:.2f} CPU-s "
        f"({result.cpu_per_100k:.2f} per 100k), peak RSS {result.rss_peak_kib / 1024:.0f} MiB"
        f"  loadgen {result.loadgen_cpu_s:.2f} CPU-s  ({result.deliveries} {unit})"
        + describe(result.extra),
        flush=True,
    )
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps({**asdict(result), "run": run}) + "\n")


async def main() -> None:
    await measure(parse_args(), run_scenario)


async def measure(
    args: argparse.Namespace,
    scenario: Callable[[argparse.Namespace, Target], Awaitable[Result]],
    protocol: str = "stomp",
) -> None:
    """``args.runs`` runs of ``scenario``, each reported, then their medians: against the
    broker at ``args.port``, or a ``buzon serve`` started here (with room for
    ``args.connections`` connections) and reached over ``protocol``."""
    broker = None
    data_dir = tempfile.mkdtemp(prefix="buzon-bench-")
    if args.port is None:
        broker, target = start_broker(
            args.storage, data_dir, args.connections, args.host, protocol=protocol
        )
    else:
        target = Target(args.host, args.port, args.pid, Login(args.login, args.passcode))
    results = []
    try:
        for run in range(1, args.runs + 1):
            result = await scenario(args, target)
            results.append(result)
            report(args, run, result)
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    where = args.storage if broker else f"port {args.port}"
    print(summary(args.scenario, where, results))


def summary(scenario: str, where: str, results: list[Result]) -> str:
    """The last line of a load generator's output: the medians of its runs."""
    med = statistics.median
    unit = UNITS.get(scenario, "deliveries")
    return (
        f"{scenario} ({where}): median"
        f" {med(r.rate for r in results):,.0f} {unit}/s,"
        f" p50 {med(r.p50_ms for r in results):.3f} ms,"
        f" p99 {med(r.p99_ms for r in results):.3f} ms,"
        f" {med(r.cpu_per_100k for r in results):.2f} broker CPU-s per 100k {unit};"
        " every message checked"
    )


def raise_file_limit() -> None:
    """Idle connections need a descriptor each: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_loop(entry: Callable[[], Coroutine[Any, Any, None]] = main) -> None:
    """Run ``entry`` (this load generator's ``main`` unless given) on uvloop if installed."""
    raise_file_limit()
    tune_allocator()  # as buzon serve does: large messages must not make the kernel the limit
    try:
        import uvloop
    except ImportError:
        asyncio.run(entry())
    else:
        uvloop.run(entry())


if __name__ == "__main__":
    run_loop()
