"""``buzon queue create`` with a policy, ``buzon queue purge`` and ``peek``, and what
``info`` shows."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

import pytest

from buzon.client import Client, ManagementClient, Overflow, QueuePolicy
from tests.cli.helpers import Cli
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-policy-password"
OWNER, OTHER = "policy-owner", "policy-other"


@pytest.fixture(scope="module")
def people(admin_client: ManagementClient) -> None:
    for name in (OWNER, OTHER):
        admin_client.register(name, PASSWORD)


@pytest.fixture
def as_user(people: None, cli_for: Callable[[str], Cli]) -> Callable[[str], Cli]:
    def logged_in(name: str) -> Cli:
        cli = cli_for(name)
        cli.login(name, PASSWORD)
        return cli

    return logged_in


def test_a_queue_created_with_a_policy_shows_it(
    as_user: Callable[[str], Cli], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok(
        "queue", "create", "bounded", "--max-length", "3", "--overflow", "drop-head",
        "--ttl", "60000", "--dead-letter-queue", "bounded-dlq", "--max-deliveries", "5",
        "--backlog-window", "500", "--ack-timeout-ms", "30000",
        "--dedup-window-ms", "30000",
    )  # fmt: skip
    expected = QueuePolicy(
        max_length=3,
        overflow=Overflow.DROP_HEAD,
        message_ttl_ms=60_000,
        dead_letter_queue="bounded-dlq",
        max_deliveries=5,
        backlog_window=500,
        ack_timeout_ms=30_000,
        dedup_window_ms=30_000,
    )
    assert admin_client.get_queue("bounded").policy == expected
    text = owner.ok("queue", "info", "bounded")
    assert "durable, at most 3 messages (drop-head), messages live 60000 ms" in text
    assert "dead letters to bounded-dlq, ack within 30000 ms" in text
    assert "at most 500 messages in memory" in text
    assert "idempotency keys kept 30000 ms" in text
    policy = json.loads(owner.ok("queue", "info", "bounded", "--json"))["policy"]
    assert (policy["max_length"], policy["overflow"]) == (3, "drop-head")


def test_info_counts_lapsed_deliveries_and_late_settles(
    as_user: Callable[[str], Cli], broker: BrokerProcess
) -> None:
    owner = as_user(OWNER)
    owner.ok("queue", "create", "leased", "--ack-timeout-ms", "200")
    url = f"stomp://{broker.host}:{broker.port}"
    with Client(url, login=OWNER, passcode=PASSWORD) as client:
        jobs = client.subscribe("/queue/leased", ack="client-individual")
        client.publish("/queue/leased", "slow job")
        first = jobs.get(timeout=5)
        again = jobs.get(timeout=5)  # the lease ran out: back to the only consumer
        first.ack(confirm=True)  # too late: ignored, confirmed all the same
        again.ack(confirm=True)
    text = owner.ok("queue", "info", "leased")
    assert re.search(r"lease expired\s+│\s+1\s", text), text
    assert re.search(r"late settles\s+│\s+1\s", text), text


def test_bad_policy_options_are_one_line(as_user: Callable[[str], Cli]) -> None:
    owner = as_user(OWNER)
    assert "--max-length" in owner.fails("queue", "create", "q", "--max-length", "0")
    assert "--ack-timeout-ms" in owner.fails("queue", "create", "q", "--ack-timeout-ms", "-1")
    assert "ack_timeout_ms" in owner.fails("queue", "create", "q", "--ack-timeout-ms", str(10**13))
    assert "backlog_window" in owner.fails("queue", "create", "q", "--backlog-window", "2000000")
    assert "dead_letter_queue" in owner.fails(
        "queue", "create", "q", "--dead-letter-queue", "no spaces"
    )
    for window in ("-1", "1.5", "604800001"):
        assert "--dedup-window-ms" in owner.fails(
            "queue", "create", "q", "--dedup-window-ms", window
        )


def test_the_dedup_window_defaults_to_ten_minutes_and_zero_turns_keys_off(
    as_user: Callable[[str], Cli], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok("queue", "create", "keyed")
    owner.ok("queue", "create", "unkeyed", "--dedup-window-ms", "0")
    assert admin_client.get_queue("keyed").policy.dedup_window_ms == 600_000
    assert "idempotency keys ignored" in owner.ok("queue", "info", "unkeyed")
    for queue in ("keyed", "unkeyed"):
        first = admin_client.publish(f"/queue/{queue}", "x", idempotency_key="k")
        again = admin_client.publish(f"/queue/{queue}", "x", idempotency_key="k")
        assert (again == first) is (queue == "keyed")
    assert admin_client.get_queue("keyed").depth == 1
    assert admin_client.get_queue("unkeyed").depth == 2


def test_purge_drops_waiting_messages_for_the_owner_only(
    as_user: Callable[[str], Cli], admin_client: ManagementClient
) -> None:
    owner, other = as_user(OWNER), as_user(OTHER)
    owner.ok("queue", "create", "purgeable")
    for n in range(4):
        admin_client.publish("/queue/purgeable", str(n))
    assert other.fails("queue", "purge", "purgeable").startswith("buzon: access denied")
    assert owner.ok("queue", "purge", "purgeable").strip() == (
        "purged 4 waiting messages from queue purgeable"
    )
    assert admin_client.get_queue("purgeable").depth == 0


def test_peek_shows_waiting_messages_and_leaves_them_waiting(
    as_user: Callable[[str], Cli], admin_client: ManagementClient
) -> None:
    owner = as_user(OWNER)
    owner.ok("queue", "create", "peekable")
    first = admin_client.publish("/queue/peekable", "resize photo 42", headers={"size": "large"})
    admin_client.publish("/queue/peekable", b"\x00\xff")
    table = owner.ok("queue", "peek", "peekable")
    assert first in table
    assert "size=large" in table
    assert "resize photo 42" in table
    assert "(binary body, 2 bytes: use --json to see it)" in table
    assert json.loads(owner.ok("queue", "peek", "peekable", "--limit", "1", "--json")) == [
        {
            "message_id": first,
            "headers": {"size": "large"},
            "body": "resize photo 42",
            "redelivered": False,
        }
    ]
    binary = json.loads(owner.ok("queue", "peek", "peekable", "--json"))[1]
    assert base64.b64decode(binary["body_base64"]) == b"\x00\xff"
    assert admin_client.get_queue("peekable").depth == 2
    admin_client.purge_queue("peekable")
    assert owner.ok("queue", "peek", "peekable").strip() == "no messages waiting in queue peekable"


def test_peek_at_another_users_protected_queue_needs_its_key(
    as_user: Callable[[str], Cli], admin_client: ManagementClient
) -> None:
    owner, other = as_user(OWNER), as_user(OTHER)
    owner.ok("queue", "create", "sealed", "--access-key-stdin", stdin="sealed-key-1\n")
    admin_client.publish("/queue/sealed", "the plan")
    assert other.fails("queue", "peek", "sealed") == (
        "buzon: access key required: /queue/sealed is protected by an access key"
    )
    assert other.fails("queue", "peek", "sealed", "--access-key", "not-the-key").startswith(
        "buzon: wrong access key"
    )
    shown = other.ok("queue", "peek", "sealed", "--access-key-stdin", stdin="sealed-key-1\n")
    assert "the plan" in shown
    assert "the plan" in owner.ok("queue", "peek", "sealed")  # the owner needs no key
    assert admin_client.get_queue("sealed").depth == 1
