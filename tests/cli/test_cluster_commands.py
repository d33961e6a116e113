"""``buzon cluster status`` as scripts run it, against a real single-node broker."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from buzon.client import Client, ManagementClient
from tests.cli.helpers import ADMIN_PASSWORD, Cli
from tests.interop.broker_process import BrokerProcess

PASSWORD = "cli-cluster-password"
USER = "cluster-user"


def test_cluster_status_shows_the_broker_as_its_one_live_node(
    broker: BrokerProcess, cli_for: Callable[[str], Cli]
) -> None:
    admin = cli_for("admin")
    admin.login("admin", ADMIN_PASSWORD)
    name = f"{socket.gethostname()}:{broker.port}"
    stomp = f"stomp://{broker.host}:{broker.port}"
    with Client(f"stomp://admin:{ADMIN_PASSWORD}@{broker.host}:{broker.port}"):
        [node] = json.loads(admin.ok("cluster", "status", "--json"))
        table = admin.ok("cluster", "status")
    assert (node["name"], node["alive"], node["connections"], node["id"]) == (name, True, 1, 1)
    amqp = f"amqp://{broker.host}:{broker.amqp_port}"
    assert node["listeners"] == [stomp, f"{broker.url}/api/v1", amqp]
    heartbeat = datetime.fromisoformat(node["heartbeat_at"])
    assert datetime.now(UTC) - timedelta(seconds=30) < heartbeat <= datetime.now(UTC)
    assert datetime.fromisoformat(node["started_at"]) <= heartbeat

    [row] = [line for line in table.splitlines() if name in line]
    for shown in ("yes", stomp, "s ago"):
        assert shown in row
    assert "Last heartbeat" in table


def test_only_an_admin_sees_the_cluster(
    admin_client: ManagementClient, cli_for: Callable[[str], Cli]
) -> None:
    admin_client.register(USER, PASSWORD)
    user = cli_for(USER)
    user.login(USER, PASSWORD)
    assert user.fails("cluster", "status") == (
        "buzon: access denied: only an admin may see the cluster's nodes"
    )
    anonymous = cli_for("nobody")
    assert anonymous.fails("cluster", "status").startswith("buzon: not logged in to ")
