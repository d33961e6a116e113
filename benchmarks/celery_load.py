"""Celery as the client: no-op tasks per second end to end with one worker, and what they
cost the broker.

One run starts a worker subprocess (``celery -A celery_noop worker -P solo``: one process
that runs each task in its consumer loop, so the pool's own IPC is not measured; Celery's
defaults otherwise, among them a prefetch of 4), waits until it consumes, sends one task to
warm the connection, then sends ``--tasks`` no-op tasks from this process (``send_task`` on
one pooled producer) and a final one that makes the worker write how many tasks it ran.
The span runs from the first send to that file; the count must be every task sent. Results
are off. The worker's own CPU is reported beside the broker's.

Usage:
    python benchmarks/celery_load.py celery [--tasks 10000] --port 5672 --pid 1234 \\
        --login guest --passcode guest
    python benchmarks/celery_load.py celery   # against a buzon serve --amqp-port 0 here
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from celery import Celery

from loadgen import Target, add_target_options, check_target, measure, run_loop
from stomp_load import Meter, Result, cpu_seconds

BENCHMARKS = Path(__file__).resolve().parent
WORKER_START_S = 60.0
POLL_S = 0.002


def amqp_url(to: Target, vhost: str) -> str:
    """A broker URL for kombu: login, password and virtual host quoted."""
    who = f"{quote(to.who.login, safe='')}:{quote(to.who.passcode, safe='')}"
    return f"amqp://{who}@{to.host}:{to.port}/{quote(vhost, safe='')}"


def worker_command() -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "celery_noop", "worker"),
        *("-P", "solo", "--loglevel", "WARNING"),
    ]


@contextlib.contextmanager
def worker(url: str, ready: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The worker subprocess, once it consumes; stopped (warm shutdown) afterwards."""
    path = os.pathsep.join(filter(None, [str(BENCHMARKS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CELERY_BENCH_BROKER": url, "CELERY_BENCH_READY": str(ready)}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            worker_command(),
            cwd=BENCHMARKS,
            env={**env, "PYTHONPATH": path},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WORKER_START_S
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise SystemExit(
                    f"the Celery worker did not start (exit {process.poll()}):\n{tail}"
                )
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def send_all(app: Any, tasks: int, done: Path, timeout: float) -> float:
    """Send ``tasks`` no-ops and the final task; wait for its file; return the seconds the
    sends took."""
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(tasks):
            app.send_task("noop", producer=producer)
        app.send_task("finish", args=[str(done)], producer=producer)
    sent = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker did not finish {tasks} tasks within {timeout:.0f} s")
        time.sleep(POLL_S)
    return sent


async def run_celery(args: argparse.Namespace, to: Target) -> Result:
    url = amqp_url(to, args.vhost)
    app = Celery("celery_load", broker=url)
    app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as work:
        files = Path(work)
        with worker(url, files / "ready", files / "worker.log") as process:
            await asyncio.to_thread(send_all, app, 0, files / "warm", args.timeout)
            worker_cpu = cpu_seconds(process.pid)
            async with Meter(to.pid) as meter:
                done = files / "done"
                sent_s = await asyncio.to_thread(send_all, app, args.tasks, done, args.timeout)
                elapsed = time.perf_counter() - meter.started
            worker_cpu = cpu_seconds(process.pid) - worker_cpu
        app.close()
        ran = int(done.read_text())
    if ran != args.tasks:
        raise SystemExit(f"the worker ran {ran} no-op tasks of {args.tasks} sent")
    result = meter.result("celery", args.tasks, elapsed, [])
    result.extra = {
        "send_rate": args.tasks / sent_s,
        "worker_cpu_per_100k": worker_cpu * 100_000 / args.tasks,
    }
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["celery"])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--persistent", action="store_true", help="always: for compare.py")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300)
    add_target_options(parser, vhost=True)
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be positive")
    check_target(parser, args)
    args.connections = 20  # the worker's connections (consumer, pidbox, events) and ours
    return args


async def main() -> None:
    await measure(parse_args(), run_celery, protocol="amqp")


if __name__ == "__main__":
    run_loop(main)
