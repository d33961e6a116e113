"""Idempotent publish against a real ``buzon serve``: a retried publish is enqueued once,
over STOMP and HTTP alike, and the window survives a kill -9."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.interop.broker_process import BrokerProcess, broker_process
from tests.interop.test_receipts import RawClient, header, stopped

PASSWORD = "dedup-password-1"
TIMEOUT = 10.0


def login(broker: BrokerProcess) -> str:
    """A bearer token (also a STOMP passcode)."""
    response = httpx.post(
        f"{broker.url}/api/v1/sessions",
        json={"username": "admin", "password": PASSWORD},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": PASSWORD}) as process:
        yield process
        assert process.stop() == 0


@pytest.fixture(scope="module")
def token(broker: BrokerProcess) -> str:
    return login(broker)


class Api:
    """The HTTP API as one user."""

    def __init__(self, broker: BrokerProcess, token: str) -> None:
        self.base = f"{broker.url}/api/v1"
        self.metrics = f"{broker.url}/metrics"
        self.auth = {"Authorization": f"Bearer {token}"}

    def create_queue(self, name: str, **policy: Any) -> None:
        response = httpx.post(
            f"{self.base}/queues",
            json={"name": name, "policy": policy},
            headers=self.auth,
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text

    def publish(self, queue: str, body: str, key: str | None = None) -> httpx.Response:
        headers = {name.encode(): value.encode() for name, value in self.auth.items()}
        if key is not None:
            headers[b"Idempotency-Key"] = key.encode()  # UTF-8 on the wire, as clients send
        return httpx.post(
            f"{self.base}/queues/{queue}/messages",
            json={"body": body},
            headers=headers,
            timeout=TIMEOUT,
        )

    def waiting(self, queue: str) -> list[tuple[str, str | None]]:
        """``(message id, body)`` of the messages waiting in ``queue``, oldest first."""
        response = httpx.get(
            f"{self.base}/queues/{queue}/messages",
            params={"limit": 100},
            headers=self.auth,
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        return [(m["message_id"], m["body"]) for m in response.json()["messages"]]

    def deduplicated(self, queue: str) -> float:
        metrics = httpx.get(self.metrics, headers=self.auth, timeout=TIMEOUT).text
        wanted = f'buzon_messages_deduplicated_total{{kind="queue",name="{queue}"}} '
        for line in metrics.splitlines():
            if line.startswith(wanted):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no deduplicated counter for {queue}")


def send(client: RawClient, queue: str, body: str, key: str, receipt: str) -> None:
    client.send(
        f"SEND\ndestination:/queue/{queue}\nidempotency-key:{key}\nreceipt:{receipt}\n\n"
        f"{body}\0".encode()
    )


def test_a_retry_after_a_lost_receipt_gives_exactly_one_message(
    broker: BrokerProcess, token: str
) -> None:
    api = Api(broker, token)
    lost = RawClient(broker, token)
    send(lost, "payments", "pay 10", "payment-41", "r1")
    lost.close()  # the publisher never sees its receipt: it cannot know whether it got in
    retry = RawClient(broker, token)
    send(retry, "payments", "pay 10", "payment-41", "r2")
    assert header(retry.frame(), "receipt-id") == "r2"
    retry.close()
    assert [body for _, body in api.waiting("payments")] == ["pay 10"]
    assert api.deduplicated("payments") == 1


def test_a_duplicate_arriving_while_the_original_is_written_waits_for_it(
    broker: BrokerProcess, token: str
) -> None:
    api = Api(broker, token)
    first, second = RawClient(broker, token), RawClient(broker, token)
    with stopped(broker):  # both SENDs are read in one go, the first write still pending
        send(first, "together", "once", "k", "a")
        send(second, "together", "once", "k", "b")
    assert header(first.frame(), "receipt-id") == "a"
    assert header(second.frame(), "receipt-id") == "b"
    first.close()
    second.close()
    assert [body for _, body in api.waiting("together")] == ["once"]


def test_the_same_key_on_another_queue_is_another_message(
    broker: BrokerProcess, token: str
) -> None:
    api = Api(broker, token)
    client = RawClient(broker, token)
    send(client, "left", "l", "shared-key", "1")
    send(client, "right", "r", "shared-key", "2")
    assert [header(client.frame(), "receipt-id") for _ in range(2)] == ["1", "2"]
    client.close()
    assert [body for _, body in api.waiting("left")] == ["l"]
    assert [body for _, body in api.waiting("right")] == ["r"]


def test_http_answers_201_then_200_with_the_same_message_id(
    broker: BrokerProcess, token: str
) -> None:
    api = Api(broker, token)
    api.create_queue("invoices")
    first = api.publish("invoices", "invoice 9", key="invoice-9")
    again = api.publish("invoices", "invoice 9", key="invoice-9")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert api.waiting("invoices") == [(first.json()["message_id"], "invoice 9")]
    assert api.publish("invoices", "no key").status_code == 201


def test_stomp_and_http_publishes_share_keys(broker: BrokerProcess, token: str) -> None:
    api = Api(broker, token)
    api.create_queue("mixed")
    client = RawClient(broker, token)
    send(client, "mixed", "from stomp", "k1", "1")
    assert header(client.frame(), "receipt-id") == "1"
    ((stomp_id, _),) = api.waiting("mixed")
    repeated = api.publish("mixed", "from http", key="k1")
    assert (repeated.status_code, repeated.json()["message_id"]) == (200, stomp_id)
    assert api.publish("mixed", "from http", key="k2").status_code == 201
    send(client, "mixed", "from stomp", "k2", "2")
    assert header(client.frame(), "receipt-id") == "2"
    client.close()
    assert [body for _, body in api.waiting("mixed")] == ["from stomp", "from http"]


def test_an_oversized_key_is_an_error_naming_the_header_and_nothing_is_enqueued(
    broker: BrokerProcess, token: str
) -> None:
    api = Api(broker, token)
    api.create_queue("strict")
    bystander = RawClient(broker, token)
    refused = RawClient(broker, token)
    send(refused, "strict", "too long", "k" * 257, "1")
    error = refused.frame()
    assert error.startswith(b"ERROR\n")
    assert b"idempotency-key" in error
    assert refused.frame() == b""  # STOMP ends a connection after an ERROR
    refused.close()
    answer = api.publish("strict", "too long", key="k" * 257)
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["error"]["detail"]
    assert api.waiting("strict") == []
    send(bystander, "strict", "fine", "k" * 256, "2")  # everyone else is served as before
    assert header(bystander.frame(), "receipt-id") == "2"
    bystander.close()
    assert [body for _, body in api.waiting("strict")] == ["fine"]


def test_a_utf8_key_is_the_same_key_over_http_and_stomp(broker: BrokerProcess, token: str) -> None:
    api = Api(broker, token)
    api.create_queue("accented")
    key = "é" * 100  # 200 bytes: within the bound
    first = api.publish("accented", "pay", key=key)
    assert first.status_code == 201, first.text
    stomp = RawClient(broker, token)
    send(stomp, "accented", "pay", key, "1")
    assert header(stomp.frame(), "receipt-id") == "1"
    stomp.close()
    assert [body for _, body in api.waiting("accented")] == ["pay"]  # one message


def test_after_the_window_the_key_publishes_again(broker: BrokerProcess, token: str) -> None:
    api = Api(broker, token)
    api.create_queue("brief", dedup_window_ms=300)
    assert api.publish("brief", "1", key="k").status_code == 201
    assert api.publish("brief", "1", key="k").status_code == 200
    time.sleep(0.4)
    assert api.publish("brief", "2", key="k").status_code == 201
    assert [body for _, body in api.waiting("brief")] == ["1", "2"]


def test_the_window_survives_a_kill_9(tmp_path: Path) -> None:
    args = ("--data-dir", str(tmp_path / "data"))
    env = {"BUZON_ADMIN_PASSWORD": PASSWORD}
    with broker_process(*args, env=env) as first_run:
        token = login(first_run)
        client = RawClient(first_run, token)
        send(client, "ledger", "entry", "entry-1", "1")
        assert header(client.frame(), "receipt-id") == "1"  # a receipt: message and key on disk
        client.close()
        (original,) = Api(first_run, token).waiting("ledger")
        assert first_run.stop(signal.SIGKILL) == -signal.SIGKILL
    with broker_process(*args, env=env) as second_run:
        token = login(second_run)
        api = Api(second_run, token)
        client = RawClient(second_run, token)
        send(client, "ledger", "entry", "entry-1", "2")
        assert header(client.frame(), "receipt-id") == "2"
        client.close()
        repeated = api.publish("ledger", "entry", key="entry-1")
        assert (repeated.status_code, repeated.json()["message_id"]) == (200, original[0])
        assert api.waiting("ledger") == [original]
        assert second_run.stop() == 0
