"""``buzon connection list`` and ``close`` as scripts run them, against a real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from buzon.client import ApiError, Client, ManagementClient
from buzon.errors import ErrorCode
from tests.cli.helpers import ADMIN_PASSWORD, Cli
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-connection-password"
USER = "conn-user"


@pytest.fixture(scope="module")
def account(admin_client: ManagementClient) -> None:
    admin_client.register(USER, PASSWORD)


@pytest.fixture
def admin(cli_for: Callable[[str], Cli]) -> Cli:
    cli = cli_for("admin")
    cli.login("admin", ADMIN_PASSWORD)
    return cli


@pytest.fixture
def user(account: None, cli_for: Callable[[str], Cli]) -> Cli:
    cli = cli_for(USER)
    cli.login(USER, PASSWORD)
    return cli


def stomp_client(broker: BrokerProcess) -> Client:
    """A STOMP connection as USER, for the commands to see and close."""
    return Client(f"stomp://{USER}:{PASSWORD}@{broker.host}:{broker.port}")


def listed(cli: Cli) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(cli.ok("connection", "list", "--json"))
    return found


def test_connection_list_shows_an_open_connection(
    broker: BrokerProcess, admin: Cli, user: Cli
) -> None:
    with stomp_client(broker) as client:
        client.subscribe("/queue/conn-jobs")
        [own] = listed(user)
        assert (own["user"], own["transport"], own["protocol"], own["subscriptions"]) == (
            USER,
            "tcp",
            "stomp/1.2",
            1,
        )
        [row] = [line for line in admin.ok("connection", "list").splitlines() if USER in line]
        for shown in (own["id"], own["peer"], "tcp", "stomp/1.2"):
            assert shown in row
    assert user.ok("connection", "list").strip() == "no open connections"


def test_only_an_admin_closes_a_connection(broker: BrokerProcess, admin: Cli, user: Cli) -> None:
    with stomp_client(broker) as client:
        jobs = client.subscribe("/queue/conn-closed")
        [own] = listed(user)
        assert user.fails("connection", "close", own["id"]) == (
            "buzon: access denied: only an admin may close connections"
        )
        assert [c["id"] for c in listed(user)] == [own["id"]]  # still open
        said = admin.ok("connection", "close", own["id"])
        assert said.strip() == f"closed connection {own['id']}"
        with pytest.raises(ApiError) as closed:
            jobs.get(timeout=5)
        assert closed.value.code is ErrorCode.CONNECTION_CLOSED_BY_ADMIN
        assert own["id"] not in [c["id"] for c in listed(admin)]
    assert admin.fails("connection", "close", own["id"]) == (
        f"buzon: connection not found: no open connection '{own['id']}'"
    )
