"""Queue arguments and consumer flow control as pika and Celery use them, as RabbitMQ 3.10
behaves: a re-declare with other arguments refused (406), message TTL, length limits with
either overflow, priorities, a prefetch raised while consuming, basic.recover."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.interop.amqp.clients import TIMEOUT, connect, consume_until, unique
from tests.interop.amqp.conftest import AmqpBroker


@pytest.fixture
def channel(amqp_broker: AmqpBroker) -> Iterator[Any]:
    """A channel in confirm mode: a publish has been routed once it returns."""
    with connect(amqp_broker) as connection:
        opened = connection.channel()
        opened.confirm_delivery()
        yield opened


def bodies(channel: Any, queue: str) -> list[bytes]:
    got = []
    while (body := channel.basic_get(queue, auto_ack=True)[2]) is not None:
        got.append(body)
    return got


def test_a_redeclare_with_other_arguments_closes_the_channel_406(
    amqp_broker: AmqpBroker, channel: Any
) -> None:
    queue = unique("declared")
    channel.queue_declare(queue, arguments={"x-max-length": 10}, auto_delete=True)
    channel.queue_declare(queue, arguments={"x-max-length": 10}, auto_delete=True)  # same: ok
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.queue_declare(queue, arguments={"x-max-length": 20}, auto_delete=True)
    assert refused.value.reply_code == 406
    with connect(amqp_broker) as other:
        other.channel().queue_delete(queue)


def test_message_ttl_zero_drops_what_no_consumer_takes_at_once(channel: Any) -> None:
    queue = channel.queue_declare("", exclusive=True, arguments={"x-message-ttl": 0})
    name = queue.method.queue
    channel.basic_publish("", name, b"expired")
    channel.basic_publish("", name, b"expired too", pika.BasicProperties(expiration="0"))
    assert channel.queue_declare(name, passive=True).method.message_count == 0


def test_max_length_drops_the_oldest_or_refuses_the_newest(channel: Any) -> None:
    head = channel.queue_declare("", exclusive=True, arguments={"x-max-length": 2})
    refuse = channel.queue_declare(
        "", exclusive=True, arguments={"x-max-length": 2, "x-overflow": "reject-publish"}
    )
    for n in range(1, 4):
        channel.basic_publish("", head.method.queue, f"m{n}".encode())
    assert bodies(channel, head.method.queue) == [b"m2", b"m3"]
    for n in range(1, 3):
        channel.basic_publish("", refuse.method.queue, f"m{n}".encode())
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", refuse.method.queue, b"m3")
    assert bodies(channel, refuse.method.queue) == [b"m1", b"m2"]


def test_max_priority_delivers_higher_priorities_first(channel: Any) -> None:
    queue = channel.queue_declare("", exclusive=True, arguments={"x-max-priority": 10})
    name = queue.method.queue
    for priority in (1, 9, 5, 9):
        body = f"p{priority}".encode()
        channel.basic_publish("", name, body, pika.BasicProperties(priority=priority))
    assert bodies(channel, name) == [b"p9", b"p9", b"p5", b"p1"]


def test_a_prefetch_raised_while_consuming_applies_at_once(
    amqp_broker: AmqpBroker, channel: Any
) -> None:
    name = channel.queue_declare("", exclusive=True).method.queue
    for n in range(5):
        channel.basic_publish("", name, f"m{n}".encode())
    held: list[Any] = []
    # global: the channel's limit, as Celery asks of RabbitMQ 3 (RabbitMQ applies a
    # per-consumer one only to consumers that start after it; the issue wants it at once)
    channel.basic_qos(prefetch_count=1, global_qos=True)
    channel.basic_consume(name, lambda ch, method, props, body: held.append(method))
    connection = channel.connection
    consume_until(connection, lambda: len(held) == 1)
    connection.process_data_events(time_limit=0.2)
    assert len(held) == 1  # the prefetch holds the rest back
    channel.basic_qos(prefetch_count=3, global_qos=True)  # Celery, for a countdown task
    consume_until(connection, lambda: len(held) == 3)
    channel.basic_ack(held[-1].delivery_tag, multiple=True)
    consume_until(connection, lambda: len(held) == 5)


def test_recover_redelivers_what_is_unacked(channel: Any) -> None:
    name = channel.queue_declare("", exclusive=True).method.queue
    for n in range(2):
        channel.basic_publish("", name, f"m{n}".encode())
    received: list[tuple[bytes, bool]] = []
    channel.basic_consume(
        name, lambda ch, method, props, body: received.append((body, method.redelivered))
    )
    consume_until(channel.connection, lambda: len(received) == 2, TIMEOUT)
    channel.basic_recover(requeue=True)
    consume_until(channel.connection, lambda: len(received) == 4, TIMEOUT)
    assert received == [(b"m0", False), (b"m1", False), (b"m0", True), (b"m1", True)]
