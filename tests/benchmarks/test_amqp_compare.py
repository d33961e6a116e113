"""The AMQP cases of the comparison runner: each names a load generator that takes its
command line, reaches the broker's AMQP listener, and is judged by the issue's goals."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
AMQP_CASES = ["amqp", "amqp_fanout", "amqp_pika", "celery"]


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))


@pytest.mark.parametrize("quick", [False, True])
def test_every_amqp_case_is_a_command_line_its_load_generator_takes(quick: bool) -> None:
    import cases

    amqp = [case for case in cases.comparison_cases(quick) if case.protocol == "amqp"]
    assert [case.name for case in amqp] == AMQP_CASES
    for case in amqp:
        assert (BENCHMARKS / case.script).is_file()
        tool = importlib.import_module(case.tool)
        where = ["--port", "5672", "--pid", "1", "--login", "guest", "--passcode", "guest"]
        args = tool.parse_args([*case.loadgen_args(), "--json", "runs.jsonl", *where])
        assert (args.scenario, args.runs, args.port) == (case.scenario, 1, 5672)
        for option, value in case.options.items():
            assert getattr(args, option.replace("-", "_")) == value, (case.name, option)


def test_stomp_cases_stay_on_loadgen() -> None:
    import cases

    stomp = [case for case in cases.comparison_cases(False) if case.protocol == "stomp"]
    assert {case.script for case in stomp} == {"loadgen.py"}
    assert "queue" in {case.name for case in stomp}


def test_the_amqp_scenarios_can_be_picked() -> None:
    import compare

    args = compare.parse_args(["--only", "amqp,celery", "--runs", "1"])
    assert args.only == ["amqp", "celery"]


def test_the_amqp_goals_are_judged_from_the_medians() -> None:
    import cases
    import goals
    import stomp_load

    def run(rate: float, cpu_s: float) -> stomp_load.Result:
        return stomp_load.Result("pika", rate, 1.0, 2.0, cpu_s, 1.0, 100_000, 1024, 2048)

    (pika,) = [case for case in cases.comparison_cases(quick=True) if case.name == "amqp_pika"]
    results = {
        ("amqp_pika", goals.BUZON): cases.Outcome([run(300.0, 30.0), run(400.0, 40.0)]),
        ("amqp_pika", goals.RABBITMQ): cases.Outcome([run(280.0, 75.0)]),
    }
    rate_row, cpu_row = goals.comparison_rows([pika], results)
    for row, met, not_met in ((rate_row, 280.0, 400.0), (cpu_row, 70.0, 69.0)):
        ours = goals.median(results[("amqp_pika", goals.BUZON)], row.metric)
        theirs = goals.median(results[("amqp_pika", goals.RABBITMQ)], row.metric)
        assert goals.verdict(row, ours, theirs) == "yes"
        assert goals.verdict(row, ours, met) == "yes"
        assert goals.verdict(row, ours, not_met) == "**no**"
    assert cpu_row.lower_is_better
    assert (rate_row.goal, cpu_row.goal) == ("≥ RabbitMQ", "≤ half RabbitMQ's")


RUNS_AGAINST_RABBITMQ = [
    ["amqp_load.py", "queue", "--messages", "2000", "--persistent"],
    ["amqp_load.py", "fanout", "--messages", "300", "--queues", "3"],
    ["amqp_pika.py", "pika", "--messages", "100"],
    ["celery_load.py", "celery", "--tasks", "100"],
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_each_amqp_load_generator_checks_a_run_against_rabbitmq(tmp_path: Path) -> None:
    import rabbitmq

    if not rabbitmq.installed():
        pytest.skip(f"RabbitMQ is not installed ({rabbitmq.INSTALL})")
    with rabbitmq.private_node(str(tmp_path)) as node:
        where = ["--port", str(node.amqp_port), "--pid", str(node.beam_pid)]
        where += ["--login", "guest", "--passcode", "guest", "--runs", "1"]
        for n, (script, *args) in enumerate(RUNS_AGAINST_RABBITMQ):
            out = tmp_path / f"runs-{n}.jsonl"
            command = [sys.executable, str(BENCHMARKS / script), *args, *where, "--json", str(out)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            assert "every message checked" in done.stdout
            (run,) = [json.loads(line) for line in out.read_text().splitlines()]
            assert run["scenario"] == args[0]
            assert run["rate"] > 0
            assert run["broker_cpu_s"] > 0
