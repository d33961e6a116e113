"""The backlog scenario behind docs/performance.md's "Backlogs larger than memory": it fills,
restarts and drains a real broker, and its table and plot are made of its runs' figures."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The benchmark modules (scripts, not a package: imported from their directory)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import backlog
    import backlog_report
    import cases
    import compare

    return {"backlog": backlog, "report": backlog_report, "cases": cases, "compare": compare}


def result(bench: dict[str, ModuleType], broker: str, **figures: float) -> object:
    """A run with the given figures (rates in msgs/s, memory in KiB, times in s)."""
    backlog = bench["backlog"]
    latency, phase = backlog.Latency, backlog.Phase
    fill_p99 = figures.pop("fill_p99", 1.0)
    values = {
        "fill_rate": 1000.0,
        "drain_rate": 2000.0,
        "fill_peak_kib": 100 * 1024,
        "drain_peak_kib": 200 * 1024,
        "filled_rss_kib": 90 * 1024,
        "stop_s": 1.0,
        "restart_s": 3.0,
        "restarted_rss_kib": 150 * 1024,
        **figures,
    }
    return backlog.BacklogResult(
        broker=broker,
        version="9.9",
        erlang="",
        messages=5000,
        latencies=[
            latency("fill", 20.0, 100, 0.5, fill_p99, 9.0),
            latency("drain", 20.0, 0, math.nan, math.nan, math.nan),  # sent nothing
        ],
        phases=[phase("fill", 0.0, 10.0), phase("restart", 11.0, 14.0), phase("drain", 14.0, 20.0)],
        rss=[
            (0.0, 50 * 1024, 0),
            (10.0, 400 * 1024, 0),
            (14.0, 150 * 1024, 1),
            (20.0, 60 * 1024, 1),
        ],
        **values,
    )


def row(text: str, measure: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {measure} |")]
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_backlog_fills_restarts_and_drains_a_real_buzon(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "runs.jsonl"
    data.mkdir()
    command = [sys.executable, str(BENCHMARKS / "backlog.py"), "--broker", "buzon"]
    command += ["--messages", "2000", "--receipt-every", "100", "--sample-every", "0.05"]
    command += ["--timeout", "60", "--base-dir", str(data), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert "every message checked" in done.stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    run = bench["backlog"].BacklogResult.from_json(record)
    assert (run.broker, run.messages) == ("buzon", 2000)
    assert run.fill_rate > 0
    assert run.drain_rate > 0
    assert 0 < run.stop_s < 30
    assert 0 < run.restart_s < 60
    assert min(run.fill_peak_kib, run.drain_peak_kib, run.restarted_rss_kib) > 0
    assert [phase.name for phase in run.phases] == ["fill", "restart", "drain"]
    bounds = [edge for phase in run.phases for edge in (phase.start, phase.end)]
    assert bounds == sorted(bounds)
    assert bounds[0] == 0.0
    # the RSS series follows the broker across the restart: both processes are sampled
    assert {process for _, _, process in run.rss} == {0, 1}
    fill_probe = run.latency("fill", 1000.0)
    assert fill_probe is not None
    assert fill_probe.sent > 0
    assert math.isfinite(fill_probe.p99_ms)
    assert {(x.phase, x.rate) for x in run.latencies} == {
        (phase, rate) for phase in ("fill", "drain") for rate in (20.0, 1000.0)
    }
    assert list(data.iterdir()) == []  # the broker's data directory is gone

    report = bench["report"]
    outcome = report.BacklogOutcome([run], [])
    lines = report.section({"buzon": outcome}, 2000, "CMD", ["--messages", "2000"], "p.svg", "")
    text = "\n".join(lines)
    assert row(text, "fill (msgs/s)")[0] == f"{run.fill_rate:,.0f}"
    assert row(text, "restart: start to a STOMP CONNECT answered (s)")[0] == f"{run.restart_s:.2f}"
    svg = ElementTree.fromstring(report.rss_svg([run], 2000))  # noqa: S314 (ours)
    assert len(svg.findall(f"{SVG}polyline")) == 2  # one line per broker process


def test_table_shows_medians_judges_goals_and_marks_missing_figures(
    bench: dict[str, ModuleType],
) -> None:
    report, mib = bench["report"], 1024
    ours = [
        result(bench, "buzon", fill_rate=rate, fill_p99=p99)
        for rate, p99 in ((60_000.0, 4.0), (40_000.0, 9.0), (55_000.0, 3.0))
    ]
    theirs = [result(bench, "RabbitMQ", fill_rate=50_000.0, restarted_rss_kib=400 * mib)]
    outcomes = {
        "buzon": report.BacklogOutcome(ours, []),
        "RabbitMQ": report.BacklogOutcome(theirs, ["run 2: exit code 1: boom"]),
    }
    text = "\n".join(report.section(outcomes, 5000, "CMD", ["--messages", "5000"], "p.svg", ""))
    assert "set for 10,000,000 messages waiting; this run had 5,000" in text
    assert row(text, "fill (msgs/s)") == [
        "55,000",
        "50,000 (1 of 2 runs failed)",
        "1.10x",
        "≥ 50,000 and ≥ RabbitMQ",
        "yes",
    ]
    assert row(text, "drain (msgs/s)")[-1] == "**no**"  # 2,000 < 50,000
    restarted = row(text, "RSS right after the restart (MiB)")
    assert restarted[:3] == ["150", "400 (1 of 2 runs failed)", "0.38x (lower is better: buzon)"]
    assert restarted[-1] == "yes"
    fill_probe = row(text, "probe (one every 50 ms) during the fill: p50 / p99 / max (ms)")
    assert fill_probe[0] == "0.50 / 4.00 / 9.00"  # the median of each figure
    assert fill_probe[-2:] == ["p99 ≤ 5 ms", "yes"]
    drain_probe = row(text, "probe (one every 50 ms) during the drain: p50 / p99 / max (ms)")
    assert drain_probe[0] == "- / - / -"  # the probe sent nothing during the drain
    assert drain_probe[-1] == "n/a (no buzon run)"
    assert "![Broker resident memory over time, buzon and RabbitMQ](p.svg)" in text
    assert "python benchmarks/backlog.py --broker rabbitmq --messages 5000" in text


def test_plot_draws_each_broker_and_marks_its_phases(bench: dict[str, ModuleType]) -> None:
    report = bench["report"]
    runs = [result(bench, "buzon"), result(bench, "RabbitMQ")]
    svg = ElementTree.fromstring(report.rss_svg(runs, 5000))  # noqa: S314 (ours)
    lines = svg.findall(f"{SVG}polyline")
    assert len(lines) == 4  # two brokers, each a process before and one after the restart
    assert {line.get("stroke") for line in lines} == set(report.COLOURS.values())
    first = [tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()]
    bottom = report.TOP + report.PLOT_HEIGHT
    # t = 0 is the left edge; 400 MiB (the peak, under a y axis that ends at 400) the top
    assert first[0][0] == report.LEFT
    assert first[1][1] == report.TOP
    assert report.TOP < first[0][1] < bottom
    labels = [text.text for text in svg.findall(f"{SVG}text")]
    assert [labels.count(name) for name in ("fill", "restart", "drain")] == [2, 2, 2]
    assert "seconds from the start of the fill" in labels


def test_backlog_runs_only_when_asked_for(bench: dict[str, ModuleType]) -> None:
    compare, cases = bench["compare"], bench["cases"]
    default = compare.parse_args([])
    assert "backlog" not in default.only
    assert "queue-defaults" in default.only
    assert default.messages == 10_000_000
    assert compare.parse_args(["--only", "backlog", "--messages", "1000000"]).only == ["backlog"]
    with pytest.raises(SystemExit):
        compare.parse_args(["--only", "backlog", "--messages", "5", "--quick"])
    (defaults,) = [c for c in cases.comparison_cases(quick=True) if c.name == "queue-defaults"]
    assert defaults.storage == "sqlite"  # buzon's defaults: SQLite, messages persistent
    assert "--persistent" not in defaults.loadgen_args()  # RabbitMQ's: transient


def test_compare_writes_the_backlog_section_and_its_plot(tmp_path: Path) -> None:
    output = tmp_path / "performance.md"
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--only", "backlog"]
    command += ["--messages", "2000", "--runs", "1", "--no-rabbitmq", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert "[run 1/1] backlog  buzon: 2,000 messages" in done.stdout
    text = output.read_text()
    assert "## Backlogs larger than memory" in text
    assert "RabbitMQ was not run: `--no-rabbitmq` was given" in text
    assert re.search(r"\| fill \(msgs/s\) \| [\d,]+ \| - \|", text)
    assert "](backlog-rss.svg)" in text
    assert "`python benchmarks/compare.py --only backlog --messages 2000" in text
    assert "## buzon and RabbitMQ" not in text  # no load generator scenario was picked
    plot = ElementTree.parse(tmp_path / "backlog-rss.svg").getroot()  # noqa: S314 (ours)
    assert plot.findall(f"{SVG}polyline")
