"""The retry scenario's part of the comparison document: the figures of ``retry.py``'s runs,
one column per variant (buzon with back-off; buzon and RabbitMQ requeuing at once), and the
broker's CPU while delayed messages wait, judged against the issue's goal.

As in ``report.py``, nothing here measures: every figure is a median of the runs the runner
collected in the same invocation.
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cases import RetryVariant, retry_args
from retry import RetryResult

Figure = Callable[[RetryResult], float]
# "costs no CPU while it waits": at most this share of one core above the idle broker's
WAIT_CPU_GOAL = 0.01


@dataclass
class RetryOutcome:
    """The retry runs of one variant, and why any run failed."""

    runs: list[RetryResult]
    failures: list[str]


def median(outcome: RetryOutcome | None, figure: Figure) -> float | None:
    """The median over the runs that have the figure (NaN: they have not)."""
    if outcome is None:
        return None
    values = [value for value in map(figure, outcome.runs) if math.isfinite(value)]
    return statistics.median(values) if values else None


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def failed(outcome: RetryOutcome | None) -> str:
    if outcome is None or not outcome.failures:
        return ""
    total = len(outcome.failures) + len(outcome.runs)
    return f" ({len(outcome.failures)} of {total} runs failed)"


def per_100k(seconds: Callable[[RetryResult], float]) -> Figure:
    return lambda run: seconds(run) * 100_000 / run.messages


# (measure, figures shown together, decimals)
ROWS: list[tuple[str, tuple[Figure, ...], int]] = [
    ("acknowledged msgs/s, first send to last delivery", (lambda run: run.rate,), 0),
    ("deliveries/s (3 per message)", (lambda run: run.deliveries / run.elapsed_s,), 0),
    ("broker CPU-s per 100k messages", (per_100k(lambda run: run.broker_cpu_s),), 2),
    ("load generator CPU-s per 100k messages", (per_100k(lambda run: run.loadgen_cpu_s),), 2),
    ("broker peak RSS (MiB)", (lambda run: run.peak_rss_kib / 1024,), 0),
    (
        "redelivered later than its back-off by: p50 / p99 / max (ms)",
        (
            lambda run: run.late_p50_ms,
            lambda run: run.late_p99_ms,
            lambda run: run.late_max_ms,
        ),
        1,
    ),
]


def cell(outcome: RetryOutcome | None, figures: Sequence[Figure], digits: int) -> str:
    values = [median(outcome, figure) for figure in figures]
    if all(value is None for value in values):
        return "-" + failed(outcome)
    return " / ".join(number(value, digits) for value in values) + failed(outcome)


def table(variants: Sequence[RetryVariant], outcomes: dict[str, RetryOutcome]) -> list[str]:
    lines = [
        "| measure | " + " | ".join(variant.label for variant in variants) + " |",
        "|---|" + "--:|" * len(variants),
    ]
    for measure, figures, digits in ROWS:
        cells = [cell(outcomes.get(variant.label), figures, digits) for variant in variants]
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    return lines


def above_idle(run: RetryResult) -> float:
    """The broker's CPU with the delayed messages waiting, above its idle CPU, as a share
    of one core."""
    return (run.waiting_cpu_s - run.idle_cpu_s) / run.wait_seconds


def waiting_table(outcome: RetryOutcome) -> list[str]:
    """The wait phase: the broker's CPU idle, then with delayed messages waiting."""
    runs = [run for run in outcome.runs if run.waiting]
    if not runs:
        return []
    waited = RetryOutcome(runs, [])
    seconds, messages = runs[0].wait_seconds, runs[0].waiting
    share = median(waited, above_idle)
    goal = f"≤ {WAIT_CPU_GOAL:.0%} of a core above idle"
    met = "-" if share is None else "yes" if share <= WAIT_CPU_GOAL else "**no**"
    rss_idle = median(waited, lambda run: run.idle_rss_kib / 1024)
    rss_waiting = median(waited, lambda run: run.waiting_rss_kib / 1024)
    per_message = median(
        waited, lambda run: (run.waiting_rss_kib - run.idle_rss_kib) * 1024 / run.waiting
    )
    return [
        "### A waiting message costs no CPU",
        "",
        "After the retry run, the same buzon process, left alone, is measured idle; then as"
        " many persistent messages as the run had are sent with"
        f" `delay:{runs[0].wait_delay_ms}` to a queue a consumer subscribes to, and the broker"
        " is measured again over the same span while they wait (none may arrive meanwhile)."
        " A broker that polled its waiting messages would show it here.",
        "",
        "| measure | buzon | goal | met? |",
        "|---|--:|---|---|",
        f"| broker CPU-s over {seconds:g} s, idle"
        f" | {number(median(waited, lambda run: run.idle_cpu_s), 2)} | - | - |",
        f"| broker CPU-s over {seconds:g} s, {messages:,} delayed messages waiting"
        f" | {number(median(waited, lambda run: run.waiting_cpu_s), 2)} | - | - |",
        f"| the difference, as a share of one core"
        f" | {number(None if share is None else share * 100, 2)} %"
        f" | {goal} | {met} |",
        f"| broker RSS, idle → waiting (MiB) | {number(rss_idle, 0)} → {number(rss_waiting, 0)}"
        " | - | - |",
        f"| broker RSS per waiting message (B) | {number(per_message, 0)} | - | - |",
    ]


def section(
    variants: Sequence[RetryVariant],
    outcomes: dict[str, RetryOutcome],
    messages: int,
    rabbitmq_absent: str,
) -> list[str]:
    """The "Retries with back-off" section of the document."""
    runs = max((len(o.runs) + len(o.failures) for o in outcomes.values()), default=0)
    names = {"sqlite": "SQLite", "memory": "`--storage memory`"}
    storage = {names.get(run.storage, run.storage) for o in outcomes.values() for run in o.runs}
    storage.discard("")
    lines = [
        "## Retries with back-off",
        "",
        f"Four consumers (client-individual acks, prefetch 1,000) take {messages:,}"
        " persistent 128-byte messages from one durable queue"
        f" (buzon on {', '.join(sorted(storage)) or 'SQLite'}) while one producer sends them"
        " (a receipt every 1,000, 4 outstanding). Each message is NACKed on its first two"
        " deliveries and acked on its third: with back-off, the first NACK says"
        " `requeue-delay:50` and the second `requeue-delay:100`; requeued at once, both are"
        " plain NACKs. Every message must arrive exactly three times, marked"
        " `redelivered:true` on the second and third, never before its back-off has passed;"
        " a run that sees anything else fails instead of giving a number, and on buzon the"
        " queue must be empty at the end. Broker CPU runs from the first send to the"
        " receipts of a frame each consumer sends after its last ACK; it is counted per"
        f" 100k messages (300k deliveries). Medians of {runs} run{'s' * (runs != 1)}.",
        "",
    ]
    if rabbitmq_absent:
        lines += [f"RabbitMQ was not run: {rabbitmq_absent}.", ""]
    else:
        lines += [
            "RabbitMQ has no broker-side back-off (a delayed redelivery needs a plugin or a"
            " dead-letter queue with a TTL per delay): it runs with plain NACKs, requeued at"
            " once, as buzon does in the middle column.",
            "",
        ]
    lines += table(variants, outcomes)
    with_backoff = next((v for v in variants if v.broker == "buzon" and v.backoff), None)
    outcome = outcomes.get(with_backoff.label) if with_backoff is not None else None
    waiting = waiting_table(outcome) if outcome is not None else []
    if waiting:
        lines += ["", *waiting]
    lines += ["", "Each run, for each variant:", "", "```"]
    lines += [
        f"python benchmarks/retry.py --broker {variant.broker}"
        f" {shlex.join([*retry_args(messages), *variant.options])} --base-dir DIR --json RUNS"
        for variant in variants
    ]
    return [*lines, "```"]
