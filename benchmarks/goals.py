"""The goals the issue set for buzon against RabbitMQ, as rows of the comparison table:
what each row measures, and how its goal is judged from the medians.

A judge returns whether the goal is met, or (a string) why that cannot be told from this
invocation's runs: RabbitMQ was not run, or a scenario the goal refers to was left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cases import MIB, Case, Outcome
from stomp_load import Result

BUZON, RABBITMQ = "buzon", "RabbitMQ"
Metric = Callable[[Result], float]
# (buzon's median, RabbitMQ's median or None) -> goal met, or why it cannot be told
Judge = Callable[[float, float | None], bool | str]
NO_RABBITMQ = "no RabbitMQ run"
IDLE_FULL_SPEED = 0.9  # "full speed": at least this fraction of the plain queue rate
IDLE_BYTES_LIMIT = 8000  # "under 8 KB" per connection
CONFIRM_PIPELINED_GOAL = 20_000


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure of one case, its goal and how that is judged."""

    case: str
    measure: str
    metric: Metric
    digits: int
    goal: str
    judge: Judge
    lower_is_better: bool = False


def median(outcome: Outcome | None, metric: Metric) -> float | None:
    if outcome is None or not outcome.runs:
        return None
    return statistics.median(metric(run) for run in outcome.runs)


def rate(run: Result) -> float:
    return run.rate


def at_least_times(factor: float) -> Judge:
    return lambda ours, theirs: NO_RABBITMQ if theirs is None else ours >= factor * theirs


def at_most_fraction(fraction: float) -> Judge:
    return lambda ours, theirs: NO_RABBITMQ if theirs is None else ours <= fraction * theirs


def no_goal(_ours: float, _theirs: float | None) -> str:
    return "no goal of its own"


def extra(name: str) -> Metric:
    return lambda run: run.extra[name]


def cpu_per_100k(run: Result) -> float:
    return run.cpu_per_100k


def amqp_rows() -> list[Row]:
    """The AMQP goals: the raw-socket load generator's end-to-end rate (its publish-only and
    consume-only phases beside it), fan-out, pika (rate and broker CPU), Celery."""
    return [
        Row("amqp", "end-to-end msgs/s", rate, 0, "≥ 1.5x RabbitMQ", at_least_times(1.5)),
        Row("amqp", "publish-only msgs/s", extra("publish_rate"), 0, "-", no_goal),
        Row("amqp", "consume-only msgs/s", extra("consume_rate"), 0, "-", no_goal),
        Row("amqp_fanout", "deliveries/s", rate, 0, "≥ 3x RabbitMQ", at_least_times(3)),
        Row("amqp_pika", "msgs/s", rate, 0, "≥ RabbitMQ", at_least_times(1)),
        Row(
            "amqp_pika",
            "broker CPU-s per 100k",
            cpu_per_100k,
            2,
            "≤ half RabbitMQ's",
            at_most_fraction(0.5),
            lower_is_better=True,
        ),
        Row("celery", "no-op tasks/s", rate, 0, "≥ RabbitMQ", at_least_times(1)),
    ]


def large_message_row(case: Case) -> Row:
    """Memory bounded by the window: what is prefetched by the consumers plus what the
    producer has sent unconfirmed, not the backlog (everything sent)."""
    options = case.options
    in_flight = options["consumers"] * options["prefetch"]
    in_flight += options["window"] * options["receipt-every"]
    window, sent = in_flight * options["size"] / MIB, options["messages"] * options["size"] / MIB
    return Row(
        case.name,
        "broker peak RSS growth (MiB)",
        lambda run: (run.rss_peak_kib - run.rss_start_kib) / 1024,
        0,
        f"≤ the window: {window:,.0f} MiB prefetched or unconfirmed, of {sent:,.0f} MiB sent",
        lambda ours, _: "no more was sent than the window" if sent <= window else ours <= window,
        lower_is_better=True,
    )


def comparison_rows(cases: list[Case], results: dict[tuple[str, str], Outcome]) -> list[Row]:
    """The rows for the cases that ran, in the issue's order."""
    queue = median(results.get(("queue", BUZON)), rate)

    def full_speed(ours: float, _: float | None) -> bool | str:
        return (
            "the queue scenario was not run" if queue is None else ours >= IDLE_FULL_SPEED * queue
        )

    rows = [
        Row("queue", "delivered msgs/s", rate, 0, "≥ 2x RabbitMQ", at_least_times(2)),
        Row("queue-defaults", "delivered msgs/s", rate, 0, "≥ 2x RabbitMQ", at_least_times(2)),
        Row("fanout", "deliveries/s", rate, 0, "≥ 4x RabbitMQ", at_least_times(4)),
        Row(
            "latency",
            "p50 latency (ms)",
            lambda run: run.p50_ms,
            3,
            "≤ RabbitMQ's",
            lambda ours, theirs: NO_RABBITMQ if theirs is None else ours <= theirs,
            lower_is_better=True,
        ),
        Row(
            "latency",
            "p99 latency (ms)",
            lambda run: run.p99_ms,
            3,
            "< 1 ms",
            lambda ours, _: ours < 1.0,
            lower_is_better=True,
        ),
        Row("confirm-1", "confirmed msgs/s", rate, 0, "≥ RabbitMQ", at_least_times(1)),
        Row(
            "confirm-64",
            "confirmed msgs/s",
            rate,
            0,
            f"≥ {CONFIRM_PIPELINED_GOAL:,}",
            lambda ours, _: ours >= CONFIRM_PIPELINED_GOAL,
        ),
        Row("1mib", "delivered msgs/s", rate, 1, "≥ RabbitMQ", at_least_times(1)),
        *(large_message_row(case) for case in cases if case.name == "1mib"),
        Row(
            "idle",
            "broker memory per idle connection (B)",
            lambda run: run.extra["bytes_per_connection"],
            0,
            f"< 8 KB ({IDLE_BYTES_LIMIT:,} B)",
            lambda ours, _: ours < IDLE_BYTES_LIMIT,
            lower_is_better=True,
        ),
        Row(
            "idle",
            "delivered msgs/s while they are connected",
            rate,
            0,
            f"≥ {IDLE_FULL_SPEED:.0%} of buzon's plain queue rate"
            + (f" ({queue:,.0f})" if queue is not None else ""),
            full_speed,
        ),
        *amqp_rows(),
    ]
    names = {case.name for case in cases}
    return [row for row in rows if row.case in names]


class Judged(Protocol):
    """A row with a goal: this table's, or the backlog section's."""

    @property
    def judge(self) -> Judge: ...

    @property
    def lower_is_better(self) -> bool: ...


def verdict(row: Judged, ours: float | None, theirs: float | None) -> str:
    met = "no buzon run" if ours is None else row.judge(ours, theirs)
    return f"n/a ({met})" if isinstance(met, str) else "yes" if met else "**no**"


def ratio(row: Judged, ours: float | None, theirs: float | None) -> str:
    """buzon's median over RabbitMQ's; where lower is better, which one is better."""
    if ours is None or not theirs:
        return "-"
    text = f"{ours / theirs:.2f}x"
    if row.lower_is_better:
        better = BUZON if ours < theirs else RABBITMQ if theirs < ours else "neither"
        text += f" (lower is better: {better})"
    return text
