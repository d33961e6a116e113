"""The six classic RabbitMQ tutorials, written with pika as they are taught (names made
unique per test), against the broker under test."""

from __future__ import annotations

from typing import Any

import pika

from tests.interop.amqp.clients import TIMEOUT, connect, consume_until, drain, unique
from tests.interop.amqp.conftest import AmqpBroker


def test_hello_world(amqp_broker: AmqpBroker) -> None:
    hello = unique("hello")
    with connect(amqp_broker) as sender:
        channel = sender.channel()
        channel.queue_declare(queue=hello)
        channel.basic_publish(exchange="", routing_key=hello, body="Hello World!")
    received: list[bytes] = []
    with connect(amqp_broker) as receiver:
        channel = receiver.channel()
        channel.queue_declare(queue=hello)

        def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            received.append(body)

        channel.basic_consume(queue=hello, on_message_callback=callback, auto_ack=True)
        consume_until(receiver, lambda: bool(received))
        channel.queue_delete(hello)
    assert received == [b"Hello World!"]


def test_work_queues_dispatch_fairly_and_redeliver_what_a_dead_worker_held(
    amqp_broker: AmqpBroker,
) -> None:
    task_queue = unique("task_queue")
    with connect(amqp_broker) as producer:
        channel = producer.channel()
        channel.queue_declare(queue=task_queue, durable=True)
        for n in range(1, 7):
            channel.basic_publish(
                exchange="",
                routing_key=task_queue,
                body=f"task {n}".encode(),
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
    slow, fast = connect(amqp_broker), connect(amqp_broker)
    try:
        slow_channel, fast_channel = slow.channel(), fast.channel()
        for channel in (slow_channel, fast_channel):
            channel.basic_qos(prefetch_count=1)
        # the slow worker takes a task and never acks it: with prefetch 1 it gets no other
        held = next(slow_channel.consume(task_queue, inactivity_timeout=TIMEOUT))
        assert held[2] == b"task 1"
        tasks = fast_channel.consume(task_queue, inactivity_timeout=TIMEOUT)
        done: list[bytes] = []
        for _ in range(5):
            method, _, body = next(tasks)
            done.append(body)
            fast_channel.basic_ack(delivery_tag=method.delivery_tag)
        assert done == [f"task {n}".encode() for n in range(2, 7)]
        slow.close()  # the worker dies: its unacked task goes back
        method, _, body = next(tasks)
        assert (body, method.redelivered) == (b"task 1", True)
        fast_channel.basic_ack(delivery_tag=method.delivery_tag)
        fast_channel.cancel()
        assert fast_channel.queue_delete(task_queue).method.message_count == 0
    finally:
        for connection in (slow, fast):
            if connection.is_open:
                connection.close()


def test_publish_subscribe_through_a_fanout_exchange(amqp_broker: AmqpBroker) -> None:
    logs = unique("logs")
    with connect(amqp_broker) as one, connect(amqp_broker) as two:
        queues = []
        for connection in (one, two):
            channel = connection.channel()
            channel.exchange_declare(exchange=logs, exchange_type="fanout")
            result = channel.queue_declare(queue="", exclusive=True)
            queue_name = result.method.queue
            assert queue_name.startswith("amq.gen-")
            channel.queue_bind(exchange=logs, queue=queue_name)
            queues.append((channel, queue_name))
        with connect(amqp_broker) as emitter:
            emitter.channel().basic_publish(exchange=logs, routing_key="", body="info: Hello!")
        for channel, queue_name in queues:
            assert [body for _, _, body in drain(channel, queue_name)] == [b"info: Hello!"]
        queues[0][0].exchange_delete(logs)


def test_routing_through_a_direct_exchange(amqp_broker: AmqpBroker) -> None:
    direct_logs = unique("direct_logs")
    with connect(amqp_broker) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange=direct_logs, exchange_type="direct")
        errors = channel.queue_declare(queue="", exclusive=True).method.queue
        channel.queue_bind(exchange=direct_logs, queue=errors, routing_key="error")
        everything = channel.queue_declare(queue="", exclusive=True).method.queue
        for severity in ("info", "warning", "error"):
            channel.queue_bind(exchange=direct_logs, queue=everything, routing_key=severity)
        for severity in ("info", "warning", "error", "debug"):
            channel.basic_publish(exchange=direct_logs, routing_key=severity, body=severity)
        assert [m.routing_key for m, _, _ in drain(channel, errors)] == ["error"]
        got = [body for _, _, body in drain(channel, everything)]
        assert got == [b"info", b"warning", b"error"]
        channel.exchange_delete(direct_logs)


TOPIC_KEYS = {
    "quick.orange.rabbit": {"Q1", "Q2"},
    "lazy.orange.elephant": {"Q1", "Q2"},
    "quick.orange.fox": {"Q1"},
    "lazy.brown.fox": {"Q2"},
    "lazy.pink.rabbit": {"Q2"},  # matches both of Q2's bindings: delivered once
    "quick.brown.fox": set(),
    "orange": set(),
    "quick.orange.new.rabbit": set(),
    "lazy.orange.new.rabbit": {"Q2"},
    "lazy": {"Q2"},  # '#' matches zero words
}


def test_topics_match_star_as_one_word_and_hash_as_zero_or_more(
    amqp_broker: AmqpBroker,
) -> None:
    topic_logs = unique("topic_logs")
    with connect(amqp_broker) as connection:
        channel = connection.channel()
        channel.exchange_declare(exchange=topic_logs, exchange_type="topic")
        bindings = {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]}
        queues = {}
        for name, keys in bindings.items():
            queues[name] = channel.queue_declare(queue="", exclusive=True).method.queue
            for key in keys:
                channel.queue_bind(exchange=topic_logs, queue=queues[name], routing_key=key)
        for key in TOPIC_KEYS:
            channel.basic_publish(exchange=topic_logs, routing_key=key, body=key)
        for name, queue in queues.items():
            got = [body.decode() for _, _, body in drain(channel, queue)]
            assert got == [key for key, to in TOPIC_KEYS.items() if name in to], name
        channel.exchange_delete(topic_logs)


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def test_rpc_with_reply_to_and_correlation_id(amqp_broker: AmqpBroker) -> None:
    rpc_queue = unique("rpc_queue")
    with connect(amqp_broker) as server, connect(amqp_broker) as client:
        server_channel = server.channel()
        server_channel.queue_declare(queue=rpc_queue)

        def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
            response = fib(int(body))
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,  # the client's exclusive queue
                properties=pika.BasicProperties(correlation_id=props.correlation_id),
                body=str(response),
            )
            ch.basic_ack(delivery_tag=method.delivery_tag)

        server_channel.basic_qos(prefetch_count=1)
        server_channel.basic_consume(queue=rpc_queue, on_message_callback=on_request)

        client_channel = client.channel()
        callback_queue = client_channel.queue_declare(queue="", exclusive=True).method.queue
        responses: dict[str, bytes] = {}

        def on_response(ch: Any, method: Any, props: Any, body: bytes) -> None:
            responses[props.correlation_id] = body

        client_channel.basic_consume(
            queue=callback_queue, on_message_callback=on_response, auto_ack=True
        )
        for n in (10, 20):
            client_channel.basic_publish(
                exchange="",
                routing_key=rpc_queue,
                properties=pika.BasicProperties(
                    reply_to=callback_queue, correlation_id=f"request-{n}"
                ),
                body=str(n),
            )
        for _ in range(100):
            server.process_data_events(time_limit=0.02)
            client.process_data_events(time_limit=0.02)
            if len(responses) == 2:
                break
        assert responses == {"request-10": b"55", "request-20": b"6765"}
        server_channel.queue_delete(rpc_queue)
