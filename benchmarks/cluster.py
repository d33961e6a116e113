"""Cluster benchmarks: buzon on PostgreSQL, one to three nodes, beside SQLite and RabbitMQ.

Everything runs on this machine: a private PostgreSQL server (its own data directory and
port, fsync on, the defaults otherwise), the buzon nodes as ``buzon serve`` processes, and
the load generator (``loadgen.py``, which checks every delivery) as processes of its own.

Sections:
    single   one node: persistent publishes with 64 receipts in flight (``confirm``), and a
             durable queue end to end (1 producer, 4 consumers, client-individual acks,
             persistent messages), on PostgreSQL, on SQLite and on RabbitMQ
    nodes    the same durable queue load spread over 1, 2 and 3 nodes of one database
             (one load generator per node, each on its own queue, the total fixed), with
             the CPU seconds PostgreSQL, the nodes and the load generators used
    failover kill -9 of a node whose consumer holds unacked messages: seconds until a
             consumer on another node has them all, redelivered

Usage:
    python benchmarks/cluster.py [--runs 3] [--quick] [--only single,nodes,failover]
                                 [--no-rabbitmq]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, postgres_server  # noqa: E402

import rabbitmq  # noqa: E402 (benchmarks/ is on the path when run as a script)
from buzon.client import Client  # noqa: E402
from loadgen import PASSWORD, Target, spawn_broker, token_login  # noqa: E402
from stomp_load import Login  # noqa: E402

LOADGEN = ROOT / "benchmarks" / "loadgen.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU seconds the processes used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (PostgreSQL's server and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@dataclass
class Node:
    process: subprocess.Popen[str]
    target: Target


@contextlib.contextmanager
def nodes(storage: str, count: int, url: str | None = None) -> Iterator[list[Node]]:
    """``count`` buzon nodes (PostgreSQL at ``url``, or one SQLite node), stopped at exit."""
    started: list[Node] = []
    data = tempfile.mkdtemp(prefix="buzon-cluster-bench-")
    extra = ["--database-url", url] if url else []
    try:
        for n in range(count):
            os.environ["BUZON_NODE_NAME"] = f"bench-{n + 1}"
            process, port, api = spawn_broker(storage, f"{data}/{n}", 40, extra_args=extra)
            started.append(Node(process, Target("127.0.0.1", port, process.pid, token_login(api))))
        yield started
    finally:
        os.environ.pop("BUZON_NODE_NAME", None)
        for node in started:
            node.process.terminate()
        for node in started:
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def loadgen(target: Target, json_path: Path, *args: str) -> subprocess.Popen[str]:
    """Start one load generator run against ``target``."""
    login = target.who
    command = [sys.executable, str(LOADGEN), *args, "--runs", "1", "--json", str(json_path)]
    command += ["--port", str(target.port), "--pid", str(target.pid)]
    command += ["--login", login.login, "--passcode", login.passcode]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], json_path: Path) -> dict[str, float]:
    out, err = process.communicate(timeout=900)
    if process.returncode != 0 or not json_path.exists():
        raise SystemExit(f"load generator failed: {(err or out).strip()[-400:]}")
    record: dict[str, float] = json.loads(json_path.read_text().splitlines()[-1])
    return record


def confirm_args(quick: bool) -> list[str]:
    messages = 2_000 if quick else 20_000
    return ["confirm", "--window", "64", "--persistent", "--messages", str(messages)]


def queue_args(messages: int) -> list[str]:
    return [
        *("queue", "--persistent", "--messages", str(messages), "--consumers", "4"),
        *("--prefetch", "1000", "--receipt-every", "1000", "--window", "4"),
    ]


def single(pg: PostgresServer, args: argparse.Namespace, work: Path) -> list[str]:
    """One node on each store, and RabbitMQ: confirmed and delivered msgs/s."""
    messages = 5_000 if args.quick else 50_000
    cases = {"confirm-64": confirm_args(args.quick), "durable queue": queue_args(messages)}
    rates: dict[tuple[str, str], list[float]] = {}
    brokers = ["buzon on PostgreSQL", "buzon on SQLite"]
    if not args.no_rabbitmq and rabbitmq.installed():
        brokers.append("RabbitMQ")
    for run in range(args.runs):
        for broker in brokers:
            with broker_target(broker, pg, work) as target:
                for case, case_args in cases.items():
                    path = work / f"single-{run}-{len(rates)}-{case.replace(' ', '-')}.json"
                    result = finish(loadgen(target, path, *case_args), path)
                    rates.setdefault((case, broker), []).append(result["rate"])
                    print(f"[single {run + 1}] {broker:<20} {case:<14} {result['rate']:,.0f}/s")
    lines = ["| scenario | " + " | ".join(brokers) + " |", "|---" * (len(brokers) + 1) + "|"]
    for case in cases:
        cells = [f"{statistics.median(rates[(case, b)]):,.0f}" for b in brokers]
        lines.append(f"| {case} (msgs/s) | " + " | ".join(cells) + " |")
    return lines


@contextlib.contextmanager
def broker_target(broker: str, pg: PostgresServer, work: Path) -> Iterator[Target]:
    if broker == "RabbitMQ":
        with rabbitmq.private_node(str(work)) as node:
            yield Target("127.0.0.1", node.stomp_port, node.beam_pid, Login(*rabbitmq.LOGIN))
        return
    url = pg.new_database() if "PostgreSQL" in broker else None
    storage = "postgresql" if url else "sqlite"
    with nodes(storage, 1, url) as started:
        yield started[0].target


def spread(pg: PostgresServer, args: argparse.Namespace, work: Path) -> list[str]:
    """The durable queue load over 1, 2 and 3 nodes; aggregate msgs/s and CPU seconds."""
    total = 6_000 if args.quick else 60_000
    lines = [
        "| nodes | aggregate delivered msgs/s | CPU-s PostgreSQL | CPU-s nodes (each) |"
        " CPU-s load generators |",
        "|---|---|---|---|---|",
    ]
    postmaster = pg_pid(pg)
    for count in (1, 2, 3):
        aggregates, pg_cpu, node_cpu, gen_cpu = [], [], [], []
        for run in range(args.runs):
            url = pg.new_database()
            with nodes("postgresql", count, url) as started:
                pg_pids = descendants(postmaster)
                node_pids = [node.process.pid for node in started]
                pg_before = cpu_seconds(pg_pids)
                nodes_before = [cpu_seconds([pid]) for pid in node_pids]
                began = time.monotonic()
                paths = [work / f"spread-{count}-{run}-{n}.json" for n in range(count)]
                runs = [
                    loadgen(node.target, path, *queue_args(total // count))
                    for node, path in zip(started, paths, strict=True)
                ]
                results = [finish(process, path) for process, path in zip(runs, paths, strict=True)]
                wall = time.monotonic() - began
                pg_cpu.append(cpu_seconds(descendants(postmaster)) - pg_before)
                node_cpu.append(
                    [
                        cpu_seconds([pid]) - before
                        for pid, before in zip(node_pids, nodes_before, strict=True)
                    ]
                )
                gen_cpu.append(sum(result["loadgen_cpu_s"] for result in results))
                # each generator's own rate covers its own run; the aggregate is the sum
                # while they all ran (they start together and carry equal shares)
                aggregates.append(sum(result["rate"] for result in results))
                print(
                    f"[nodes {count}, run {run + 1}] aggregate {aggregates[-1]:,.0f}/s,"
                    f" wall {wall:.1f} s, PostgreSQL {pg_cpu[-1]:.1f} CPU-s"
                )
        middle = sorted(range(len(aggregates)), key=aggregates.__getitem__)[len(aggregates) // 2]
        each = ", ".join(f"{value:.1f}" for value in node_cpu[middle])
        lines.append(
            f"| {count} | {aggregates[middle]:,.0f} | {pg_cpu[middle]:.1f} | {each} |"
            f" {gen_cpu[middle]:.1f} |"
        )
    return lines


def pg_pid(pg: PostgresServer) -> int:
    """The PostgreSQL server's own process (its backends are below it)."""
    return int((pg.data / "postmaster.pid").read_text().splitlines()[0])


def failover(pg: PostgresServer, args: argparse.Namespace) -> list[str]:
    """kill -9 of a node holding unacked messages: seconds until another node's consumer
    has them all (with the default and a short --node-timeout)."""
    lines = [
        "| --node-timeout | messages | kill -9 to all redelivered elsewhere (s) |",
        "|---|---|---|",
    ]
    held = 50
    for timeout in ("10", "3"):
        measured = []
        for _ in range(args.runs):
            os.environ["BUZON_NODE_TIMEOUT"] = timeout
            try:
                with nodes("postgresql", 2, pg.new_database()) as (a, b):
                    measured.append(time_to_redeliver(a, b, held))
            finally:
                os.environ.pop("BUZON_NODE_TIMEOUT", None)
            print(f"[failover {timeout} s] {measured[-1]:.2f} s")
        lines.append(f"| {timeout} s | {held} | {statistics.median(measured):.2f} |")
    return lines


def time_to_redeliver(a: Node, b: Node, held: int) -> float:
    url = "stomp://admin@127.0.0.1:{}"
    with (
        Client(url.format(a.target.port), passcode=PASSWORD) as on_a,
        Client(url.format(b.target.port), passcode=PASSWORD) as on_b,
    ):
        holder = on_a.subscribe("/queue/failover", ack="client-individual", prefetch=held)
        for n in range(held):
            on_b.publish("/queue/failover", f"m{n}")
        for _ in range(held):
            holder.get(timeout=30)  # delivered on a, never acked
        taker = on_b.subscribe("/queue/failover", ack="client-individual", prefetch=held)
        a.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for _ in range(held):
            message = taker.get(timeout=120)
            assert message.redelivered, "a message came back without its redelivered flag"
            message.ack()
        return time.monotonic() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages")
    parser.add_argument("--only", default="single,nodes,failover")
    parser.add_argument("--no-rabbitmq", action="store_true")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    with postgres_server() as pg, tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        report: list[str] = []
        if "single" in sections:
            report += ["### One node", "", *single(pg, args, work), ""]
        if "nodes" in sections:
            report += ["### Nodes on one database", "", *spread(pg, args, work), ""]
        if "failover" in sections:
            report += ["### Failover", "", *failover(pg, args), ""]
    print("\n".join(report))


if __name__ == "__main__":
    main()
