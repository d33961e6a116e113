"""A real Celery 5 app on the broker under test: a worker subprocess (``-P solo``, task
events on) runs a few hundred tasks, a retry with a countdown, a chain, a group and a chord
with a SQL result backend (SQLite through SQLAlchemy); ``celery inspect ping`` reaches it
through the pidbox exchanges, ``celery events --dump`` sees its events, and it shuts down
cleanly on SIGTERM.

Each test process gets its own queue and worker name, so test processes sharing a broker
never run each other's tasks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import chain, chord, group

from tests.interop.amqp import celery_app
from tests.interop.amqp.conftest import AmqpBroker

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.interop.amqp.celery_app"
START_S = 60.0
WAIT_S = 30.0
pytestmark = pytest.mark.timeout(120)


@dataclass
class Worker:
    app: Any
    name: str
    env: dict[str, str]
    log: Path

    def celery(self, *args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
        """``celery -A <app> ARGS`` as a subprocess, with the worker's configuration."""
        return subprocess.run(
            [sys.executable, "-m", "celery", "-A", APP, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_S
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the worker did not start (exit {process.poll()}):\n{tail}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def worker(amqp_broker: AmqpBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    work = tmp_path_factory.mktemp("celery")
    backend = f"db+sqlite:///{work / 'results.sqlite'}"
    queue, name = f"acceptance-{uuid.uuid4().hex[:12]}", f"w{uuid.uuid4().hex[:8]}"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": path,
        celery_app.BROKER: amqp_broker.url,
        celery_app.BACKEND: backend,
        celery_app.QUEUE: queue,
    }
    app = celery_app.make_app(amqp_broker.url, backend, queue)
    app.backend.get_task_meta("none")  # creates the result tables before the worker starts
    log = work / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", APP, "worker", "-P", "solo", "-E"]
    command += ["-n", f"{name}@%h", "--loglevel", "INFO"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_until_ready(process, log)
        yield Worker(app, name, env, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT_S) == 0, log.read_text(errors="replace")[-3000:]
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        app.close()


def test_a_few_hundred_tasks(worker: Worker) -> None:
    add = worker.app.tasks["acceptance.add"]
    results = [add.delay(n, n) for n in range(200)]
    assert [result.get(timeout=WAIT_S, interval=0.05) for result in results] == [
        2 * n for n in range(200)
    ]


def test_a_retry_with_a_countdown(worker: Worker) -> None:
    started = time.monotonic()
    result = worker.app.tasks["acceptance.flaky"].delay(1)
    assert result.get(timeout=WAIT_S, interval=0.05) == 1
    assert time.monotonic() - started >= 1.0


def test_chain_group_and_chord(worker: Worker) -> None:
    tasks = worker.app.tasks
    add, mul, xsum = tasks["acceptance.add"], tasks["acceptance.mul"], tasks["acceptance.xsum"]
    assert chain(add.s(2, 2), mul.s(4), add.s(1))().get(timeout=WAIT_S, interval=0.05) == 17
    grouped = group(add.s(n, n) for n in range(10))()
    assert grouped.get(timeout=WAIT_S, interval=0.05) == [2 * n for n in range(10)]
    summed = chord((add.s(n, n) for n in range(10)), xsum.s())()
    assert summed.get(timeout=WAIT_S, interval=0.05) == 90


def test_inspect_ping_reaches_the_worker(worker: Worker) -> None:
    done = worker.celery(
        "inspect",
        "ping",
        "--destination",
        f"{worker.name}@{socket.gethostname()}",
        "--timeout",
        "5",
    )
    assert done.returncode == 0, done.stderr
    assert "pong" in done.stdout
    assert worker.name in done.stdout


def test_events_dump_sees_the_worker_and_its_tasks(worker: Worker) -> None:
    events = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", APP, "events", "--dump"],
        cwd=ROOT,
        env=worker.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert events.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lines.extend, args=(events.stdout,), daemon=True)
    reader.start()
    add = worker.app.tasks["acceptance.add"]
    try:
        # the dumper prints no ready line: tasks are sent until one of them is seen
        deadline, seen = time.monotonic() + WAIT_S, None
        while seen is None and time.monotonic() < deadline:
            result = add.delay(20, 22)
            assert result.get(timeout=WAIT_S, interval=0.05) == 42
            for _ in range(20):
                if any(result.id in line and "task succeeded" in line for line in lines):
                    seen = result.id
                    break
                time.sleep(0.05)
    finally:
        events.terminate()
        try:
            events.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            events.kill()
            events.wait()
        reader.join(WAIT_S)
        events.stdout.close()
    output = "".join(lines)
    assert seen is not None, output[-3000:]
    assert f"{worker.name}@" in output
