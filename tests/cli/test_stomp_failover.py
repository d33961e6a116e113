"""``--stomp-url`` with several brokers: the messaging commands fail over between them.

The brokers are real ``buzon serve`` processes, each with its own data directory, so a
queue is created on each one it is used on.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buzon.client import ManagementClient
from tests.cli.helpers import ADMIN_PASSWORD, Cli, free_port, one_error_line
from tests.interop.broker_process import BrokerProcess, broker_process


def admin(node: BrokerProcess) -> ManagementClient:
    client = ManagementClient(node.url)
    client.login("admin", ADMIN_PASSWORD)
    return client


def listed(*ports: int) -> str:
    return "stomp://admin@" + ",".join(f"127.0.0.1:{port}" for port in ports)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[BrokerProcess]]:
    """Two independent brokers, each with the queue ``jobs``."""
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(broker_process(env={"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}))
            for _ in range(2)
        ]
        for node in started:
            with admin(node) as client:
                client.create_queue("jobs")
        yield started


def test_consume_goes_on_after_its_broker_is_killed(
    nodes: list[BrokerProcess], tmp_path: Path
) -> None:
    doomed, other = nodes
    cli = Cli(doomed.url, tmp_path / "config")
    command = [sys.executable, "-m", "buzon", "consume", "jobs", "--max", "2"]
    consumer = subprocess.Popen(
        [*command, "--stomp-url", listed(doomed.port, other.port), "--url", doomed.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(BUZON_PASSWORD=ADMIN_PASSWORD),
    )
    try:
        with admin(doomed) as first:
            wait_until(lambda: first.get_queue("jobs").consumers == 1)
            first.publish("/queue/jobs", "one")
            wait_until(
                lambda: first.get_queue("jobs").in_flight + first.get_queue("jobs").depth == 0
            )
        doomed.stop(signal.SIGKILL)
        with admin(other) as second:
            second.publish("/queue/jobs", "two")
        out, err = consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.communicate()
    assert (consumer.returncode, out, err) == (0, "one\ntwo\n", "")


def test_publish_tries_the_next_broker_when_the_first_is_down(
    nodes: list[BrokerProcess], tmp_path: Path
) -> None:
    live = nodes[1]
    cli = Cli(live.url, tmp_path / "config")
    result = cli.run(
        "publish",
        "--queue",
        "jobs",
        "to whoever answers",
        "--stomp-url",
        listed(free_port(), live.port),
        env=cli.env(BUZON_PASSWORD=ADMIN_PASSWORD),
    )
    assert (result.returncode, result.stderr) == (0, "")
    with admin(live) as client:
        assert [message.text for message in client.pull("jobs", max_messages=5)] == [
            "to whoever answers"
        ]


@pytest.mark.parametrize(
    ("stomp_url", "expected"),
    [
        ("stomp://admin@h1:61613,,h2", "an empty entry in the list of brokers"),
        ("stomp://admin@h1,h2:nope", "'h2:nope' has an invalid port"),
        ("stomp://admin@h1,fe80::1", "put an IPv6 address in brackets"),
    ],
)
def test_a_malformed_broker_list_is_one_line(tmp_path: Path, stomp_url: str, expected: str) -> None:
    cli = Cli(f"http://127.0.0.1:{free_port()}", tmp_path / "config")
    for command in (("publish", "--queue", "jobs", "x"), ("consume", "jobs")):
        result = cli.run(
            *command, "--stomp-url", stomp_url, env=cli.env(BUZON_PASSWORD=ADMIN_PASSWORD)
        )
        assert expected in one_error_line(result)
