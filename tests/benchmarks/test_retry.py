"""The retry scenario behind docs/performance.md's "Retries with back-off": every message
NACKed twice with back-off then acked, against a real broker, checked message by message;
its table is made of its runs' figures."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from buzon.stomp import Frame, FrameParser

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The benchmark modules (scripts, not a package: imported from their directory)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import cases
    import compare
    import retry
    import retry_report
    import stomp_load

    return {
        "cases": cases,
        "compare": compare,
        "retry": retry,
        "report": retry_report,
        "stomp_load": stomp_load,
    }


def message(seq: int, ack: str, redelivered: bool = False) -> Frame:
    """A MESSAGE frame as a broker sends it."""
    parser = FrameParser()
    flag = "redelivered:true\n" if redelivered else ""
    parser.feed(
        f"MESSAGE\nsubscription:1\nmessage-id:m{seq}\ndestination:/queue/q\nack:{ack}\n"
        f"{flag}seq:{seq}\n\nx\x00".encode()
    )
    frame = parser.next_frame()
    assert isinstance(frame, Frame)
    return frame


def test_retry_runs_against_a_real_buzon(bench: dict[str, ModuleType], tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "runs.jsonl"
    data.mkdir()
    command = [sys.executable, str(BENCHMARKS / "retry.py"), "--messages", "2000"]
    command += ["--receipt-every", "100", "--timeout", "60", "--stall", "20"]
    command += ["--base-dir", str(data), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every message checked" in done.stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    run = bench["retry"].RetryResult.from_json(record)
    assert (run.broker, run.storage, run.messages, run.backoff_ms) == (
        "buzon",
        "sqlite",
        2000,
        [50, 100],
    )
    assert run.deliveries == 3 * 2000  # each NACKed twice, then acked
    assert run.rate > 0
    assert run.broker_cpu_s > 0
    # no redelivery came before its back-off (that fails the run); p50 ≤ p99 ≤ max
    assert 0 <= run.late_p50_ms <= run.late_p99_ms <= run.late_max_ms
    # the wait phase ran: 2,000 delayed messages waited, and the broker's CPU was read
    assert (run.waiting, run.wait_seconds) == (2000, 1.0)
    assert math.isfinite(run.idle_cpu_s)
    assert math.isfinite(run.waiting_cpu_s)
    assert run.waiting_rss_kib > 0
    assert list(data.iterdir()) == []  # the broker's data directory is gone


def test_consumer_nacks_with_back_off_then_acks_and_catches_wrong_deliveries(
    bench: dict[str, ModuleType],
) -> None:
    retry, stomp_load = bench["retry"], bench["stomp_load"]
    stats, tally = stomp_load.Stats.for_messages(2, 6), retry.Tally(2)
    consumer = retry.RetryingClient(stats, tally, [50, 100])
    acks: list[bytes] = []
    consumer.on_message(message(1, "a1"), 1_000_000_000, acks)
    consumer.on_message(message(1, "a2", redelivered=True), 1_060_000_000, acks)  # 60 ms on
    consumer.on_message(message(1, "a3", redelivered=True), 1_160_000_000, acks)  # 100 ms on
    assert acks == [
        b"NACK\nid:a1\nrequeue-delay:50\n\n\x00",
        b"NACK\nid:a2\nrequeue-delay:100\n\n\x00",
        b"ACK\nid:a3\n\n\x00",
    ]
    assert tally.late_ns == [10_000_000, 0]  # 10 ms after its 50 ms; right on its 100 ms
    with pytest.raises(SystemExit, match="1 messages delivered fewer than 3 times"):
        retry.check(stats, tally, 2, 3)  # message 2 never came

    # message 2: its first delivery marked redelivered, its second 10 ms before its back-off
    consumer.on_message(message(2, "b1", redelivered=True), 2_000_000_000, acks)
    consumer.on_message(message(2, "b2", redelivered=True), 2_040_000_000, acks)
    consumer.on_message(message(2, "b3", redelivered=True), 2_200_000_000, acks)
    with pytest.raises(SystemExit) as failed:
        retry.check(stats, tally, 2, 3)
    assert "1 deliveries with a wrong redelivered header" in str(failed.value)
    assert "1 redelivered before their back-off" in str(failed.value)

    # a fourth delivery of message 1 (acked already): a duplicate
    stats, tally = stomp_load.Stats.for_messages(1, 3), retry.Tally(1)
    consumer = retry.RetryingClient(stats, tally, [0, 0])  # plain NACKs: no header
    for ack, again in (("c1", False), ("c2", True), ("c3", True), ("c4", True)):
        consumer.on_message(message(1, ack, redelivered=again), 0, acks)
    assert acks[-4:-2] == [b"NACK\nid:c1\n\n\x00", b"NACK\nid:c2\n\n\x00"]
    with pytest.raises(SystemExit, match="1 more; 0 deliveries"):
        retry.check(stats, tally, 1, 3)


def run(bench: dict[str, ModuleType], broker: str, **figures: object) -> object:
    """A run with the given figures (rates in msgs/s, CPU in s, memory in KiB)."""
    values: dict[str, object] = {
        "broker": broker,
        "version": "9.9",
        "storage": "sqlite" if broker == "buzon" else "",
        "erlang": "" if broker == "buzon" else "25",
        "messages": 100_000,
        "backoff_ms": [0, 0],
        "elapsed_s": 10.0,
        "rate": 10_000.0,
        "deliveries": 300_000,
        "broker_cpu_s": 5.0,
        "loadgen_cpu_s": 4.0,
        "peak_rss_kib": 100 * 1024,
        **figures,
    }
    return bench["retry"].RetryResult(**values)


def row(text: str, measure: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {measure}")]
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_section_shows_medians_per_variant_and_judges_the_waiting_cpu(
    bench: dict[str, ModuleType],
) -> None:
    report, variants = bench["report"], bench["cases"].retry_variants(rabbitmq=True)
    backoff, plain, rabbit = (variant.label for variant in variants)
    waited = {
        "waiting": 100_000,
        "wait_delay_ms": 600_000,
        "wait_seconds": 10.0,
        "idle_rss_kib": 80 * 1024,
    }
    ours = [
        run(
            bench,
            "buzon",
            backoff_ms=[50, 100],
            broker_cpu_s=cpu,
            late_p50_ms=p50,
            late_p99_ms=9.0,
            late_max_ms=20.0,
            idle_cpu_s=0.01,
            waiting_cpu_s=waiting,
            waiting_rss_kib=180 * 1024,
            **waited,
        )
        for cpu, p50, waiting in ((6.0, 2.0, 0.02), (8.0, 4.0, 0.05), (7.0, 3.0, 0.5))
    ]
    outcomes = {
        backoff: report.RetryOutcome(ours, []),
        plain: report.RetryOutcome([run(bench, "buzon", broker_cpu_s=4.0)], []),
        rabbit: report.RetryOutcome(
            [run(bench, "RabbitMQ", broker_cpu_s=18.0)], ["run 2: exit code 1: boom"]
        ),
    }
    text = "\n".join(report.section(variants, outcomes, 100_000, ""))
    assert "## Retries with back-off" in text
    assert "(buzon on SQLite)" in text
    assert row(text, "broker CPU-s per 100k messages") == [
        "7.00",
        "4.00",
        "18.00 (1 of 2 runs failed)",
    ]
    assert row(text, "redelivered later than its back-off") == [
        "3.0 / 9.0 / 20.0",
        "-",
        "- (1 of 2 runs failed)",
    ]
    # idle 0.01 CPU-s over 10 s; waiting 0.02, 0.05, 0.5: the median is 0.04 above idle
    assert row(text, "the difference, as a share of one core") == [
        "0.40 %",
        "≤ 1% of a core above idle",
        "yes",
    ]
    assert (
        row(text, "broker RSS per waiting message (B)")[0] == f"{100 * 1024 * 1024 / 100_000:,.0f}"
    )
    assert "sent with `delay:600000`" in text
    assert "python benchmarks/retry.py --broker rabbitmq --messages 100000" in text

    ours = [run(bench, "buzon", backoff_ms=[50, 100], idle_cpu_s=0.0, waiting_cpu_s=2.0, **waited)]
    outcomes[backoff] = report.RetryOutcome(ours, [])
    text = "\n".join(report.section(variants[:2], outcomes, 100_000, "`--no-rabbitmq` was given"))
    assert row(text, "the difference, as a share of one core")[-1] == "**no**"  # 20 % of a core
    assert "RabbitMQ was not run: `--no-rabbitmq` was given" in text
    assert rabbit not in text


def test_retry_runs_only_when_asked_for(bench: dict[str, ModuleType]) -> None:
    compare = bench["compare"]
    default = compare.parse_args([])
    assert "retry" not in default.only
    assert default.retry_messages == 100_000
    assert compare.parse_args(["--only", "retry"]).only == ["retry"]
    with pytest.raises(SystemExit):
        compare.parse_args(["--only", "retry", "--retry-messages", "5", "--quick"])
    with pytest.raises(SystemExit):
        bench["retry"].parse_args(["--broker", "rabbitmq", "--backoff", "50,100"])


def test_compare_writes_the_retry_section(tmp_path: Path) -> None:
    output = tmp_path / "performance.md"
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--only", "retry"]
    command += ["--retry-messages", "500", "--runs", "1", "--no-rabbitmq", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[run 1/1] retry  buzon: 500 messages, each NACKed 2 times" in done.stdout
    text = output.read_text()
    assert "## Retries with back-off" in text
    assert re.search(r"\| broker CPU-s per 100k messages \| [\d.,]+ \| [\d.,]+ \|", text)
    assert "### A waiting message costs no CPU" in text
    assert "## buzon and RabbitMQ" not in text  # no load generator scenario was picked
    assert "## Failed runs" not in text
