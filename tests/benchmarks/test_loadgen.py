"""The load generator behind docs/performance.md: each scenario runs, checks every delivery
and reports what the comparison table reads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

LOADGEN = Path(__file__).parents[2] / "benchmarks" / "loadgen.py"

SCENARIOS = {
    "queue": ["--messages", "3000", "--receipt-every", "100"],
    "fanout": ["--messages", "500", "--subscribers", "3", "--receipt-every", "100"],
    "confirm": ["--messages", "300", "--window", "8", "--persistent", "--storage", "sqlite"],
    "latency": ["--messages", "300", "--rate", "2000", "--warmup", "50"],
    "idle": ["--connections", "40", "--messages", "1000", "--receipt-every", "100"],
    "depth": ["--messages", "2000", "--receipt-every", "100"],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_reports_a_checked_run(scenario: str, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    command = [sys.executable, str(LOADGEN), scenario, "--runs", "1", "--json", str(out)]
    done = subprocess.run(
        command + SCENARIOS[scenario], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "every message checked" in done.stdout
    (run,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert run["scenario"] == scenario
    assert run["rate"] > 0
    assert run["broker_cpu_s"] >= 0
    assert run["rss_peak_kib"] >= run["rss_start_kib"] > 0
    if scenario == "idle":
        assert run["extra"]["connections"] == 40
        assert math.isfinite(run["extra"]["bytes_per_connection"])
    if scenario == "depth":
        assert run["extra"]["queued"] == 2000
        assert math.isfinite(run["extra"]["bytes_per_message"])
        assert run["extra"]["fill_rate"] > 0
