"""``buzon queue create`` with a policy, ``buzon queue purge``, and what ``info`` shows."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from buzon.client import ManagementClient, Overflow, QueuePolicy
from tests.cli.helpers import Cli

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
    )  # fmt: skip
    expected = QueuePolicy(
        max_length=3,
        overflow=Overflow.DROP_HEAD,
        message_ttl_ms=60_000,
        dead_letter_queue="bounded-dlq",
        max_deliveries=5,
    )
    assert admin_client.get_queue("bounded").policy == expected
    text = owner.ok("queue", "info", "bounded")
    assert "durable, at most 3 messages (drop-head), messages live 60000 ms" in text
    assert "dead letters to bounded-dlq" in text
    policy = json.loads(owner.ok("queue", "info", "bounded", "--json"))["policy"]
    assert (policy["max_length"], policy["overflow"]) == (3, "drop-head")


def test_bad_policy_options_are_one_line(as_user: Callable[[str], Cli]) -> None:
    owner = as_user(OWNER)
    assert "--max-length" in owner.fails("queue", "create", "q", "--max-length", "0")
    assert "dead_letter_queue" in owner.fails(
        "queue", "create", "q", "--dead-letter-queue", "no spaces"
    )


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
