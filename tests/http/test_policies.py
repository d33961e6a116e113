"""Queue policies, purge and durable subscriptions over HTTP."""

from __future__ import annotations

import time

import httpx

from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from buzon.stomp import Ack, Message
from tests.http.helpers import Auth, error_of, inspect, new_user, publish, pull
from tests.server.harness import Client
from tests.server.test_messaging import subscribe

POLICY = {
    "durable": False,
    "max_length": 2,
    "max_length_bytes": None,
    "overflow": "reject-publish",
    "message_ttl_ms": None,
    "dead_letter_queue": None,
    "max_deliveries": None,
    "backlog_window": 500,
    "backlog_window_bytes": None,
    "retry_delay_ms": 250,
    "retry_multiplier": 1.5,
    "retry_max_delay_ms": 4000,
    "ack_timeout_ms": 30_000,
    "dedup_window_ms": 30_000,
    "auto_delete": False,
    "expires_ms": 3_600_000,
    "dead_letter_exchange": "failures",
    "dead_letter_routing_key": "orders.failed",
}


async def test_a_policy_is_set_at_creation_and_shown(http: httpx.AsyncClient, admin: Auth) -> None:
    created = await http.post("/queues", json={"name": "small", "policy": POLICY}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["policy"] == POLICY
    assert (await inspect(http, admin, "queues", "small"))["policy"] == POLICY
    listed = (await http.get("/queues", headers=admin)).json()
    assert [q["policy"]["max_length"] for q in listed] == [2]


async def test_a_full_queue_refuses_http_publishes(http: httpx.AsyncClient, admin: Auth) -> None:
    await http.post("/queues", json={"name": "small", "policy": POLICY}, headers=admin)
    for n in range(2):
        await publish(http, admin, "queues", "small", str(n))
    refused = await http.post("/queues/small/messages", json={"body": "3"}, headers=admin)
    error_of(refused, ErrorCode.QUEUE_FULL)
    assert (await inspect(http, admin, "queues", "small"))["depth"] == 2


async def test_expired_messages_go_to_the_dead_letter_queue(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    policy = {"message_ttl_ms": 60_000, "dead_letter_queue": "graveyard"}
    await http.post("/queues", json={"name": "fresh", "policy": policy}, headers=admin)
    past = str(int((time.time() - 1) * 1000))
    await publish(http, admin, "queues", "fresh", "stale", headers={"expires": past})
    await publish(http, admin, "queues", "fresh", "fresh")
    assert [m["body"] for m in await pull(http, admin, "fresh", max=10)] == ["fresh"]
    (dead,) = await pull(http, admin, "graveyard", max=10)
    assert dead["body"] == "stale"
    assert dead["headers"]["x-dead-letter-reason"] == "expired"
    assert dead["headers"]["x-original-destination"] == "/queue/fresh"


async def test_bad_policies_are_refused(http: httpx.AsyncClient, admin: Auth) -> None:
    for policy in (
        {"max_length": 0},
        {"max_length": True},
        {"overflow": "explode"},
        {"dead_letter_queue": "bad name"},
        {"unknown": 1},
        {"backlog_window": 0},
        {"backlog_window": -1},
        {"backlog_window": 10**12},
        {"backlog_window_bytes": 0},
        {"retry_delay_ms": 0},
        {"retry_delay_ms": "100"},
        {"retry_delay_ms": 31 * 24 * 3600 * 1000},
        {"retry_multiplier": 0.5},
        {"retry_multiplier": "2"},
        {"retry_max_delay_ms": -1},
    ):
        answer = await http.post("/queues", json={"name": "q", "policy": policy}, headers=admin)
        error_of(answer, ErrorCode.BAD_REQUEST)


async def test_dead_letters_go_to_one_place_with_a_valid_key(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    for policy, says in (
        ({"dead_letter_queue": "dlq", "dead_letter_exchange": "dlx"}, "not both"),
        ({"dead_letter_routing_key": "k"}, "needs a dead_letter_exchange"),
        ({"dead_letter_exchange": "dlx", "dead_letter_routing_key": "a\x01b"}, "control"),
        ({"dead_letter_exchange": "dlx", "dead_letter_routing_key": "é" * 200}, "255 bytes"),
    ):
        answer = await http.post("/queues", json={"name": "q", "policy": policy}, headers=admin)
        assert says in error_of(answer, ErrorCode.BAD_REQUEST)
    assert (await http.get("/queues/q", headers=admin)).status_code == 404  # nothing made


async def test_a_bad_ack_timeout_is_refused_naming_the_field(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    for value in (0, -5, "30000", 1.5, 10**13):
        policy = {"ack_timeout_ms": value}
        answer = await http.post("/queues", json={"name": "q", "policy": policy}, headers=admin)
        assert "ack_timeout_ms" in error_of(answer, ErrorCode.BAD_REQUEST)
    listed = (await http.get("/queues", headers=admin)).json()
    assert listed == []


async def test_queue_info_counts_lapsed_deliveries(
    http: httpx.AsyncClient, admin: Auth, server: BuzonServer
) -> None:
    policy = {"ack_timeout_ms": 50, "max_deliveries": 1, "dead_letter_queue": "late"}
    await http.post("/queues", json={"name": "late"}, headers=admin)
    await http.post("/queues", json={"name": "leased", "policy": policy}, headers=admin)
    worker = await Client.connected(server.stomp_port)
    await worker.send(subscribe("/queue/leased", ack="client-individual"))
    await worker.receipt("sub")
    await publish(http, admin, "queues", "leased", "job")
    delivered = await worker.expect(Message)
    (dead,) = await pull(http, admin, "late", max=1, wait_ms=5_000)
    assert dead["headers"]["x-dead-letter-reason"] == "ack-timeout"
    await worker.send(Ack(delivered.ack or "", receipt="late"))
    await worker.receipt("late")  # a late ACK: its receipt, no ERROR
    shown = await inspect(http, admin, "queues", "leased")
    assert (shown["lease_expired"], shown["late_settles"]) == (1, 1)
    assert (shown["depth"], shown["in_flight"]) == (0, 0)
    await worker.close()


async def test_a_pull_lease_that_runs_out_on_the_last_delivery_dead_letters_for_ack_timeout(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    policy = {"max_deliveries": 1, "dead_letter_queue": "lapsed"}
    await http.post("/queues", json={"name": "lapsed"}, headers=admin)
    await http.post("/queues", json={"name": "pulled", "policy": policy}, headers=admin)
    await publish(http, admin, "queues", "pulled", "job")
    [taken] = await pull(http, admin, "pulled", lease_ms=1_000)
    assert await pull(http, admin, "pulled", wait_ms=2_500) == []  # its one delivery is over
    (dead,) = await pull(http, admin, "lapsed", max=1, wait_ms=5_000)
    assert dead["message_id"] != taken["message_id"]
    assert dead["headers"]["x-original-message-id"] == taken["message_id"]
    assert dead["headers"]["x-dead-letter-reason"] == "ack-timeout"
    assert dead["headers"]["x-delivery-count"] == "1"
    shown = await inspect(http, admin, "queues", "pulled")
    assert shown["lease_expired"] == 1
    assert shown["dead_lettered_by_reason"] == {"ack-timeout": 1}


async def test_a_bad_dedup_window_is_refused_naming_it(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    for window in (-1, 7 * 24 * 3600 * 1000 + 1, "600000", 1.5, True, None):
        policy = {"dedup_window_ms": window}
        answer = await http.post("/queues", json={"name": "q", "policy": policy}, headers=admin)
        assert "dedup_window_ms" in error_of(answer, ErrorCode.BAD_REQUEST)
    assert (await http.get("/queues/q", headers=admin)).status_code == 404


async def test_the_dedup_window_defaults_to_ten_minutes(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await http.post("/queues", json={"name": "q"}, headers=admin)
    assert (await inspect(http, admin, "queues", "q"))["policy"]["dedup_window_ms"] == 600_000


async def test_purge_is_for_the_owner_and_spares_messages_in_flight(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    await http.post("/queues", json={"name": "jobs"}, headers=admin)
    for n in range(3):
        await publish(http, admin, "queues", "jobs", str(n))
    assert len(await pull(http, admin, "jobs", max=1)) == 1
    stranger = await new_user(http, "mallory")
    error_of(await http.post("/queues/jobs/purge", headers=stranger), ErrorCode.ACCESS_DENIED)
    purged = await http.post("/queues/jobs/purge", headers=admin)
    assert purged.json() == {"purged": 2}
    view = await inspect(http, admin, "queues", "jobs")
    assert (view["depth"], view["in_flight"]) == (0, 1)


async def test_durable_subscriptions_are_listed_on_their_channel(
    server: BuzonServer, http: httpx.AsyncClient, admin: Auth
) -> None:
    subscriber = await Client.connected(server.stomp_port)
    await subscriber.send(subscribe("/topic/events", **{"subscription-name": "audit"}))
    await subscriber.receipt("sub")
    await subscriber.close()
    await publish(http, admin, "channels", "events", "while away")
    view = await inspect(http, admin, "channels", "events")
    assert view["durable_subscriptions"] == [{"name": "audit", "owner": "admin", "backlog": 1}]
