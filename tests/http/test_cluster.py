"""``GET /api/v1/cluster`` on a single-node broker: the cluster is that broker alone."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import httpx

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from tests.http.helpers import Auth, admin_auth, api, error_of, new_user
from tests.server.harness import Client, running_server


async def test_an_admin_sees_this_broker_as_the_one_live_node(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    await Client.connected(server.stomp_port)
    before = time.time()
    response = await http.get("/cluster", headers=admin)
    assert response.status_code == 200, response.text
    [node] = response.json()["nodes"]
    assert list(node) == [
        "name",
        "alive",
        "listeners",
        "heartbeat_at",
        "started_at",
        "connections",
        "id",
    ]
    assert node["name"] == f"{socket.gethostname()}:{server.stomp_port}"
    assert node["alive"] is True
    assert node["listeners"] == [
        f"stomp://127.0.0.1:{server.stomp_port}",
        f"http://127.0.0.1:{server.http_port}/api/v1",
        f"amqp://127.0.0.1:{server.amqp_port}",
    ]
    assert node["connections"] == 1
    started = datetime.fromisoformat(node["started_at"]).timestamp()
    heartbeat = datetime.fromisoformat(node["heartbeat_at"]).timestamp()
    assert started <= before <= heartbeat <= time.time()
    assert isinstance(node["id"], int)


async def test_the_node_name_setting_names_the_node(hasher: SecretHasher) -> None:
    async with running_server(hasher, node_name="east-1") as server, api(server.http_port) as http:
        response = await http.get("/cluster", headers=await admin_auth(http))
    assert [node["name"] for node in response.json()["nodes"]] == ["east-1"]


async def test_only_an_admin_sees_the_cluster(http: httpx.AsyncClient) -> None:
    alice = await new_user(http, "alice")
    error_of(await http.get("/cluster", headers=alice), ErrorCode.ACCESS_DENIED)
    error_of(await http.get("/cluster"), ErrorCode.NOT_AUTHENTICATED)
