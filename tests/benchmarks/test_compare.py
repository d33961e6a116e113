"""The comparison runner behind docs/performance.md: it runs, and its document is made of
numbers from its own runs, judged against the goals."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_quick_run_writes_the_tables_and_the_machine(tmp_path: Path) -> None:
    output = tmp_path / "performance.md"
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--quick", "--runs", "1"]
    command += ["--no-rabbitmq", "--only", "queue,latency", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "[run 1/1] queue" in done.stdout
    text = output.read_text()
    assert "## Machine" in text
    assert re.search(r"\| cores \| \d+ \|", text)
    assert re.search(r"\| Python \| 3\.\d+", text)
    assert "RabbitMQ was not run: `--no-rabbitmq` was given" in text
    queue = re.search(rf"\| queue: [^|]+\| delivered msgs/s \| ({NUMBER}) \| - \|", text)
    assert queue is not None
    assert float(queue.group(1).replace(",", "")) > 0
    p99 = re.search(
        rf"\| p99 latency \(ms\) \| ({NUMBER}) \| - \| - \| < 1 ms \| (yes|\*\*no\*\*) \|", text
    )
    assert p99 is not None
    assert "n/a (no RabbitMQ run)" in text
    assert re.search(rf"\| queue: [^|]+\| {NUMBER} \| - \| - \|", text)  # CPU-s per 100k
    assert "python benchmarks/loadgen.py queue --messages" in text
    assert "fanout" not in text  # --only


def test_goals_are_judged_from_the_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import cases
    import goals
    import stomp_load

    def run(rate: float) -> stomp_load.Result:
        return stomp_load.Result("queue", rate, 1.0, 2.0, 1.0, 1.0, 100_000, 1024, 2048)

    (queue,) = [case for case in cases.comparison_cases(quick=True) if case.name == "queue"]
    results = {
        ("queue", goals.BUZON): cases.Outcome([run(rate) for rate in (30.0, 10.0, 20.0)]),
        ("queue", goals.RABBITMQ): cases.Outcome([run(9.0)], ["run 2: exit code 1: boom"]),
    }
    (row,) = goals.comparison_rows([queue], results)
    ours = goals.median(results[("queue", goals.BUZON)], row.metric)
    theirs = goals.median(results[("queue", goals.RABBITMQ)], row.metric)
    assert (ours, theirs) == (20.0, 9.0)
    assert goals.ratio(row, ours, theirs) == "2.22x"
    assert goals.verdict(row, ours, theirs) == "yes"
    assert goals.verdict(row, ours, 11.0) == "**no**"
    assert goals.verdict(row, ours, None) == "n/a (no RabbitMQ run)"


@pytest.mark.slow
def test_private_rabbitmq_node_starts_serves_stomp_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import rabbitmq

    if not rabbitmq.installed():
        pytest.skip(f"RabbitMQ is not installed ({rabbitmq.INSTALL})")
    with rabbitmq.private_node(str(tmp_path)) as node:
        assert rabbitmq.stomp_ready(node.stomp_port)
        assert b"beam.smp" in Path(f"/proc/{node.beam_pid}/cmdline").read_bytes()
        assert node.version != "unknown"
        assert node.erlang != "unknown"
    assert node.beam_pid not in rabbitmq.processes("beam.smp")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", node.stomp_port), 1),
    ):
        pass
