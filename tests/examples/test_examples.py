"""Each example in ``examples/`` run as a newcomer would, in its own process, against a broker."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from buzon.testing import RunningBrokerSync, broker_sync

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 30


@pytest.fixture(scope="module")
def running() -> Iterator[RunningBrokerSync]:
    with broker_sync() as broker:
        yield broker


def example_env(broker: RunningBrokerSync) -> dict[str, str]:
    """The settings each example documents: STOMP URL, user and password."""
    return {
        **os.environ,
        "BUZON_STOMP_URL": f"stomp://127.0.0.1:{broker.server.stomp_port}",
        "BUZON_USER": broker.admin_user,
        "BUZON_PASSWORD": broker.admin_password,
    }


def start(broker: RunningBrokerSync, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=example_env(broker),
    )


def run(broker: RunningBrokerSync, script: str, *args: str) -> str:
    """Run an example to its end; it must succeed quietly on stderr. Return its stdout."""
    process = start(broker, script, *args)
    out, err = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, err) == (0, ""), out
    return out


def test_work_queue_does_every_task_once_and_retries_the_failed_one(
    running: RunningBrokerSync,
) -> None:
    args = ("--queue", "ex-tasks", "--workers", "3", "--tasks", "9", "--flaky", "task-4")
    out = run(running, "work_queue.py", *args)

    done = re.findall(r"^(worker-\d) did (task-\d+)", out, re.MULTILINE)
    assert Counter(task for _, task in done) == Counter(f"task-{n}" for n in range(1, 10))
    assert len({worker for worker, _ in done}) >= 2  # the tasks were shared
    assert len(re.findall(r"^worker-\d failed task-4: NACK", out, re.MULTILINE)) == 1
    assert re.search(r"^worker-\d did task-4 \(redelivered\)$", out, re.MULTILINE)
    assert out.endswith(
        "all 9 tasks done exactly once by 3 workers; task-4 was retried after a NACK\n"
    )
    tasks = running.management.get_queue("ex-tasks")
    assert (tasks.depth, tasks.in_flight) == (0, 0)


class Participant:
    """One ``chat.py`` process, its output lines collected by a thread."""

    def __init__(self, broker: RunningBrokerSync, name: str) -> None:
        self.name = name
        self.process = start(broker, "chat.py", name, "--room", "ex-chat")
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next_line(self) -> str:
        return self.lines.get(timeout=TIMEOUT)

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def leave(self) -> int:
        _, err = self.process.communicate(timeout=TIMEOUT)
        self._reader.join()
        assert err == ""
        return self.process.returncode


def test_chat_every_participant_sees_every_line(running: RunningBrokerSync) -> None:
    people = [Participant(running, name) for name in ("ana", "ben", "cy")]
    try:
        for person in people:
            assert (
                person.next_line()
                == f"{person.name} joined /topic/ex-chat; type lines, Ctrl-D leaves"
            )
        for person in people:
            person.say(f"hello from {person.name}")
        expected = {f"<{p.name}> hello from {p.name}" for p in people}
        for person in people:
            assert {person.next_line() for _ in people} == expected
    finally:
        codes = [person.leave() for person in people]
    assert codes == [0, 0, 0]


def test_request_reply_matches_every_reply_to_its_request(running: RunningBrokerSync) -> None:
    service = ("--service", "ex-squares")
    responder = start(running, "request_reply.py", "--role", "responder", "--count", "6", *service)
    out = run(running, "request_reply.py", "--role", "requester", "--requests", "6", *service)
    replies = re.findall(
        r"^requester: (\d+) squared is (\d+) \(correlation-id \w{8}\) ok$", out, re.MULTILINE
    )
    assert sorted((int(n), int(square)) for n, square in replies) == [
        (n, n * n) for n in range(1, 7)
    ]
    assert out.endswith("requester: 6 of 6 replies matched their requests\n")
    served, err = responder.communicate(timeout=TIMEOUT)
    assert (responder.returncode, err) == (0, "")
    assert served.count("responder: ") == 7  # "serving ..." and one line per request


def test_request_reply_runs_both_sides_in_one_process(running: RunningBrokerSync) -> None:
    out = run(running, "request_reply.py", "--requests", "3", "--service", "ex-squares-2")
    assert out.endswith("requester: 3 of 3 replies matched their requests\n")
    assert running.management.get_queue("ex-squares-2").depth == 0
