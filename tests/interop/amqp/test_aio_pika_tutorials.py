"""The six classic RabbitMQ tutorials, written with aio-pika as its documentation teaches
them (names made unique per test), against the broker under test."""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from tests.interop.amqp.clients import TIMEOUT, unique
from tests.interop.amqp.test_pika_tutorials import TOPIC_KEYS, fib


async def ready_bodies(queue: AbstractQueue) -> list[bytes]:
    """What ``queue`` holds, taken one ``basic.get`` at a time (publishes were confirmed,
    so everything routed is there)."""
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=TIMEOUT)) is not None:
        bodies.append(message.body)
    return bodies


async def test_hello_world(amqp_url: str) -> None:
    hello = unique("hello")
    async with asyncio.timeout(TIMEOUT):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(hello, auto_delete=True)
            await channel.default_exchange.publish(
                aio_pika.Message(body=b"Hello World!"), routing_key=hello
            )
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        assert message.body == b"Hello World!"
                        break


async def test_work_queues_with_prefetch_and_acks(amqp_url: str) -> None:
    task_queue = unique("task_queue")
    async with asyncio.timeout(2 * TIMEOUT):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(task_queue, durable=True)
            for n in range(1, 5):
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        f"task {n}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=task_queue,
                )
            slow, fast = await connection.channel(), await connection.channel()
            held: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            done: list[bytes] = []
            three, four = asyncio.Event(), asyncio.Event()

            async def work(message: AbstractIncomingMessage) -> None:
                async with message.process():
                    done.append(message.body)
                if len(done) >= 3:
                    (three if len(done) == 3 else four).set()

            await slow.set_qos(prefetch_count=1)
            await fast.set_qos(prefetch_count=1)
            slow_queue = await slow.declare_queue(task_queue, durable=True)
            await slow_queue.consume(held.put)  # takes one task and never acks it
            first = await held.get()
            fast_queue = await fast.declare_queue(task_queue, durable=True)
            await fast_queue.consume(work)
            await three.wait()
            assert (first.body, done) == (b"task 1", [b"task 2", b"task 3", b"task 4"])
            await slow.close()  # the unacked task goes back
            await four.wait()
            assert done[3] == b"task 1"
            await queue.delete(if_unused=False, if_empty=False)


async def test_publish_subscribe_through_a_fanout_exchange(amqp_url: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            logs = await channel.declare_exchange(unique("logs"), aio_pika.ExchangeType.FANOUT)
            queues = [await channel.declare_queue(exclusive=True) for _ in range(2)]
            for queue in queues:
                await queue.bind(logs)
            await logs.publish(aio_pika.Message(b"info: Hello!"), routing_key="info")
            for queue in queues:
                assert await ready_bodies(queue) == [b"info: Hello!"]
            await logs.delete()


async def test_routing_through_a_direct_exchange(amqp_url: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            direct = await channel.declare_exchange(
                unique("direct_logs"), aio_pika.ExchangeType.DIRECT
            )
            errors = await channel.declare_queue(exclusive=True)
            await errors.bind(direct, routing_key="error")
            everything = await channel.declare_queue(exclusive=True)
            for severity in ("info", "warning", "error"):
                await everything.bind(direct, routing_key=severity)
            for severity in ("info", "warning", "error", "debug"):
                await direct.publish(aio_pika.Message(severity.encode()), routing_key=severity)
            assert await ready_bodies(errors) == [b"error"]
            assert await ready_bodies(everything) == [b"info", b"warning", b"error"]
            await direct.delete()


async def test_topics(amqp_url: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            topic = await channel.declare_exchange(
                unique("topic_logs"), aio_pika.ExchangeType.TOPIC
            )
            bindings = {"Q1": ["*.orange.*"], "Q2": ["*.*.rabbit", "lazy.#"]}
            queues = {}
            for name, keys in bindings.items():
                queues[name] = await channel.declare_queue(exclusive=True)
                for key in keys:
                    await queues[name].bind(topic, routing_key=key)
            for key in TOPIC_KEYS:
                await topic.publish(aio_pika.Message(key.encode()), routing_key=key)
            for name, queue in queues.items():
                expected = [key.encode() for key, to in TOPIC_KEYS.items() if name in to]
                assert await ready_bodies(queue) == expected, name
            await topic.delete()


async def test_rpc_with_reply_to_and_correlation_id(amqp_url: str) -> None:
    rpc_name = unique("rpc_queue")
    async with asyncio.timeout(TIMEOUT):
        server, client = (
            await aio_pika.connect_robust(amqp_url),
            await aio_pika.connect_robust(amqp_url),
        )
        async with server, client:
            server_channel = await server.channel()
            exchange = server_channel.default_exchange
            rpc_queue = await server_channel.declare_queue(rpc_name, auto_delete=True)

            async def on_request(message: AbstractIncomingMessage) -> None:
                async with message.process():
                    assert message.reply_to is not None
                    await exchange.publish(
                        aio_pika.Message(
                            body=str(fib(int(message.body))).encode(),
                            correlation_id=message.correlation_id,
                        ),
                        routing_key=message.reply_to,
                    )

            await rpc_queue.consume(on_request)
            client_channel = await client.channel()
            callback_queue = await client_channel.declare_queue(exclusive=True)
            futures: dict[str, asyncio.Future[bytes]] = {}

            async def on_response(message: AbstractIncomingMessage) -> None:
                assert message.correlation_id is not None
                futures.pop(message.correlation_id).set_result(message.body)

            await callback_queue.consume(on_response, no_ack=True)
            loop = asyncio.get_running_loop()
            for n in (10, 20):
                futures[f"call-{n}"] = loop.create_future()
            waiting = dict(futures)
            for n in (10, 20):
                await client_channel.default_exchange.publish(
                    aio_pika.Message(
                        str(n).encode(), correlation_id=f"call-{n}", reply_to=callback_queue.name
                    ),
                    routing_key=rpc_name,
                )
            assert [await waiting[f"call-{n}"] for n in (10, 20)] == [b"55", b"6765"]
