"""buzon's own rules over AMQP, against a real ``buzon serve`` (pika as the client): owners,
access keys, exclusive queues, and the same message seen from AMQP, STOMP and HTTP."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest

import stomp
from tests.interop.broker_process import BrokerProcess, broker_process

ADMIN = "rules-admin-password"
OWNER, OWNER_PASSWORD = "owner", "owner password 1"
OTHER, OTHER_PASSWORD = "other", "other password 1"
KEY = "the-access-key-1"
WAIT = 10.0


@pytest.fixture(scope="module")
def served() -> Iterator[BrokerProcess]:
    with broker_process(env={"BUZON_ADMIN_PASSWORD": ADMIN}) as process:
        with httpx.Client(base_url=f"{process.url}/api/v1", timeout=WAIT) as http:
            for name, password in ((OWNER, OWNER_PASSWORD), (OTHER, OTHER_PASSWORD)):
                made = http.post("/users", json={"username": name, "password": password})
                assert made.status_code == 201, made.text
        yield process
        assert process.stop() == 0


def _amqp(
    served: BrokerProcess, user: str, password: str, vhost: str = "/"
) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=served.host,
            port=served.amqp_port,
            virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=1,
            socket_timeout=WAIT,
            blocked_connection_timeout=WAIT,
        )
    )


@contextlib.contextmanager
def _http(served: BrokerProcess, user: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{served.url}/api/v1", timeout=WAIT) as client:
        login = client.post("/sessions", json={"username": user, "password": password})
        assert login.status_code == 201, login.text
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        yield client


def test_a_failed_login_is_an_authentication_error(served: BrokerProcess) -> None:
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        _amqp(served, OWNER, "wrong password 1")


def test_another_virtual_host_is_refused_clearly(served: BrokerProcess) -> None:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        _amqp(served, OWNER, OWNER_PASSWORD, vhost="/other")
    assert "(530)" in str(refused.value)
    assert "/other" in str(refused.value)


def test_only_the_owner_deletes_a_queue(served: BrokerProcess) -> None:
    owner = _amqp(served, OWNER, OWNER_PASSWORD)
    owner.channel().queue_declare("owned-queue", durable=True)
    other = _amqp(served, OTHER, OTHER_PASSWORD)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        other.channel().queue_delete("owned-queue")
    assert refused.value.reply_code == 403
    assert other.channel().queue_declare("owned-queue", passive=True).method.queue == "owned-queue"
    owner.channel().queue_delete("owned-queue")
    owner.close()
    other.close()


def test_a_protected_queue_needs_its_key_on_every_road(served: BrokerProcess) -> None:
    with _http(served, OWNER, OWNER_PASSWORD) as owner:
        made = owner.post("/queues", json={"name": "guarded", "access_key": KEY})
        assert made.status_code == 201, made.text
    other = _amqp(served, OTHER, OTHER_PASSWORD)
    channel = other.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.basic_consume("guarded", lambda *_: None)
    assert refused.value.reply_code == 403
    channel = other.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as wrong:
        channel.basic_consume("guarded", lambda *_: None, arguments={"x-access-key": "not-it-123"})
    assert wrong.value.reply_code == 403
    channel = other.channel()
    channel.confirm_delivery()
    for body in (b"with the key", b"the same properties again"):
        channel.basic_publish(
            "",
            "guarded",
            body,
            pika.BasicProperties(headers={"x-access-key": KEY, "kept": "yes"}),
        )
    for body in (b"with the key", b"the same properties again"):
        _, properties, got = channel.basic_get("guarded", auto_ack=True)
        assert got == body
        assert properties.headers == {"kept": "yes"}  # the key is never stored nor shown
    other.close()


def test_an_exclusive_queue_is_its_connections_and_goes_with_it(served: BrokerProcess) -> None:
    first = _amqp(served, OWNER, OWNER_PASSWORD)
    name = first.channel().queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-")
    second = _amqp(served, OWNER, OWNER_PASSWORD)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as locked:
        second.channel().basic_consume(name, lambda *_: None)
    assert locked.value.reply_code == 405
    replies = second.channel()
    replies.basic_publish("", name, b"an RPC reply")  # others may still publish to it
    assert first.channel().basic_get(name, auto_ack=True)[2] == b"an RPC reply"
    first.close()
    with _http(served, OWNER, OWNER_PASSWORD) as http:
        for _ in range(100):
            if http.get(f"/queues/{name}").status_code == 404:
                break
            time.sleep(0.05)
        assert http.get(f"/queues/{name}").status_code == 404
    second.close()


def test_one_message_seen_from_amqp_stomp_and_http(served: BrokerProcess) -> None:
    amqp = _amqp(served, OWNER, OWNER_PASSWORD)
    channel = amqp.channel()
    channel.queue_declare("crossing", durable=True)
    channel.confirm_delivery()
    properties = pika.BasicProperties(
        content_type="application/json",
        correlation_id="c-1",
        reply_to="answers",
        delivery_mode=2,
        headers={"count": 5, "flag": True, "name": "x"},
    )
    channel.basic_publish("", "crossing", b'{"n": 1}', properties)
    with _http(served, OWNER, OWNER_PASSWORD) as http:
        peeked = http.get("/queues/crossing/messages", params={"limit": 1})
        assert peeked.status_code == 200, peeked.text
        shown = peeked.json()["messages"][0]["headers"]
        assert shown["content-type"] == "application/json"
        assert (shown["count"], shown["flag"], shown["name"]) == ("5", "true", "x")

    received: list[stomp.utils.Frame] = []
    listener = stomp.ConnectionListener()
    listener.on_message = received.append
    conn = stomp.Connection12([(served.host, served.port)])
    conn.set_listener("got", listener)
    conn.connect(OWNER, OWNER_PASSWORD, wait=True)
    conn.subscribe("/queue/crossing", id="1", ack="auto")
    for _ in range(200):
        if received:
            break
        time.sleep(0.05)
    assert [frame.body for frame in received] == ['{"n": 1}']
    headers = received[0].headers
    assert (headers["correlation-id"], headers["reply-to"]) == ("c-1", "answers")
    assert headers["persistent"] == "true"
    decoded = base64.b64decode(headers["amqp-properties"])
    assert decoded  # the exact property list, for AMQP consumers
    conn.unsubscribe(id="1")  # else the message comes back to this subscriber
    conn.send(
        "/queue/crossing", "from stomp", headers={"content-type": "text/plain", "trace": "t-9"}
    )
    conn.disconnect()

    _, back, body = _get(channel, "crossing")
    assert body == b"from stomp"
    assert back.content_type == "text/plain"
    assert back.headers == {"trace": "t-9"}
    amqp.close()


def _get(channel: Any, queue: str) -> tuple[Any, Any, bytes]:
    for _ in range(200):
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, properties, body
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue}")


def test_a_changed_key_is_needed_again_on_a_channel_opened_after_the_change(
    served: BrokerProcess,
) -> None:
    with _http(served, OWNER, OWNER_PASSWORD) as owner:
        made = owner.post("/queues", json={"name": "rekeyed", "access_key": KEY})
        assert made.status_code == 201, made.text
        other = _amqp(served, OTHER, OTHER_PASSWORD)
        first = other.channel()
        first.queue_declare("rekeyed", passive=True, arguments={"x-access-key": KEY})
        assert first.basic_get("rekeyed", auto_ack=True)[0] is None  # allowed: empty
        first.close()  # no channel of this connection holds the grant now
        changed = owner.patch("/queues/rekeyed", json={"access_key": "the-new-key-22"})
        assert changed.status_code == 200, changed.text
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        other.channel().basic_get("rekeyed", auto_ack=True)
    assert refused.value.reply_code == 403
    other.close()


def test_over_the_memory_budget_a_publisher_is_told_to_wait_then_to_go_on() -> None:
    env = {"BUZON_ADMIN_PASSWORD": ADMIN}
    with broker_process("--storage", "memory", "--max-queued-bytes", "200000", env=env) as served:
        publisher = _amqp(served, "admin", ADMIN)
        notices: list[str] = []
        publisher.add_on_connection_blocked_callback(lambda *_: notices.append("blocked"))
        publisher.add_on_connection_unblocked_callback(lambda *_: notices.append("unblocked"))
        channel = publisher.channel()
        channel.queue_declare("budget")
        for _ in range(4):  # 256 KiB held: over the 200 KB budget
            channel.basic_publish("", "budget", b"x" * 65536)
        _until(publisher, lambda: notices == ["blocked"])
        draining = _amqp(served, "admin", ADMIN)
        consumer = draining.channel()
        taken = 0
        deadline = time.monotonic() + WAIT
        while taken < 4 and time.monotonic() < deadline:
            method, _, _ = consumer.basic_get("budget", auto_ack=True)
            taken += method is not None
        assert taken == 4
        _until(publisher, lambda: notices == ["blocked", "unblocked"])
        draining.close()
        publisher.close()
        assert served.stop() == 0


def _until(connection: pika.BlockingConnection, done: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert done()


def test_disabling_a_user_closes_their_amqp_connection_with_no_channel_open() -> None:
    env = {"BUZON_ADMIN_PASSWORD": ADMIN}
    with broker_process(env=env) as served:
        with httpx.Client(base_url=f"{served.url}/api/v1", timeout=WAIT) as http:
            made = http.post("/users", json={"username": "bob", "password": "bob password 1"})
            assert made.status_code == 201, made.text
        bob = _amqp(served, "bob", "bob password 1")  # logged in, no channel yet
        with _http(served, "admin", ADMIN) as admin:
            assert admin.patch("/users/bob", json={"disabled": True}).status_code == 200
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ended:
            _serve_for(bob, 2.0)  # at once: not at the next revalidation (every 5 s)
        assert ended.value.reply_code == 320
        assert served.stop() == 0


def _serve_for(connection: pika.BlockingConnection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
