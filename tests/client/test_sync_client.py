"""The blocking client and buzon.testing, as a user's own test suite would use them."""

from __future__ import annotations

import threading

import pytest

from buzon.client import ApiError, Client, SubscriptionClosed
from buzon.errors import ErrorCode
from buzon.testing import RunningBrokerSync, broker_sync


def test_blocking_publish_consume_ack_in_threads(buzon_broker: RunningBrokerSync) -> None:
    results: list[str] = []

    def worker() -> None:
        with buzon_broker.client() as client:
            jobs = client.subscribe("/queue/jobs", ack="client-individual")
            for message in jobs:
                results.append(message.text)
                message.ack()
                if len(results) == 5:
                    jobs.unsubscribe()

    with buzon_broker.client() as producer:
        producer.publish("/queue/jobs", "warm-up")  # the queue exists before the worker
        thread = threading.Thread(target=worker)
        thread.start()
        for n in range(4):
            producer.publish("/queue/jobs", f"job {n}")
        thread.join(timeout=10)
    assert results == ["warm-up", "job 0", "job 1", "job 2", "job 3"]
    queue = buzon_broker.server.broker.statistics().queues[0]
    assert (queue.depth, queue.in_flight) == (0, 0)


def publish_then_fail(client: Client) -> None:
    with client.transaction() as tx:
        tx.publish("/queue/tx", "aborted")
        raise KeyError("abort it")


def test_blocking_transactions_and_errors(buzon_broker: RunningBrokerSync) -> None:
    buzon_broker.management.create_queue("vault", access_key="open-sesame")
    with buzon_broker.client() as admin:
        sub = admin.subscribe("/queue/tx")
        with pytest.raises(KeyError):
            publish_then_fail(admin)
        with admin.transaction() as tx:
            tx.publish("/queue/tx", "committed")
        assert sub.get(timeout=5).text == "committed"
        with pytest.raises(TimeoutError):
            sub.get(timeout=0.2)
        sub.unsubscribe()
        with pytest.raises(SubscriptionClosed):
            sub.get(timeout=1)
    buzon_broker.management.register("bob", "bob-password")
    stomp_url = buzon_broker.stomp_url.replace(
        f"{buzon_broker.admin_user}:{buzon_broker.admin_password}", "bob:bob-password"
    )
    with Client(stomp_url) as bob:
        with pytest.raises(ApiError) as denied:
            bob.publish("/queue/vault", "no key")
        assert denied.value.code is ErrorCode.ACCESS_KEY_REQUIRED
        bob.publish("/queue/vault", "key", access_key="open-sesame")


def test_the_test_broker_passes_settings_through() -> None:
    with broker_sync(auto_create=False) as running, running.client() as client:
        with pytest.raises(ApiError) as missing:
            client.publish("/queue/nowhere", "x")
        assert missing.value.code is ErrorCode.DESTINATION_NOT_FOUND
