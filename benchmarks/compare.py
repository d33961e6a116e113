"""Compare buzon with RabbitMQ's STOMP plugin under the same load generator, and write the
result as markdown (docs/performance.md). The AMQP 0-9-1 scenarios (``amqp``,
``amqp_fanout``, ``amqp_pika``, ``celery``) compare buzon's AMQP listener with RabbitMQ's, the
same way, through their own load generators (``cases.amqp_cases``).

- Both brokers get the same ``loadgen.py`` command lines (``cases.py``), one run at a time,
  on the same machine; the runner collects each run's JSON and the report is made of their
  medians only (``report.py``), so every number in it comes from this invocation.
- Runs are interleaved: run 1 of every scenario on both brokers, then run 2, ...; which
  broker goes first alternates, so drift of the machine (heat, page cache, neighbours) hits
  both alike.
- Every run gets a fresh broker process: memory figures (per idle connection, per waiting
  message, peak RSS) are never inherited from the run before.
- Persistent scenarios run buzon on SQLite, and both brokers keep their data on a real disk
  (never tmpfs), so a confirmation means fsynced for both.
- RabbitMQ is a private node started here (``rabbitmq.py``) when Debian's package is
  installed; without it, buzon runs alone and the report says so.
- The backlog scenario (``backlog.py``: fill a queue with nobody consuming, restart the
  broker, drain) runs only when ``--only`` names it, as its full size (``--messages``,
  10,000,000 by default) takes hours; it starts and restarts its brokers itself, and its
  section of the document comes with a plot of their memory over time, an SVG file written
  beside the document (``backlog-rss.svg``).
- The retry scenario (``retry.py``: every message NACKed twice, then acked; then the
  broker's CPU while delayed messages wait) also runs only when ``--only`` names it, with
  ``--retry-messages`` (100,000 by default): buzon with back-off (``requeue-delay``), and
  buzon and RabbitMQ with plain NACKs requeued at once (RabbitMQ has no broker-side
  back-off). It starts its broker itself, like the backlog scenario.

Usage:
    python benchmarks/compare.py [--runs 3] [--quick] [--only queue,latency] [--no-rabbitmq]
                                 [--scaling] [--output docs/performance.md]
    python benchmarks/compare.py --only backlog --messages 1000000 --runs 1
    python benchmarks/compare.py --only retry [--retry-messages 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import machine
import rabbitmq
from backlog import BacklogResult
from backlog_report import BacklogOutcome, rss_svg
from cases import (
    BACKLOG,
    BACKLOG_MESSAGES,
    QUICK,
    RETRY,
    RETRY_MESSAGES,
    Case,
    Outcome,
    RetryVariant,
    backlog_args,
    comparison_cases,
    retry_args,
    retry_variants,
    scaling_axes,
)
from goals import BUZON, RABBITMQ
from loadgen import Target, raise_file_limit, start_broker
from report import Report, render
from retry import RetryResult
from retry_report import RetryOutcome
from stomp_load import Login, Result

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
BACKLOG_SCRIPT = BENCHMARKS / "backlog.py"
RETRY_SCRIPT = BENCHMARKS / "retry.py"
RUN_TIMEOUT_S = 1800  # one loadgen run; its own waits time out well before this
BACKLOG_IMAGE = "backlog-rss.svg"  # the plot, written beside the document


class Broker(Protocol):
    name: str

    def start(self, case: Case) -> AbstractContextManager[Target]: ...


class Buzon:
    name = BUZON

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir

    @contextlib.contextmanager
    def start(self, case: Case) -> Iterator[Target]:
        data_dir = tempfile.mkdtemp(prefix="buzon-bench-", dir=self.base_dir)
        try:
            try:
                process, target = start_broker(
                    case.storage, data_dir, case.connections, protocol=case.protocol
                )
            except SystemExit as failed:  # it printed why; the other runs go on
                raise RunFailed(f"buzon did not start: {failed}") from None
            try:
                yield target
            finally:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


class RabbitMQ:
    name = RABBITMQ

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir
        self.node: rabbitmq.Node | None = None

    @contextlib.contextmanager
    def start(self, case: Case) -> Iterator[Target]:
        with rabbitmq.private_node(self.base_dir) as node:
            self.node = node
            port = node.amqp_port if case.protocol == "amqp" else node.stomp_port
            yield Target("127.0.0.1", port, node.beam_pid, Login(*rabbitmq.LOGIN))


class RunFailed(Exception):
    """A run gave no result: the load generator failed (a check, a timeout) or hung."""


def run_once(case: Case, target: Target, json_path: Path) -> tuple[Result, str]:
    """One run of the case's load generator against ``target``: its result and its report
    line."""
    who = target.who
    script = BENCHMARKS / case.script
    command = [sys.executable, str(script), *case.loadgen_args(), "--json", str(json_path)]
    command += ["--port", str(target.port), "--pid", str(target.pid)]
    command += ["--login", who.login, "--passcode", who.passcode]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raise RunFailed(f"no result within {RUN_TIMEOUT_S} s") from expired
    if done.returncode != 0 or not json_path.exists():
        reason = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RunFailed(f"exit code {done.returncode}: {reason}")
    record = json.loads(json_path.read_text().splitlines()[-1])
    del record["run"]
    line = done.stdout.splitlines()[0].split(":", 1)[1].strip()
    return Result(**record), line


def run_all(
    cases: list[Case], brokers: list[Broker], runs: int, work_dir: Path
) -> dict[tuple[str, str], Outcome]:
    """Every case ``runs`` times on every broker, interleaved."""
    results: dict[tuple[str, str], Outcome] = {}
    for run in range(1, runs + 1):
        order = brokers if run % 2 else brokers[::-1]
        for case in cases:
            for broker in order:
                outcome = results.setdefault((case.name, broker.name), Outcome())
                json_path = work_dir / f"{case.name}-{broker.name}-{run}.json"
                started = time.monotonic()
                try:
                    with broker.start(case) as target:
                        result, line = run_once(case, target, json_path)
                except (RunFailed, rabbitmq.StartFailed) as failure:
                    line = f"FAILED: {failure}"
                    # one line for the report; the whole message is printed below
                    outcome.failures.append(f"run {run}: {' '.join(str(failure).split())[:300]}")
                else:
                    outcome.runs.append(result)
                took = time.monotonic() - started
                print(
                    f"[run {run}/{runs}] {case.name:<16} {broker.name:<8} {line}  ({took:.0f} s)",
                    flush=True,
                )
    return results


def run_backlog(
    messages: int, brokers: list[str], runs: int, base_dir: str, work_dir: Path
) -> dict[str, BacklogOutcome]:
    """``backlog.py`` ``runs`` times against each broker, interleaved like ``run_all``. It
    starts, restarts and stops its broker itself; its steps time out on their own, well
    before the bound here (five times the longest a step may take, by its default)."""
    args = backlog_args(messages)
    timeout = 5 * (60 + messages / 2000) + 300
    outcomes = {broker: BacklogOutcome([], []) for broker in brokers}
    for run in range(1, runs + 1):
        for broker in brokers if run % 2 else brokers[::-1]:
            json_path = work_dir / f"backlog-{broker}-{run}.json"
            command = [sys.executable, str(BACKLOG_SCRIPT), "--broker", broker.lower(), *args]
            command += ["--base-dir", base_dir, "--json", str(json_path)]
            started = time.monotonic()
            try:
                try:
                    done = subprocess.run(
                        command, capture_output=True, text=True, timeout=timeout, check=False
                    )
                except subprocess.TimeoutExpired as expired:
                    raise RunFailed(f"no result within {timeout:.0f} s") from expired
                if done.returncode != 0 or not json_path.exists():
                    output = done.stderr.strip() or done.stdout.strip() or "no output"
                    raise RunFailed(f"exit code {done.returncode}: {output.splitlines()[-1]}")
            except RunFailed as failure:
                line = f"FAILED: {failure}"
                outcomes[broker].failures.append(f"run {run}: {' '.join(line.split())[:300]}")
            else:
                record = json.loads(json_path.read_text().splitlines()[-1])
                outcomes[broker].runs.append(BacklogResult.from_json(record))
                line = done.stdout.strip().splitlines()[-1]
            took = time.monotonic() - started
            print(f"[run {run}/{runs}] backlog  {line}  ({took:.0f} s)", flush=True)
    return outcomes


def run_retry(
    variants: list[RetryVariant], messages: int, runs: int, base_dir: str, work_dir: Path
) -> dict[str, RetryOutcome]:
    """``retry.py`` ``runs`` times for each variant, interleaved like ``run_all``. It starts
    and stops its broker itself; its phases time out on their own, well before the bound
    here."""
    timeout = 3 * (60 + messages / 1000) + 300
    outcomes = {variant.label: RetryOutcome([], []) for variant in variants}
    for run in range(1, runs + 1):
        for variant in variants if run % 2 else variants[::-1]:
            json_path = work_dir / f"retry-{variants.index(variant)}-{run}.json"
            command = [sys.executable, str(RETRY_SCRIPT), "--broker", variant.broker]
            command += [*retry_args(messages), *variant.options]
            command += ["--base-dir", base_dir, "--json", str(json_path)]
            started = time.monotonic()
            try:
                try:
                    done = subprocess.run(
                        command, capture_output=True, text=True, timeout=timeout, check=False
                    )
                except subprocess.TimeoutExpired as expired:
                    raise RunFailed(f"no result within {timeout:.0f} s") from expired
                if done.returncode != 0 or not json_path.exists():
                    output = done.stderr.strip() or done.stdout.strip() or "no output"
                    raise RunFailed(f"exit code {done.returncode}: {output.splitlines()[-1]}")
            except RunFailed as failure:
                line = f"FAILED: {failure}"
                outcomes[variant.label].failures.append(f"run {run}: {line[:300]}")
            else:
                record = json.loads(json_path.read_text().splitlines()[-1])
                outcomes[variant.label].runs.append(RetryResult.from_json(record))
                line = done.stdout.strip().splitlines()[-1]
            took = time.monotonic() - started
            print(f"[run {run}/{runs}] retry  {line}  ({took:.0f} s)", flush=True)
    return outcomes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cases = [case.name for case in comparison_cases(quick=False)]
    names = [*cases, BACKLOG, RETRY]
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario and broker")
    parser.add_argument("--quick", action="store_true", help=f"1/{QUICK} of the messages")
    parser.add_argument(
        "--only",
        default=",".join(cases),
        help=f"comma-separated scenarios (default: all but {BACKLOG}, which takes hours,"
        f" and {RETRY})",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=BACKLOG_MESSAGES,
        help=f"{BACKLOG}: messages waiting at the end of the fill",
    )
    parser.add_argument(
        "--retry-messages",
        type=int,
        default=RETRY_MESSAGES,
        help=f"{RETRY}: messages, each NACKed twice then acked",
    )
    parser.add_argument("--no-rabbitmq", action="store_true", help="measure buzon alone")
    parser.add_argument("--scaling", action="store_true", help="also buzon's scaling tables")
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if (args.messages // QUICK if args.quick else args.messages) < 1:
        parser.error(f"--messages {args.messages} leaves no message to send")
    if (args.retry_messages // QUICK if args.quick else args.retry_messages) < 1:
        parser.error(f"--retry-messages {args.retry_messages} leaves no message to send")
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    return args


def rabbitmq_broker(args: argparse.Namespace, base_dir: str) -> tuple[RabbitMQ | None, str]:
    """RabbitMQ when it is to be run, else why not."""
    if args.no_rabbitmq:
        return None, "`--no-rabbitmq` was given"
    if not rabbitmq.installed():
        return None, f"it is not installed (`{rabbitmq.INSTALL}`)"
    return RabbitMQ(base_dir), ""


def main() -> None:
    args = parse_args()
    raise_file_limit()  # the brokers inherit it: idle connections need a descriptor each
    started, clock = datetime.now().astimezone(), time.monotonic()
    base_dir = machine.disk_dir()
    rabbit, absent = rabbitmq_broker(args, base_dir)
    brokers: list[Broker] = [Buzon(base_dir), *([rabbit] if rabbit else [])]
    print(f"measuring buzon alone: RabbitMQ {absent}" if absent else "buzon and RabbitMQ")
    cases = [case for case in comparison_cases(args.quick) if case.name in args.only]
    axes = scaling_axes(args.quick) if args.scaling else []
    backlog = args.messages // QUICK if args.quick else args.messages
    with tempfile.TemporaryDirectory(prefix="compare-runs-") as work:
        results = run_all(cases, brokers, args.runs, Path(work))
        backlogs = (
            run_backlog(backlog, [b.name for b in brokers], args.runs, base_dir, Path(work))
            if BACKLOG in args.only
            else {}
        )
        retry_messages = args.retry_messages // QUICK if args.quick else args.retry_messages
        variants = retry_variants(rabbit is not None) if RETRY in args.only else []
        retries = run_retry(variants, retry_messages, args.runs, base_dir, Path(work))
        for axis in axes:
            print(f"scaling: {axis.title}", flush=True)
            axis_cases = [case for _, case in axis.points]
            results.update(run_all(axis_cases, [Buzon(base_dir)], args.runs, Path(work)))
    node = rabbit.node if rabbit else None
    theirs = backlogs[RABBITMQ].runs if RABBITMQ in backlogs else []
    theirs_retried = [run for o in retries.values() for run in o.runs if run.broker == RABBITMQ]
    if node is None and theirs:  # RabbitMQ ran the backlog only: its versions from there
        node = rabbitmq.Node(0, 0, theirs[0].version, theirs[0].erlang)
    elif node is None and theirs_retried:  # or the retry scenario only
        node = rabbitmq.Node(0, 0, theirs_retried[0].version, theirs_retried[0].erlang)
    output = Path(args.output)
    firsts = [outcome.runs[0] for outcome in backlogs.values() if outcome.runs]
    if firsts:
        (output.parent / BACKLOG_IMAGE).write_text(rss_svg(firsts, backlog))
    report = Report(
        command=shlex.join(["python", "benchmarks/compare.py", *sys.argv[1:]]),
        runs=args.runs,
        quick=args.quick,
        cases=cases,
        axes=axes,
        results=results,
        rabbitmq_absent=absent,
        node=node,
        machine=machine.facts(base_dir, node),
        started=started,
        elapsed_s=time.monotonic() - clock,
        backlog=backlogs,
        backlog_messages=backlog,
        backlog_args=backlog_args(backlog),
        backlog_image=BACKLOG_IMAGE,
        retry=retries,
        retry_variants=variants,
        retry_messages=retry_messages,
    )
    output.write_text(render(report))
    print(f"wrote {output} in {report.elapsed_s / 60:.1f} minutes")


if __name__ == "__main__":
    main()
