"""The SDK's delayed publishes, NACK outcomes and scheduled-message management, against a
real broker on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from buzon.client import ApiError, QueuePolicy
from buzon.errors import ErrorCode
from buzon.testing import RunningBrokerSync

LATE = 2.0
"""Seconds a due message may take to arrive on a test machine (the broker aims at 0.1)."""


def test_a_stomp_publish_with_a_delay_arrives_after_it(buzon_broker: RunningBrokerSync) -> None:
    api = buzon_broker.management
    api.create_queue("later")
    with buzon_broker.client() as client:
        jobs = client.subscribe("/queue/later", ack="client-individual")
        sent = time.monotonic()
        client.publish("/queue/later", "in 1.5 s", delay=timedelta(milliseconds=1500))
        client.publish("/queue/later", "now")
        assert jobs.get(timeout=5).text == "now"
        assert api.get_queue("later").scheduled == 1
        delayed = jobs.get(timeout=5)
        waited = time.monotonic() - sent
        assert delayed.text == "in 1.5 s"
        assert "delay" not in delayed.headers
        assert 1.5 <= waited <= 1.5 + LATE
    info = api.get_queue("later")
    assert (info.scheduled, info.scheduled_total) == (0, 1)


def test_deliver_at_takes_an_aware_datetime_or_unix_seconds(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("timed")
    soon = datetime.now(UTC) + timedelta(hours=1)
    with buzon_broker.client() as client:
        client.publish("/queue/timed", "in an hour", deliver_at=soon)
        client.publish("/queue/timed", "in two", deliver_at=time.time() + 7200)
        with pytest.raises(ValueError, match="timezone-aware"):
            client.publish("/queue/timed", "naive", deliver_at=datetime.now())
        with pytest.raises(ValueError, match="not both"):
            client.publish("/queue/timed", "both", delay=1, deliver_at=soon)
        with pytest.raises(ValueError, match="0 seconds or more"):
            client.publish("/queue/timed", "negative", delay=-1)
        with pytest.raises(ApiError) as refused:
            client.publish("/queue/timed", "too far", delay=timedelta(days=31))
        assert refused.value.code is ErrorCode.BAD_HEADER_VALUE
        assert "delay" in str(refused.value)
    listed = api.scheduled("timed")
    assert [m.text for m in listed] == ["in an hour", "in two"]
    assert abs(listed[0].deliver_at.timestamp() - soon.timestamp()) < 0.01
    assert 3500 < listed[0].seconds_left <= 3600
    info = api.get_queue("timed")
    assert (info.depth, info.scheduled) == (0, 2)


def test_the_http_client_schedules_delivers_now_and_cancels(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("parked")
    first = api.publish("/queue/parked", "first", delay=60)
    second = api.publish("/queue/parked", "second", deliver_at=time.time() + 120)
    assert [m.message_id for m in api.scheduled("parked")] == [first, second]

    api.deliver_now("parked", first)
    (pulled,) = api.pull("parked", max_messages=5)
    assert (pulled.message_id, pulled.text) == (first, "first")
    api.cancel_scheduled("parked", second)
    assert api.scheduled("parked") == []
    with pytest.raises(ApiError) as gone:
        api.cancel_scheduled("parked", second)
    assert gone.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ValueError, match="not both"):
        api.publish("/queue/parked", "both", delay=1, deliver_at=time.time())


def test_a_nack_may_reject_with_an_error_or_delay_the_retry(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("work", policy=QueuePolicy(dead_letter_queue="failed"))
    with buzon_broker.client() as client:
        work = client.subscribe("/queue/work", ack="client-individual")
        client.publish("/queue/work", "poison")
        client.publish("/queue/work", "flaky")
        poison = work.get(timeout=5)
        poison.nack(requeue=False, error="no customer id", confirm=True)
        flaky = work.get(timeout=5)
        refused = time.monotonic()
        flaky.nack(delay=0.4, confirm=True)
        assert api.get_queue("work").scheduled == 1
        again = work.get(timeout=5)
        assert 0.4 <= time.monotonic() - refused <= 0.4 + LATE
        assert (again.text, again.redelivered) == ("flaky", True)
        again.ack(confirm=True)

    (dead,) = api.peek("failed")
    assert dead.text == "poison"
    assert dead.headers["x-dead-letter-reason"] == "rejected"
    assert dead.headers["x-last-error"] == "no customer id"
    assert dead.headers["x-delivery-count"] == "1"
    info = api.get_queue("work")
    assert info.dead_lettered_by_reason == {"rejected": 1}
    assert info.retried == 1


def test_a_long_error_is_cut_to_what_the_broker_keeps_and_the_connection_lives(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("chatty", policy=QueuePolicy(dead_letter_queue="chatty-dlq"))
    with buzon_broker.client() as client:
        work = client.subscribe("/queue/chatty", ack="client-individual")
        client.publish("/queue/chatty", "a", idempotency_key=False)
        client.publish("/queue/chatty", "b", idempotency_key=False)
        first = work.get(timeout=5)
        with pytest.raises(ValueError, match="requeue=False"):
            first.nack(requeue=False, delay=1)  # refused before anything is sent
        first.nack(requeue=False, error="trace " * 20_000, confirm=True)
        work.get(timeout=5).ack(confirm=True)  # same connection, still serving
    (dead,) = api.peek("chatty-dlq")
    assert dead.headers["x-last-error"] == ("trace " * 20_000)[:1024]


def test_the_http_nack_rejects_or_delays_pulled_messages(
    buzon_broker: RunningBrokerSync,
) -> None:
    api = buzon_broker.management
    api.create_queue("pulled", policy=QueuePolicy(dead_letter_queue="pulled-dlq"))
    api.publish("/queue/pulled", "bad")
    api.publish("/queue/pulled", "later")
    bad, later = api.pull("pulled", max_messages=2)
    assert api.nack("pulled", bad.receipt, requeue=False, error="schema mismatch") == 1
    api.nack("pulled", later.receipt, delay=timedelta(seconds=30))
    assert [m.text for m in api.scheduled("pulled")] == ["later"]
    (dead,) = api.peek("pulled-dlq")
    assert dead.headers["x-last-error"] == "schema mismatch"


def test_a_retry_policy_is_created_and_shown(buzon_broker: RunningBrokerSync) -> None:
    api = buzon_broker.management
    policy = QueuePolicy(retry_delay_ms=200, retry_multiplier=1.5, retry_max_delay_ms=5000)
    created = api.create_queue("retrying", policy=policy)
    assert created.policy == policy
    assert api.get_queue("retrying").policy == policy
    with pytest.raises(ApiError) as refused:
        api.create_queue("wrong", policy=QueuePolicy(retry_multiplier=0.5))
    assert refused.value.code is ErrorCode.BAD_REQUEST
    assert "retry_multiplier" in str(refused.value)
