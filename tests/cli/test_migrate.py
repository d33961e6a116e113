"""``buzon migrate --from sqlite:DIR --to postgresql://...``: a single node's installation,
made by a real ``buzon serve`` on SQLite, moves to PostgreSQL, where a real ``buzon serve
--storage postgresql`` node takes over with the same logins, queues and waiting messages."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buzon.client import ApiError, Client, ManagementClient, PulledMessage, QueuePolicy
from buzon.errors import ErrorCode
from buzon.store import StoredMessage
from buzon.store.postgres import PostgresStore
from tests.cli.helpers import free_port, one_error_line
from tests.interop.broker_process import BrokerProcess, broker_process

ADMIN_PASSWORD = "the-old-admin-password"
ALICE_PASSWORD = "alice-password-1"
BOB_PASSWORD = "bob-password-1"
POLICY = QueuePolicy(
    max_length=100, message_ttl_ms=3_600_000, dead_letter_queue="jobs-dead", max_deliveries=5
)


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    """``buzon migrate ARGS`` as a person at a shell runs it (no terminal: no progress bar)."""
    return subprocess.run(
        [sys.executable, "-m", "buzon", "migrate", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def fill_single_node(node: BrokerProcess) -> QueuePolicy:
    """Accounts, a protected queue with a policy and waiting messages (the first one given
    back once, so redelivered), and a durable subscription with a backlog; returns the
    policy the broker stored."""
    with ManagementClient(node.url) as admin:
        admin.login("admin", ADMIN_PASSWORD)
        admin.register("alice", ALICE_PASSWORD)
        admin.register("bob", BOB_PASSWORD)
        with ManagementClient(node.url) as alice:
            alice.login("alice", ALICE_PASSWORD)
            alice.create_queue("jobs-dead")
            stored = alice.create_queue("jobs", access_key="jobs-key-1", policy=POLICY).policy
            alice.create_channel("news")
            for n in range(1, 6):
                alice.publish("/queue/jobs", f"job {n}", headers={"n": str(n)})
            (first,) = alice.pull("jobs")
            assert alice.nack("jobs", first.receipt) == 1
        stomp = f"stomp://alice@{node.host}:{node.port}"
        with Client(stomp, passcode=ALICE_PASSWORD) as client:
            client.subscribe("/topic/news", durable="feed")
        admin.publish("/topic/news", "news 1")
        admin.publish("/topic/news", "news 2")
    return stored


def pull_all(client: ManagementClient, expected: int) -> list[PulledMessage]:
    """Pull from ``jobs`` until ``expected`` messages came (a node claims them in steps)."""
    found: list[PulledMessage] = []
    deadline = time.monotonic() + 20
    while len(found) < expected and time.monotonic() < deadline:
        found += client.pull("jobs", max_messages=expected - len(found), wait_ms=1000)
    return found


def test_a_migrated_installation_serves_logins_queues_and_waiting_messages_in_order(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = {"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with broker_process("--data-dir", str(data_dir), env=env) as single:
        policy = fill_single_node(single)
        running = one_error_line(migrate("--from", f"sqlite:{data_dir}", "--to", database_url))
        assert "a buzon serve is running on" in running
        assert "stop the broker first" in running
        assert single.stop() == 0

    moved = migrate("--from", f"sqlite:{data_dir}", "--to", database_url)

    assert moved.returncode == 0, moved.stderr
    assert moved.stderr == ""
    summary = moved.stdout
    assert summary.startswith("copied 3 users, ")
    assert "3 queues and channels, 1 durable subscription and 7 waiting messages" in summary
    assert f"from {data_dir} to {database_url} ({data_dir} is unchanged)" in summary
    again = one_error_line(migrate("--from", f"sqlite:{data_dir}", "--to", database_url))
    assert "the PostgreSQL database already holds buzon data (users: 3," in again

    cluster = ("--storage", "postgresql", "--database-url", database_url)
    # a password for a new admin, ignored: the admin already exists
    with broker_process(*cluster, env={"BUZON_ADMIN_PASSWORD": "a-new-password"}) as node:
        with ManagementClient(node.url) as admin:
            with pytest.raises(ApiError) as refused:
                admin.login("admin", "a-new-password")
            assert refused.value.code is ErrorCode.AUTH_FAILED
            admin.login("admin", ADMIN_PASSWORD)
            jobs = admin.get_queue("jobs")
            assert (jobs.owner, jobs.protected, jobs.policy) == ("alice", True, policy)
            channel = admin.get_channel("news")
            assert [(d.name, d.owner) for d in channel.durable_subscriptions] == [("feed", "alice")]
        with ManagementClient(node.url) as bob:
            bob.login("bob", BOB_PASSWORD)
            with pytest.raises(ApiError) as wrong:
                bob.publish("/queue/jobs", "no", access_key="not-the-key")
            assert wrong.value.code is ErrorCode.ACCESS_KEY_WRONG
            bob.publish("/queue/jobs", "published after the move", access_key="jobs-key-1")
        with ManagementClient(node.url) as alice:
            alice.login("alice", ALICE_PASSWORD)
            pulled = pull_all(alice, 6)
            assert [(m.text, m.headers.get("n"), m.redelivered) for m in pulled] == [
                ("job 1", "1", True),
                ("job 2", "2", False),
                ("job 3", "3", False),
                ("job 4", "4", False),
                ("job 5", "5", False),
                ("published after the move", None, False),
            ]
            assert alice.ack("jobs", *(m.receipt for m in pulled)) == 6
        stomp = f"stomp://alice@{node.host}:{node.port}"
        with Client(stomp, passcode=ALICE_PASSWORD) as client:
            feed = client.subscribe("/topic/news", durable="feed", ack="client-individual")
            news = [feed.get(timeout=10) for _ in range(2)]
            assert [m.text for m in news] == ["news 1", "news 2"]
            for message in news:
                message.ack(confirm=True)
        assert node.stop() == 0


@pytest.mark.parametrize(
    ("source", "target", "said"),
    [
        ("buzon-data", "postgresql://u@h/db", "--from takes sqlite:DIR"),
        ("sqlite:", "postgresql://u@h/db", "--from takes sqlite:DIR"),
        ("sqlite:data", "mysql://u@h/db", "--to takes postgresql://USER@HOST:PORT/DB"),
        ("sqlite:data", "mysql://u:secret@h/db", "(got 'mysql://u:***@h/db')"),
        ("sqlite:no-such-dir", "postgresql://u@h/db", "no buzon database in no-such-dir"),
    ],
)
def test_bad_arguments_get_one_line(source: str, target: str, said: str) -> None:
    line = one_error_line(migrate("--from", source, "--to", target))
    assert said in line
    assert "secret" not in line


def test_an_unreachable_database_gets_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with broker_process("--data-dir", str(data_dir)) as single:
        assert single.stop() == 0
    nowhere = f"postgresql://buzon@127.0.0.1:{free_port()}/buzon"

    line = one_error_line(migrate("--from", f"sqlite:{data_dir}", "--to", nowhere))

    assert line.startswith("buzon: storage unavailable: PostgreSQL: ")


def test_messages_of_a_broker_that_was_killed_are_copied_marked_redelivered(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = {"BUZON_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with broker_process("--data-dir", str(data_dir), env=env) as single:
        with ManagementClient(single.url) as admin:
            admin.login("admin", ADMIN_PASSWORD)
            admin.create_queue("jobs")
            admin.publish("/queue/jobs", "job 1")
        single.stop(signal.SIGKILL)

    moved = migrate("--from", f"sqlite:{data_dir}", "--to", database_url)

    assert moved.returncode == 0, moved.stderr
    lines = moved.stdout.splitlines()
    assert "1 queue or channel, 0 durable subscriptions and 1 waiting message" in lines[0]
    assert lines[1:] == [
        "the broker's last run did not stop cleanly: the messages are marked redelivered"
    ]
    stored = asyncio.run(stored_messages(database_url))
    assert [(m.body, m.redelivered) for m in stored] == [(b"job 1", True)]


async def stored_messages(database_url: str) -> list[StoredMessage]:
    store = PostgresStore(database_url)
    await store.open()
    try:
        return await store.messages()
    finally:
        await store.close()
