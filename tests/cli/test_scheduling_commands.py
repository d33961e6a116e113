"""``buzon publish --delay/--deliver-at``, retry policies on ``queue create``, and a
queue's scheduled messages (``queue scheduled``, ``deliver-now``, ``cancel-scheduled``),
against a real ``buzon serve``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from buzon.client import ManagementClient, QueuePolicy
from tests.cli.helpers import Cli, one_error_line
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-scheduling-password"
OWNER, OTHER = "sched-owner", "sched-other"
LATE = 2.0
"""Seconds a due message may take to arrive on a test machine (the broker aims at 0.1)."""


@pytest.fixture(scope="module")
def people(admin_client: ManagementClient) -> None:
    for name in (OWNER, OTHER):
        admin_client.register(name, PASSWORD)


@dataclass(frozen=True)
class User:
    """``buzon`` for one logged-in user, told where the broker's STOMP port is."""

    cli: Cli
    stomp_url: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = self.cli.env(BUZON_STOMP_URL=self.stomp_url, BUZON_PASSWORD=PASSWORD)
        return self.cli.run(*args, env=env)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def fails(self, *args: str) -> str:
        return one_error_line(self.run(*args))


@pytest.fixture
def as_user(
    people: None, broker: BrokerProcess, cli_for: Callable[[str], Cli]
) -> Callable[[str], User]:
    def logged_in(name: str) -> User:
        cli = cli_for(name)
        cli.login(name, PASSWORD)
        return User(cli, f"stomp://{broker.host}:{broker.port}")

    return logged_in


def test_publish_with_a_delay_arrives_after_it(
    as_user: Callable[[str], User], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok("queue", "create", "cli-later")
    started = time.monotonic()
    summary = owner.ok("publish", "--queue", "cli-later", "wait for it", "--delay", "1.5s")
    assert summary.startswith("published 1 message to /queue/cli-later")
    info = admin_client.get_queue("cli-later")
    assert (info.depth, info.scheduled) == (0, 1)
    (message,) = admin_client.pull("cli-later", wait_ms=5000)
    assert message.text == "wait for it"
    assert 1.5 <= time.monotonic() - started <= 1.5 + LATE + 2  # + the command's start-up
    assert admin_client.get_queue("cli-later").scheduled == 0


def test_deliver_at_takes_iso_or_epoch_ms_and_the_owner_manages_them(
    as_user: Callable[[str], User], admin_client: ManagementClient
) -> None:
    owner, other = as_user(OWNER), as_user(OTHER)
    owner.ok("queue", "create", "cli-parked")
    soon = datetime.now(UTC) + timedelta(hours=1)
    owner.ok("publish", "--queue", "cli-parked", "iso", "--deliver-at", soon.isoformat())
    later = str(int((time.time() + 7200) * 1000))
    owner.ok("publish", "--queue", "cli-parked", "epoch", "--deliver-at", later)

    listed = json.loads(owner.ok("queue", "scheduled", "cli-parked", "--json"))
    assert [m["body"] for m in listed] == ["iso", "epoch"]
    assert 3500 < listed[0]["seconds_left"] <= 3600
    table = owner.ok("queue", "scheduled", "cli-parked")
    assert "iso" in table
    assert "epoch" in table
    assert "scheduled" in owner.ok("queue", "info", "cli-parked")
    assert json.loads(owner.ok("queue", "info", "cli-parked", "--json"))["scheduled"] == 2

    first, second = listed[0]["message_id"], listed[1]["message_id"]
    assert other.fails("queue", "deliver-now", "cli-parked", first).startswith(
        "buzon: access denied"
    )
    assert owner.ok("queue", "deliver-now", "cli-parked", first).strip() == (
        f"delivered scheduled message {first} of queue cli-parked"
    )
    owner.ok("queue", "cancel-scheduled", "cli-parked", second)
    assert "is not scheduled" in owner.fails("queue", "cancel-scheduled", "cli-parked", second)
    assert owner.ok("queue", "scheduled", "cli-parked").strip() == (
        "no messages scheduled in queue cli-parked"
    )
    assert [m.text for m in admin_client.pull("cli-parked", max_messages=5)] == ["iso"]


def test_bad_times_are_one_line_and_nothing_is_sent(
    as_user: Callable[[str], User], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok("queue", "create", "cli-strict")
    for args, named in (
        (("--delay", "5"), "--delay"),
        (("--delay", "-5s"), "--delay"),
        (("--delay", "soon"), "--delay"),
        (("--deliver-at", "tomorrow"), "--deliver-at"),
        (("--delay", "5s", "--deliver-at", "1"), "--deliver-at"),
        (("--delay", "40d"), "delay"),
        (("--delay", "9" * 400 + "s"), "--delay"),
        (("--deliver-at", "0001-01-01T00:00:00+00:00"), "--deliver-at"),
    ):
        line = owner.fails("publish", "--queue", "cli-strict", "x", *args)
        assert named in line, line
    info = admin_client.get_queue("cli-strict")
    assert (info.depth, info.scheduled) == (0, 0)


def test_a_queue_with_a_retry_policy_shows_it(
    as_user: Callable[[str], User], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok(
        "queue", "create", "cli-retry", "--retry-delay-ms", "200", "--retry-multiplier", "1.5",
        "--retry-max-delay-ms", "5000",
    )  # fmt: skip
    expected = QueuePolicy(retry_delay_ms=200, retry_multiplier=1.5, retry_max_delay_ms=5000)
    assert admin_client.get_queue("cli-retry").policy == expected
    text = owner.ok("queue", "info", "cli-retry")
    assert "retries wait 200 ms, x1.5 each time, at most 5000 ms" in text
    line = owner.fails("queue", "create", "cli-nope", "--retry-multiplier", "0.5")
    assert "--retry-multiplier" in line
