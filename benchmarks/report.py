"""The markdown the comparison runner writes (docs/performance.md).

Nothing here measures: every number is a median of the ``Result`` objects the runner
collected from ``loadgen.py`` in the same invocation, and every goal is judged from those
medians, so the document cannot drift from the runs behind it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from backlog_report import BacklogOutcome, section
from cases import BACKLOG_MESSAGES, QUICK, Axis, Case, Outcome, RetryVariant
from goals import BUZON, RABBITMQ, Metric, comparison_rows, median, ratio, verdict
from loadgen import PASSWORD, SPARE_CONNECTIONS, serve_command
from rabbitmq import CONFIG, INSTALL, SERVER, Node
from retry_report import RetryOutcome
from retry_report import section as retry_section
from stomp_load import Result


@dataclass
class Report:
    """Everything one invocation of the runner produced."""

    command: str
    runs: int
    quick: bool
    cases: list[Case]
    axes: list[Axis]
    results: dict[tuple[str, str], Outcome]
    rabbitmq_absent: str  # why RabbitMQ was not run, or ""
    node: Node | None  # the last RabbitMQ node started, for its versions
    machine: list[tuple[str, str]]
    started: datetime
    elapsed_s: float
    # the backlog scenario, when it ran: its outcome per broker, its messages, the
    # arguments every run got and the file name of its plot (beside the document)
    backlog: dict[str, BacklogOutcome] = field(default_factory=dict)
    backlog_messages: int = 0
    backlog_args: list[str] = field(default_factory=list)
    backlog_image: str = ""
    # the retry scenario, when it ran: its outcome per variant (by label), the variants and
    # its messages
    retry: dict[str, RetryOutcome] = field(default_factory=dict)
    retry_variants: list[RetryVariant] = field(default_factory=list)
    retry_messages: int = 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cell(outcome: Outcome | None, metric: Metric, digits: int) -> str:
    """The median, and how many runs failed if any did."""
    text = number(median(outcome, metric), digits)
    if outcome is not None and outcome.failures:
        failed, total = len(outcome.failures), len(outcome.failures) + len(outcome.runs)
        text += f" ({failed} of {total} runs failed)"
    return text


def peak_mib(run: Result) -> float:
    return run.rss_peak_kib / 1024


def cpu(run: Result) -> float:
    return run.cpu_per_100k


def loadgen_cpu(run: Result) -> float:
    return run.loadgen_cpu_s * 100_000 / run.deliveries


def comparison(report: Report) -> list[str]:
    titles = {case.name: case.title for case in report.cases}
    lines = [
        "| scenario | measure | buzon | RabbitMQ | buzon / RabbitMQ | goal | met? |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for row in comparison_rows(report.cases, report.results):
        ours_outcome = report.results.get((row.case, BUZON))
        theirs_outcome = report.results.get((row.case, RABBITMQ))
        ours, theirs = median(ours_outcome, row.metric), median(theirs_outcome, row.metric)
        lines.append(
            f"| {titles[row.case]} | {row.measure} | {cell(ours_outcome, row.metric, row.digits)}"
            f" | {cell(theirs_outcome, row.metric, row.digits)} | {ratio(row, ours, theirs)}"
            f" | {row.goal} | {verdict(row, ours, theirs)} |"
        )
    return lines


def cpu_table(report: Report) -> list[str]:
    """Broker CPU per 100k deliveries; the load generator's own, to show when it (one
    process) rather than the broker was the limit."""
    lines = [
        "| scenario | buzon | RabbitMQ | buzon / RabbitMQ (lower is better)"
        " | load generator: against buzon / against RabbitMQ |",
        "|---|--:|--:|--:|--:|",
    ]
    for case in report.cases:
        ours = report.results.get((case.name, BUZON))
        theirs = report.results.get((case.name, RABBITMQ))
        mine, other = median(ours, cpu), median(theirs, cpu)
        ratio = f"{mine / other:.2f}x" if mine is not None and other else "-"
        loadgen = f"{cell(ours, loadgen_cpu, 2)} / {cell(theirs, loadgen_cpu, 2)}"
        lines.append(
            f"| {case.title} | {cell(ours, cpu, 2)} | {cell(theirs, cpu, 2)} | {ratio}"
            f" | {loadgen} |"
        )
    return lines


def memory_table(report: Report) -> list[str]:
    lines = ["| scenario | buzon RSS (MiB) | RabbitMQ RSS (MiB) |", "|---|--:|--:|"]
    for case in report.cases:
        ours = rss_range(report.results.get((case.name, BUZON)))
        theirs = rss_range(report.results.get((case.name, RABBITMQ)))
        lines.append(f"| {case.title} | {ours} | {theirs} |")
    return lines


def rss_range(outcome: Outcome | None) -> str:
    start = median(outcome, lambda run: run.rss_start_kib / 1024)
    return "-" if start is None else f"{start:,.0f} → {median(outcome, peak_mib):,.0f}"


# (header, value from the axis point and a run, decimals) per column after the first
Column = tuple[str, Callable[[int, Result], float], int]
MEMORY: Column = ("broker peak RSS (MiB)", lambda _, run: peak_mib(run), 0)
CPU: Column = ("broker CPU-s per 100k", lambda _, run: cpu(run), 2)
LOADGEN: Column = ("load generator CPU-s per 100k", lambda _, run: loadgen_cpu(run), 2)
SCALING_COLUMNS: dict[str, list[Column]] = {
    "consumers": [("delivered msgs/s", lambda _, run: run.rate, 0), CPU, LOADGEN, MEMORY],
    "subscribers": [
        ("deliveries/s", lambda _, run: run.rate, 0),
        ("published msgs/s", lambda subscribers, run: run.rate / subscribers, 0),
        CPU,
        LOADGEN,
        MEMORY,
    ],
    "depth": [
        ("broker RSS per waiting message (B)", lambda _, run: run.extra["bytes_per_message"], 0),
        ("filled at msgs/s", lambda _, run: run.extra["fill_rate"], 0),
        ("drained at msgs/s", lambda _, run: run.rate, 0),
        MEMORY,
    ],
    "size": [
        ("delivered msgs/s", lambda _, run: run.rate, 0),
        ("MB/s", lambda size, run: run.rate * size / 1e6, 1),
        CPU,
        MEMORY,
    ],
    "connections": [
        ("broker memory per connection (B)", lambda _, r: r.extra["bytes_per_connection"], 0),
        ("delivered msgs/s while connected", lambda _, run: run.rate, 0),
        MEMORY,
    ],
}


def at_point(value: int, column: Column) -> Metric:
    return lambda run: column[1](value, run)


def scaling(report: Report) -> list[str]:
    lines = [
        "## How buzon scales",
        "",
        f"buzon alone, one parameter at a time, medians of {plural(report.runs, 'run')};"
        " the options of every point are under *Commands*.",
    ]
    for axis in report.axes:
        columns = SCALING_COLUMNS[axis.name]
        lines += ["", f"### {axis.title.capitalize()}", ""]
        lines.append(f"| {axis.title} | " + " | ".join(column[0] for column in columns) + " |")
        lines.append("|--:|" + "--:|" * len(columns))
        for value, case in axis.points:
            outcome = report.results.get((case.name, BUZON))
            cells = [cell(outcome, at_point(value, column), column[2]) for column in columns]
            lines.append(f"| {value:,} | " + " | ".join(cells) + " |")
    return lines


def all_cases(report: Report) -> list[Case]:
    return report.cases + [case for axis in report.axes for _, case in axis.points]


def commands(report: Report) -> list[str]:
    serve = serve_command("STORAGE", "DIR", 0)[1:]
    serve[-1] = "CONNECTIONS"
    env = f"BUZON_ADMIN_PASSWORD={PASSWORD} BUZON_LOG_LEVEL=warning"
    config = CONFIG.format(amqp="AMQP_PORT", stomp="STOMP_PORT").strip().replace("\n", "; ")
    lines = [
        "## Commands",
        "",
        f"This document: `{report.command}`.",
        "",
        "Every run starts a fresh broker and stops it afterwards:",
        "",
        f"- buzon: `{env} python {shlex.join(serve)}`, where `STORAGE` is `sqlite` for the"
        " persistent scenarios, the backlog and the one with each broker's defaults, and"
        " `memory` for the others, and `CONNECTIONS` is"
        f" {SPARE_CONNECTIONS} more than the scenario opens. The load generator logs in"
        " over HTTP once and uses the token as its"
        " STOMP passcode (AMQP: its SASL PLAIN password).",
    ]
    if report.node is not None:
        lines.append(
            f"- RabbitMQ: `{SERVER}` (Debian's start script, as the calling user) with `HOME`"
            " and every `RABBITMQ_*` path (database, logs, plugins file, configuration) in a"
            " fresh temporary directory, the `rabbitmq_stomp` plugin enabled, and this whole"
            f" configuration, on free ports: `{config}`. Its CPU and memory are those of its"
            " `beam.smp` process."
        )
    if not all_cases(report):
        return lines
    lines += [
        "",
        "Each scenario, once per run and broker (`PORT` and `PID` are the broker's STOMP or"
        " AMQP port and its process; `LOGIN`"
        " and `PASSCODE` are `admin` and its token for buzon, `guest` and `guest` for"
        " RabbitMQ):",
        "",
        "```",
    ]
    lines += [
        f"python benchmarks/{case.script} {shlex.join(case.loadgen_args())} --json RUNS"
        " --port PORT --pid PID --login LOGIN --passcode PASSCODE"
        for case in all_cases(report)
    ]
    return [*lines, "```"]


def intro(report: Report) -> list[str]:
    latency = next((case for case in report.cases if case.scenario == "latency"), None)
    steady = f" at a steady {latency.options['rate']:,} msgs/s" if latency else ""
    took = report.elapsed_s
    duration = f"{took / 60:,.0f} minutes" if took >= 120 else f"{took:,.0f} seconds"
    return [
        "# Performance",
        "",
        "buzon and RabbitMQ with its STOMP plugin, driven by the same load generator"
        " (`benchmarks/loadgen.py`, STOMP 1.2 over loopback TCP) on the same machine."
        f" `benchmarks/compare.py` wrote this file on {report.started:%Y-%m-%d} from the"
        f" {plural(report.runs, 'run')} of every scenario it made against each broker"
        f" ({duration} in all); every number is the median of those runs.",
        "",
        *(
            [
                f"**A `--quick` run: message and connection counts divided by {QUICK}. A smoke"
                " test of the runner, not a measurement.**",
                "",
            ]
            if report.quick
            else []
        ),
        "- **Interleaved.** Run 1 of every scenario on both brokers, then run 2, and so on;"
        " the broker that goes first alternates from run to run. Every run starts a fresh"
        " broker process, so no run inherits another's memory, connections or queues.",
        "- **Checked.** The load generator counts every delivery by sequence number: a run"
        " that loses, duplicates or reorders a message fails instead of giving a number.",
        "- **Rates** run from the first send to the last delivery (to the last confirmation"
        f" in the persistent scenarios). **Latency** is send to delivery{steady}, timed in"
        " the load generator's process. **Broker CPU** is the broker process's user + system"
        " time over the same span, per 100k deliveries. **Memory** is the broker's resident"
        " set, sampled every 20 ms.",
        "- The load generator is one process on the same machine, sharing its cores.",
        *(
            [
                "- **AMQP 0-9-1** scenarios reach each broker's AMQP listener instead:"
                " `benchmarks/amqp_load.py` (raw sockets and pre-built frames, so that it costs"
                " less per message than either broker), pika's `BlockingConnection`"
                " (`amqp_pika.py`) and a Celery worker (`celery_load.py`, whose worker is a"
                " second process)."
            ]
            if any(case.protocol == "amqp" for case in report.cases)
            else []
        ),
    ]


def render(report: Report) -> str:
    lines = intro(report)
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in report.machine]
    if report.cases:
        lines += ["", *tables(report)]
    if report.backlog:
        lines += ["", *backlog_section(report)]
    if report.retry:
        lines += [
            "",
            *retry_section(
                report.retry_variants, report.retry, report.retry_messages, report.rabbitmq_absent
            ),
        ]
    if report.axes:
        lines += ["", *scaling(report)]
    failures = [
        f"- {name}, {broker}: {reason}"
        for (name, broker), outcome in report.results.items()
        for reason in outcome.failures
    ]
    failures += [
        f"- backlog, {broker}: {reason}"
        for broker, outcome in report.backlog.items()
        for reason in outcome.failures
    ]
    failures += [
        f"- retry, {label}: {reason}"
        for label, outcome in report.retry.items()
        for reason in outcome.failures
    ]
    if failures:
        lines += ["", "## Failed runs", "", *failures]
    lines += ["", *commands(report), "", *reproduce()]
    return "\n".join(lines) + "\n"


def backlog_section(report: Report) -> list[str]:
    return section(
        report.backlog,
        report.backlog_messages,
        report.command,
        report.backlog_args,
        report.backlog_image,
        report.rabbitmq_absent,
    )


def tables(report: Report) -> list[str]:
    """The comparison of the scenarios run through the load generator."""
    lines = ["## buzon and RabbitMQ", ""]
    if report.rabbitmq_absent:
        lines += [f"RabbitMQ was not run: {report.rabbitmq_absent}.", ""]
    lines += [
        "The ratio is buzon's median over RabbitMQ's; where lower is better, the better one"
        " is named. Goals come from the issue that asked for this comparison.",
        "",
        *comparison(report),
        "",
        "### Broker CPU-seconds per 100k deliveries",
        "",
        "CPU-seconds (user + system) per 100k deliveries: messages handed to consumers"
        " (fan-out: to each subscriber) or, in the persistent scenarios, confirmed publishes."
        " The load generator's own CPU is there to show where it, one process, was the limit.",
        "",
        *cpu_table(report),
        "",
        "### Broker memory",
        "",
        "Resident set at the start of the measured span → its peak, in MiB.",
        "",
        *memory_table(report),
    ]
    return lines


def reproduce() -> list[str]:
    return [
        "## Reproduce",
        "",
        "On Debian (or Ubuntu), from a checkout of this repository:",
        "",
        "```sh",
        f"sudo {INSTALL}  # the runner enables the STOMP plugin on its own node",
        "sudo systemctl disable --now rabbitmq-server  # the system node is not used",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'",
        "python benchmarks/compare.py --runs 3 --scaling",
        "```",
        "",
        "Without RabbitMQ installed, or with `--no-rabbitmq`, the runner measures buzon alone."
        f" `--quick` divides message and connection counts by {QUICK} (a smoke test, not a"
        " measurement); `--only queue,latency` picks scenarios. The backlog scenario runs only"
        " when picked: `--only backlog --messages 1000000` (the default is"
        f" {BACKLOG_MESSAGES:,} messages, and a run of it takes hours); so does the retry"
        " scenario: `--only retry`.",
    ]
