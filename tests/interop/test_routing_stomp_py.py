"""Channels that route, with the third-party stomp.py client against a real ``buzon serve``:
wildcard subscriptions, routing keys on SEND, queue bindings, and a kill -9 in between."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import stomp
from tests.interop.broker_process import BrokerProcess, broker_process
from tests.interop.test_stomp_py import Collector

PASSWORD = "routing-password-1"
ENV = {"BUZON_ADMIN_PASSWORD": PASSWORD}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env=ENV) as process:
        yield process
        assert process.stop() == 0


@contextlib.contextmanager
def api(broker: BrokerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the broker's API, logged in as the admin."""
    with httpx.Client(base_url=f"{broker.url}/api/v1", timeout=10) as client:
        response = client.post("/sessions", json={"username": "admin", "password": PASSWORD})
        assert response.status_code == 201, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['token']}"
        yield client


class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
    """The receipt ids a connection got."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_receipt(self, frame: Any) -> None:
        self.seen.append(frame.headers["receipt-id"])

    def wait(self, receipt: str, errors: list[Any]) -> None:
        deadline = time.monotonic() + 5
        while receipt not in self.seen and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receipt in self.seen, errors


def connect(broker: BrokerProcess) -> tuple[Any, Collector, Receipts]:
    conn = stomp.Connection12([(broker.host, broker.port)], heartbeats=(0, 0))
    listener, receipts = Collector(), Receipts()
    conn.set_listener("collector", listener)
    conn.set_listener("receipts", receipts)
    conn.connect("admin", PASSWORD, wait=True)
    return conn, listener, receipts


def subscribe(broker: BrokerProcess, destination: str, ack: str = "auto") -> tuple[Any, Collector]:
    """A stomp.py subscription to ``destination``, in place once this returns."""
    conn, listener, receipts = connect(broker)
    conn.subscribe(destination, id="s", ack=ack, headers={"receipt": "subscribed"})
    receipts.wait("subscribed", listener.errors)
    return conn, listener


def send_all(broker: BrokerProcess, pairs: list[tuple[str, str]]) -> None:
    """SEND each (destination, body), the last with a receipt, and wait for it."""
    conn, listener, receipts = connect(broker)
    for n, (destination, body) in enumerate(pairs):
        conn.send(destination, body, receipt="done" if n == len(pairs) - 1 else None)
    receipts.wait("done", listener.errors)
    conn.disconnect()


def test_wildcard_subscriptions_get_what_their_pattern_matches(broker: BrokerProcess) -> None:
    with api(broker) as http:
        made = http.post("/channels", json={"name": "logs", "type": "topic"})
        assert made.status_code == 201, made.text
    errors, error_listener = subscribe(broker, "/topic/logs/*.error")
    app, app_listener = subscribe(broker, "/topic/logs/app.#")
    keys = ["app.error", "db.error", "app", "app.info.deep", "db.info"]
    send_all(broker, [(f"/topic/logs/{key}", key) for key in keys])
    got_errors = error_listener.wait_for(2)
    got_app = app_listener.wait_for(3)
    assert [m.body for m in got_errors] == ["app.error", "db.error"]
    assert [m.body for m in got_app] == ["app.error", "app", "app.info.deep"]
    assert got_errors[0].headers["destination"] == "/topic/logs/app.error"
    assert got_errors[0].headers["subscription"] == "s"
    for conn in (errors, app):
        conn.disconnect()


def test_a_key_too_long_is_an_error_frame(broker: BrokerProcess) -> None:
    conn, listener, _ = connect(broker)
    conn.send("/topic/logs/" + "k" * 256, "x", receipt="r")
    deadline = time.monotonic() + 5
    while not listener.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.errors
    assert "255 bytes" in listener.errors[0].headers["message"] + listener.errors[0].body


def test_bindings_and_types_survive_kill_9_with_the_message_in_both_queues(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    with broker_process("--data-dir", data, env=ENV) as first:
        with api(first) as http:
            assert http.post("/channels", json={"name": "orders", "type": "topic"}).is_success
            for queue in ("billing", "shipping"):
                assert http.post("/queues", json={"name": queue}).is_success
            for queue, key in (("billing", "order.#"), ("shipping", "order.*")):
                bound = http.post(
                    "/channels/orders/bindings", json={"queue": queue, "routing_key": key}
                )
                assert bound.status_code == 201, bound.text
        # the receipt means the message is on disk in both queues
        send_all(first, [("/topic/orders/order.created", "persisted")])
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    with broker_process("--data-dir", data, env=ENV) as second:
        with api(second) as http:
            assert http.get("/channels/orders").json()["type"] == "topic"
            listed = http.get("/channels/orders/bindings").json()
            assert [(b["queue"], b["routing_key"]) for b in listed] == [
                ("billing", "order.#"),
                ("shipping", "order.*"),
            ]
            pulled = http.post("/queues/billing/pull", json={"max": 10}).json()["messages"]
            assert [(m["body"], m["destination"]) for m in pulled] == [
                ("persisted", "/topic/orders/order.created")
            ]
        conn, listener = subscribe(second, "/queue/shipping", "client-individual")
        [message] = listener.wait_for(1)
        assert message.body == "persisted"
        assert message.headers["destination"] == "/topic/orders/order.created"
        conn.ack(message.headers["ack"])
        # routing still works after the restart
        send_all(second, [("/topic/orders/order.paid", "after")])
        assert [m.body for m in listener.wait_for(2)] == ["persisted", "after"]
        conn.disconnect()
        assert second.stop() == 0
