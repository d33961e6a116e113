"""The backlog scenario's part of the comparison document: the figures of ``backlog.py``'s
runs beside each other, judged against the issue's goals, and the plot of the brokers'
memory over time, drawn here as SVG (no plotting library needed).

As in ``report.py``, nothing here measures: every figure is a median of the runs the
runner collected in the same invocation, and the plot is the first run of each broker.
"""

from __future__ import annotations

import math
import shlex
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from backlog import BUZON, RABBITMQ, BacklogResult, Phase
from cases import BACKLOG_MESSAGES
from goals import NO_RABBITMQ, Judge, ratio, verdict

MEMORY_GOAL_MIB = 300
RATE_GOAL = 50_000
STOP_GOAL_S, RESTART_GOAL_S = 2.0, 5.0
PROBE_P99_GOAL_MS = 5.0
PHASE_TITLES = {"fill": "the fill", "drain": "the drain"}
COLOURS = {BUZON: "#1f6fb4", RABBITMQ: "#e4731b"}
# SVG geometry (px): the plot area, and one phase strip per broker under it
WIDTH, LEFT, RIGHT, TOP, PLOT_HEIGHT = 900, 70, 24, 44, 290
STRIP_TOP, STRIP_HEIGHT, STRIP_GAP = TOP + PLOT_HEIGHT + 48, 16, 6

Figure = Callable[[BacklogResult], float | None]


@dataclass
class BacklogOutcome:
    """The backlog runs against one broker, and why any run failed."""

    runs: list[BacklogResult]
    failures: list[str]


@dataclass(frozen=True)
class BacklogRow:
    """One line of the table: one figure, or several shown together (p50 / p99 / max) of
    which ``figures[judged]`` is the one the goal and the ratio are about."""

    measure: str
    figures: tuple[Figure, ...]
    digits: int
    goal: str
    judge: Judge
    lower_is_better: bool = False
    judged: int = 0


def median(outcome: BacklogOutcome | None, figure: Figure) -> float | None:
    """The median over the runs that have the figure (a probe that sent nothing has none)."""
    if outcome is None:
        return None
    values = [v for v in map(figure, outcome.runs) if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def mib(kib: Callable[[BacklogResult], int]) -> Figure:
    return lambda run: kib(run) / 1024


def probe(phase: str, rate: float, measure: str) -> Figure:
    def figure(run: BacklogResult) -> float | None:
        latency = run.latency(phase, rate)
        return None if latency is None or not latency.sent else getattr(latency, measure)

    return figure


def at_most(limit: float) -> Judge:
    return lambda ours, _: ours <= limit


def at_least_and_theirs(floor: float) -> Judge:
    """At least ``floor`` and at least RabbitMQ's figure."""

    def judge(ours: float, theirs: float | None) -> bool | str:
        if ours < floor:
            return False
        return NO_RABBITMQ if theirs is None else ours >= theirs

    return judge


def probe_title(rate: float) -> str:
    every = f"one every {1000 / rate:g} ms" if rate < 100 else f"{rate:,.0f} msgs/s"
    return f"probe ({every})"


def rows(rates: Sequence[float]) -> list[BacklogRow]:
    memory = f"≤ {MEMORY_GOAL_MIB} MiB"
    rows = [
        BacklogRow(
            "fill (msgs/s)",
            (lambda run: run.fill_rate,),
            0,
            f"≥ {RATE_GOAL:,} and ≥ RabbitMQ",
            at_least_and_theirs(RATE_GOAL),
        ),
        BacklogRow(
            "drain (msgs/s)",
            (lambda run: run.drain_rate,),
            0,
            f"≥ {RATE_GOAL:,} and ≥ RabbitMQ",
            at_least_and_theirs(RATE_GOAL),
        ),
        BacklogRow(
            "peak RSS during the fill (MiB)",
            (mib(lambda run: run.fill_peak_kib),),
            0,
            memory,
            at_most(MEMORY_GOAL_MIB),
            lower_is_better=True,
        ),
        BacklogRow(
            "RSS with the queue full (MiB)",
            (mib(lambda run: run.filled_rss_kib),),
            0,
            "-",
            lambda *_: "no goal",
            lower_is_better=True,
        ),
        BacklogRow(
            "clean stop: SIGTERM to exit (s)",
            (lambda run: run.stop_s,),
            2,
            f"≤ {STOP_GOAL_S:g} s",
            at_most(STOP_GOAL_S),
            lower_is_better=True,
        ),
        BacklogRow(
            "restart: start to a STOMP CONNECT answered (s)",
            (lambda run: run.restart_s,),
            2,
            f"≤ {RESTART_GOAL_S:g} s",
            at_most(RESTART_GOAL_S),
            lower_is_better=True,
        ),
        BacklogRow(
            "RSS right after the restart (MiB)",
            (mib(lambda run: run.restarted_rss_kib),),
            0,
            memory,
            at_most(MEMORY_GOAL_MIB),
            lower_is_better=True,
        ),
        BacklogRow(
            "peak RSS during the drain (MiB)",
            (mib(lambda run: run.drain_peak_kib),),
            0,
            memory,
            at_most(MEMORY_GOAL_MIB),
            lower_is_better=True,
        ),
    ]
    for phase in ("fill", "drain"):
        rows += [
            BacklogRow(
                f"{probe_title(rate)} during {PHASE_TITLES[phase]}: p50 / p99 / max (ms)",
                tuple(probe(phase, rate, m) for m in ("p50_ms", "p99_ms", "max_ms")),
                2,
                f"p99 ≤ {PROBE_P99_GOAL_MS:g} ms",
                at_most(PROBE_P99_GOAL_MS),
                lower_is_better=True,
                judged=1,
            )
            for rate in rates
        ]
    return rows


def cell(outcome: BacklogOutcome | None, row: BacklogRow) -> str:
    values = [median(outcome, figure) for figure in row.figures]
    text = " / ".join("-" if v is None else f"{v:,.{row.digits}f}" for v in values)
    if outcome is not None and outcome.failures:
        failed, total = len(outcome.failures), len(outcome.failures) + len(outcome.runs)
        text += f" ({failed} of {total} runs failed)"
    return text


def table(outcomes: dict[str, BacklogOutcome]) -> list[str]:
    runs = [run for outcome in outcomes.values() for run in outcome.runs]
    rates = sorted({latency.rate for run in runs for latency in run.latencies})
    lines = [
        "| measure | buzon | RabbitMQ | buzon / RabbitMQ | goal | met? |",
        "|---|--:|--:|--:|---|---|",
    ]
    ours_outcome, theirs_outcome = outcomes.get(BUZON), outcomes.get(RABBITMQ)
    for row in rows(rates):
        ours = median(ours_outcome, row.figures[row.judged])
        theirs = median(theirs_outcome, row.figures[row.judged])
        lines.append(
            f"| {row.measure} | {cell(ours_outcome, row)} | {cell(theirs_outcome, row)}"
            f" | {ratio(row, ours, theirs)} | {row.goal} | {verdict(row, ours, theirs)} |"
        )
    return lines


def section(
    outcomes: dict[str, BacklogOutcome],
    messages: int,
    command: str,
    backlog_args: list[str],
    image: str,
    rabbitmq_absent: str,
) -> list[str]:
    """The "Backlogs larger than memory" section of the document."""
    runs = max((len(o.runs) + len(o.failures) for o in outcomes.values()), default=0)
    versions = {run.broker: run.version for o in outcomes.values() for run in o.runs}
    lines = [
        "## Backlogs larger than memory",
        "",
        f"With no consumer attached, one producer publishes {messages:,} persistent"
        " 128-byte messages to one durable queue (pipelined: a receipt every 1,000 messages,"
        " 4 receipts outstanding). The broker is then stopped with SIGTERM and started again"
        " on the same data, and 4 consumers (client-individual acks, prefetch 1,000) drain"
        " the whole backlog from the restarted broker; every delivery is checked. Meanwhile a"
        " probe, a process of its own, sends non-persistent messages through queues of their"
        " own and times each from send to delivery, during the fill and during the drain."
        f" buzon {versions.get(BUZON, '')} runs `buzon serve --storage sqlite`, its defaults"
        " otherwise; RabbitMQ"
        f" {versions.get(RABBITMQ, '')} keeps a classic durable queue with persistent"
        f" messages, reached through its STOMP plugin. Medians of {runs} run"
        f"{'' if runs == 1 else 's'} per broker.",
        "",
    ]
    if rabbitmq_absent:
        lines += [f"RabbitMQ was not run: {rabbitmq_absent}.", ""]
    if messages < BACKLOG_MESSAGES:
        lines += [
            f"The goals are the issue's, set for {BACKLOG_MESSAGES:,} messages waiting; this"
            f" run had {messages:,}, so its memory, stop and restart figures do not yet test"
            " them.",
            "",
        ]
    lines += [
        *table(outcomes),
        "",
        f"![Broker resident memory over time, buzon and RabbitMQ]({image})",
        "",
        "Broker resident memory (VmRSS), sampled every 0.5 s through the first run against"
        " each broker, from the start of the fill; the bands under the plot mark each"
        " broker's fill, restart (stop, then start until a STOMP CONNECT is answered) and"
        " drain.",
        "",
        f"These figures: `{command}`, which ran, once per run and broker:",
        "",
        "```",
        *(
            f"python benchmarks/backlog.py --broker {broker} {shlex.join(backlog_args)}"
            " --base-dir DIR --json RUNS"
            for broker in ("buzon", "rabbitmq")
        ),
        "```",
    ]
    return lines


def nice_step(span: float, ticks: int = 6) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    raw = max(span, 1e-9) / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def rss_svg(runs: Sequence[BacklogResult], messages: int) -> str:
    """Each run's RSS over time as one line, its phases as a strip under the plot."""
    end = max(
        [1.0, *(p.end for run in runs for p in run.phases), *(t for r in runs for t, _, _ in r.rss)]
    )
    top = max([1.0, *(kib / 1024 for run in runs for _, kib, _ in run.rss)])
    x_step, y_step = nice_step(end), nice_step(top, 5)
    x_max, y_max = math.ceil(end / x_step) * x_step, math.ceil(top / y_step) * y_step
    plot_width = WIDTH - LEFT - RIGHT
    height = STRIP_TOP + len(runs) * (STRIP_HEIGHT + STRIP_GAP) + 20

    def x(seconds: float) -> float:
        return LEFT + seconds / x_max * plot_width

    def y(mebibytes: float) -> float:
        return TOP + PLOT_HEIGHT - mebibytes / y_max * PLOT_HEIGHT

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14">Broker resident memory (MiB) with'
        f" {messages:,} persistent 128-byte messages filled, the broker restarted, then"
        " drained</text>",
    ]
    for i in range(round(y_max / y_step) + 1):
        value = i * y_step
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"'
            ' stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f}</text>'
        )
    for i in range(round(x_max / x_step) + 1):
        value = i * x_step
        out.append(
            f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{TOP + PLOT_HEIGHT}"'
            f' y2="{TOP + PLOT_HEIGHT + 4}" stroke="#333"/>'
            f'<text x="{x(value):.1f}" y="{TOP + PLOT_HEIGHT + 18}" text-anchor="middle">'
            f"{value:,.{0 if x_step >= 1 else 1}f}</text>"
        )
    out += [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{PLOT_HEIGHT}" fill="none"'
        ' stroke="#333"/>',
        f'<text x="{LEFT + plot_width / 2}" y="{TOP + PLOT_HEIGHT + 34}"'
        ' text-anchor="middle">seconds from the start of the fill</text>',
    ]
    for index, run in enumerate(runs):
        colour = COLOURS.get(run.broker, "#555")
        for process in sorted({n for _, _, n in run.rss}):  # a line per broker process
            points = " ".join(
                f"{x(t):.1f},{y(kib / 1024):.1f}" for t, kib, n in run.rss if n == process
            )
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}"'
                f' stroke-width="1.8"><title>{escape(run.broker)}</title></polyline>'
            )
        for phase in run.phases:
            if phase.name != "restart":  # where the fill ends and the drain starts
                edge = phase.end if phase.name == "fill" else phase.start
                out.append(
                    f'<line x1="{x(edge):.1f}" x2="{x(edge):.1f}" y1="{TOP}"'
                    f' y2="{TOP + PLOT_HEIGHT}" stroke="{colour}" stroke-dasharray="4 3"'
                    ' stroke-opacity="0.6"/>'
                )
        legend_y = TOP - 10
        legend_x = WIDTH - RIGHT - 190 + index * 100
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{legend_y - 4}"'
            f' y2="{legend_y - 4}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{legend_x + 24}" y="{legend_y}">{escape(run.broker)}</text>'
        )
        out += strip(run, STRIP_TOP + index * (STRIP_HEIGHT + STRIP_GAP), colour, x)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def strip(run: BacklogResult, top: float, colour: str, x: Callable[[float], float]) -> list[str]:
    """One broker's phases as coloured bands, named where they are wide enough."""
    out = [
        f'<text x="{LEFT - 6}" y="{top + STRIP_HEIGHT - 4}" text-anchor="end">'
        f"{escape(run.broker)}</text>"
    ]
    styles = {"fill": (colour, 0.35), "restart": ("#888", 0.6), "drain": (colour, 0.75)}
    for phase in run.phases:
        shade, opacity = styles.get(phase.name, ("#888", 0.3))
        left, width = x(phase.start), max(1.0, x(phase.end) - x(phase.start))
        out.append(
            f'<rect x="{left:.1f}" y="{top}" width="{width:.1f}" height="{STRIP_HEIGHT}"'
            f' fill="{shade}" fill-opacity="{opacity}"><title>{phase_title(phase)}</title></rect>'
        )
        if width >= 7 * len(phase.name):
            out.append(
                f'<text x="{left + width / 2:.1f}" y="{top + STRIP_HEIGHT - 4}"'
                f' text-anchor="middle" font-size="11">{phase.name}</text>'
            )
    return out


def phase_title(phase: Phase) -> str:
    return f"{phase.name}: {phase.start:,.1f} s to {phase.end:,.1f} s"
