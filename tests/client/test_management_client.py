"""The management client's views of a running broker: peeking, rates, connections."""

from __future__ import annotations

import time

import pytest

from buzon.client import ApiError, Client, ManagementClient, RatePoint
from buzon.errors import ErrorCode
from buzon.testing import RunningBrokerSync


def as_user(broker: RunningBrokerSync, name: str) -> ManagementClient:
    """A new account ``name`` (password ``<name>-password``) and an HTTP client for it."""
    broker.management.register(name, f"{name}-password")
    return ManagementClient(broker.http_url, basic=(name, f"{name}-password"))


def stomp_url_of(broker: RunningBrokerSync, name: str) -> str:
    return f"stomp://{name}:{name}-password@127.0.0.1:{broker.server.stomp_port}"


def test_peek_shows_the_waiting_messages_and_consumes_none(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("peeked")
    first = api.publish("/queue/peeked", "first", headers={"step": "1"})
    api.publish("/queue/peeked", b"\x00\xffbinary")
    api.publish_json("/queue/peeked", {"step": 3})

    head = api.peek("peeked", limit=2)
    assert [m.body for m in head] == [b"first", b"\x00\xffbinary"]
    assert (head[0].message_id, head[0].text, head[0].headers["step"]) == (first, "first", "1")
    assert api.peek("peeked")[2].json() == {"step": 3}
    assert api.get_queue("peeked").depth == 3

    pulled = api.pull("peeked", max_messages=3)
    assert [m.body for m in pulled] == [b"first", b"\x00\xffbinary", b'{"step":3}']
    assert api.peek("peeked") == []  # leased messages are not waiting
    api.nack("peeked", pulled[0].receipt)
    [again] = api.peek("peeked")
    assert (again.message_id, again.text, again.redelivered) == (first, "first", True)


def test_peeking_needs_the_right_to_consume(buzon_broker: RunningBrokerSync) -> None:
    api = buzon_broker.management
    api.create_queue("payroll", access_key="open-sesame")
    api.publish("/queue/payroll", "march")
    with as_user(buzon_broker, "bob") as bob:
        with pytest.raises(ApiError) as missing:
            bob.peek("payroll")
        assert missing.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        with pytest.raises(ApiError) as wrong:
            bob.peek("payroll", access_key="not-the-key")
        assert wrong.value.code is ErrorCode.ACCESS_KEY_WRONG
        assert [m.text for m in bob.peek("payroll", access_key="open-sesame")] == ["march"]
        with pytest.raises(ApiError) as unknown:
            bob.peek("never-created")
        assert unknown.value.code is ErrorCode.DESTINATION_NOT_FOUND
        with pytest.raises(ApiError) as too_many:
            bob.peek("payroll", limit=101, access_key="open-sesame")
        assert too_many.value.code is ErrorCode.BAD_REQUEST
    assert api.get_queue("payroll").depth == 1


def wait_for_a_published_rate(api: ManagementClient, queue: str) -> list[RatePoint]:
    """Publish to ``queue`` until the broker's once-a-second sample shows a rate."""
    deadline = time.monotonic() + 5
    points: list[RatePoint] = []
    while not any(point.published_per_s > 0 for point in points):
        assert time.monotonic() < deadline, "no published rate within 5 s"
        api.publish(f"/queue/{queue}", "tick")
        points = api.rate_history()
        time.sleep(0.1)
    return points


def test_rates_their_history_and_the_broker_footprint(buzon_broker: RunningBrokerSync) -> None:
    api = buzon_broker.management
    api.create_queue("busy")
    api.create_queue("idle")
    points = wait_for_a_published_rate(api, "busy")
    assert [point.at for point in points] == sorted(point.at for point in points)
    queues = {queue.name: queue for queue in api.list_queues()}
    assert queues["busy"].published_per_s > 0
    assert (queues["idle"].published_per_s, queues["idle"].delivered_per_s) == (0.0, 0.0)
    overview = api.overview()
    assert overview.memory_bytes is not None
    assert overview.memory_bytes > 1_000_000  # a Python process holds megabytes
    assert overview.store_bytes is None  # the test broker stores in memory


def test_an_admin_closes_a_stomp_connection(buzon_broker: RunningBrokerSync) -> None:
    api = buzon_broker.management
    with buzon_broker.client() as client:
        jobs = client.subscribe("/queue/jobs")
        [connection] = api.connections()
        assert (connection.user, connection.transport, connection.subscriptions) == (
            "admin",
            "tcp",
            1,
        )
        api.close_connection(connection.id)
        with pytest.raises(ApiError) as closed:
            jobs.get(timeout=5)
        assert closed.value.code is ErrorCode.CONNECTION_CLOSED_BY_ADMIN
        assert connection.id not in [c.id for c in api.connections()]


def test_only_an_admin_closes_connections(buzon_broker: RunningBrokerSync) -> None:
    with as_user(buzon_broker, "carol") as carol, Client(stomp_url_of(buzon_broker, "carol")):
        [own] = carol.connections()
        with pytest.raises(ApiError) as denied:
            carol.close_connection(own.id)
        assert (denied.value.code, denied.value.status) == (ErrorCode.ACCESS_DENIED, 403)
        assert [c.id for c in buzon_broker.management.connections()] == [own.id]
    with pytest.raises(ApiError) as missing:
        buzon_broker.management.close_connection("c999999")
    assert missing.value.code is ErrorCode.CONNECTION_NOT_FOUND
