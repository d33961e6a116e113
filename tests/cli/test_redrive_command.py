"""``buzon queue redrive`` against a real broker, and the SDK calls behind it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from buzon.client import ApiError, ManagementClient, QueuePolicy
from buzon.errors import ErrorCode
from tests.cli.helpers import Cli, one_error_line

PASSWORD = "cli-redrive-password"
OWNER = "redrive-owner"

_names = itertools.count(1)


@pytest.fixture(scope="module")
def owner_client(admin_client: ManagementClient) -> Iterator[ManagementClient]:
    admin_client.register(OWNER, PASSWORD)
    with ManagementClient(admin_client.url) as client:
        client.login(OWNER, PASSWORD)
        yield client


@pytest.fixture
def owner(owner_client: ManagementClient, cli_for: Callable[[str], Cli]) -> Cli:
    cli = cli_for(OWNER)
    cli.login(OWNER, PASSWORD)
    return cli


def dead_letters(client: ManagementClient, count: int) -> tuple[str, str]:
    """A queue that dead-letters after one delivery, with ``count`` messages failed into
    its dead-letter queue; returns both names."""
    n = next(_names)
    queue, dlq = f"jobs-{n}", f"jobs-{n}.dlq"
    client.create_queue(queue, policy=QueuePolicy(max_deliveries=1, dead_letter_queue=dlq))
    for i in range(count):
        client.publish(f"/queue/{queue}", f"job {i}")
    failed = 0
    while failed < count:
        taken = client.pull(queue, max_messages=100, wait_ms=1000)
        client.nack(queue, *(message.receipt for message in taken))
        failed += len(taken)
    deadline = time.monotonic() + 10
    while not _exists(client, dlq) or client.get_queue(dlq).depth < count:
        assert time.monotonic() < deadline
        assert client.pull(queue, max_messages=100, wait_ms=50) == []  # retires them
    return queue, dlq


def _exists(client: ManagementClient, queue: str) -> bool:
    try:
        client.get_queue(queue)
    except ApiError as exc:
        if exc.code is ErrorCode.DESTINATION_NOT_FOUND:
            return False
        raise
    return True


def test_redrive_moves_them_back_and_says_so(owner: Cli, owner_client: ManagementClient) -> None:
    queue, dlq = dead_letters(owner_client, 3)

    out = owner.ok("queue", "redrive", dlq)

    assert out == f"moved 3 of 3 messages from {dlq} to their original queues\n"
    back = owner_client.pull(queue, max_messages=10)
    assert [m.text for m in back] == ["job 0", "job 1", "job 2"]
    assert {m.headers["x-redrive-count"] for m in back} == {"1"}
    assert owner_client.get_queue(dlq).depth == 0


def test_redrive_to_a_queue_with_a_limit_and_json(
    owner: Cli, owner_client: ManagementClient
) -> None:
    _, dlq = dead_letters(owner_client, 4)
    retry = f"retry-{next(_names)}"
    owner_client.create_queue(retry)

    out = owner.ok("queue", "redrive", dlq, "--to", retry, "--limit", "3", "--rate", "50", "--json")

    shown = json.loads(out)
    assert (shown["state"], shown["moved"], shown["total"], shown["to"]) == ("done", 3, 3, retry)
    assert shown["rate_per_s"] == 50
    assert owner_client.get_queue(retry).depth == 3
    assert owner_client.get_queue(dlq).depth == 1


def test_a_refused_redrive_is_one_line(owner: Cli, owner_client: ManagementClient) -> None:
    _, dlq = dead_letters(owner_client, 1)

    line = owner.fails("queue", "redrive", dlq, "--to", "no-such-queue")

    assert "no-such-queue" in line
    assert owner_client.get_queue(dlq).depth == 1
    assert "--rate" in owner.fails("queue", "redrive", dlq, "--rate", "0")


def test_a_redrive_that_fails_while_running_exits_non_zero(
    owner: Cli, owner_client: ManagementClient
) -> None:
    _, dlq = dead_letters(owner_client, 20)
    command = [sys.executable, "-m", "buzon", "queue", "redrive", dlq, "--rate", "10"]
    with subprocess.Popen(
        [*command, "--url", owner.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=owner.env(),
    ) as running:
        deadline = time.monotonic() + 10
        while owner_client.get_queue(dlq).depth > 17:  # it has started moving
            assert time.monotonic() < deadline
            time.sleep(0.05)
        owner_client.delete_queue(dlq)
        out, err = running.communicate(timeout=30)

    result = subprocess.CompletedProcess(command, running.returncode, out, err)
    line = one_error_line(result)
    assert f"the redrive of queue {dlq} failed after moving" in line
    assert "deleted" in line


def test_the_sdk_follows_and_cancels_a_redrive(owner_client: ManagementClient) -> None:
    queue, dlq = dead_letters(owner_client, 10)

    started = owner_client.redrive(dlq, rate_per_s=5)
    assert (started.state, started.total, started.queue, started.to) == ("running", 10, dlq, None)
    time.sleep(0.5)
    stopped = owner_client.cancel_redrive(started.id)

    assert stopped.state == "failed"
    assert stopped.cancelled_by == OWNER
    assert stopped.finished_at is not None
    assert 1 <= stopped.moved < 10
    assert owner_client.redrive_status(started.id) == stopped
    assert owner_client.get_queue(queue).depth + owner_client.get_queue(dlq).depth == 10
    with pytest.raises(ApiError) as missing:
        owner_client.redrive_status("no-such-id")
    assert missing.value.code is ErrorCode.NOT_FOUND
