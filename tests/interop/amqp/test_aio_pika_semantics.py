"""What aio-pika (aiormq, pamqp) applications rely on beyond the tutorials, as RabbitMQ 3.10
behaves: confirms, a mandatory return ahead of its confirm, basic.get counts, requeue,
channel errors with the reply codes aiormq maps to its exceptions, typed header tables
(floats and decimals too), exclusive queues, a refused login."""

from __future__ import annotations

import asyncio
import datetime
import decimal
from collections.abc import AsyncIterator

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pamqp import commands
from pamqp.common import FieldTable

from tests.interop.amqp.clients import TIMEOUT, unique
from tests.interop.amqp.conftest import AmqpBroker


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    async with asyncio.timeout(TIMEOUT):
        opened = await aio_pika.connect_robust(amqp_url)
    async with opened:
        async with asyncio.timeout(2 * TIMEOUT):
            yield opened


async def test_confirms_and_delivery_tags_starting_at_one(
    connection: AbstractRobustConnection,
) -> None:
    channel = await connection.channel()  # publisher confirms: aio-pika's default
    queue = await channel.declare_queue(exclusive=True)
    for n in range(20):
        confirmed = await channel.default_exchange.publish(
            aio_pika.Message(f"m{n}".encode()), routing_key=queue.name
        )
        assert isinstance(confirmed, commands.Basic.Ack)
    tags = []
    async with queue.iterator() as messages:
        async for message in messages:
            tags.append(message.delivery_tag)
            await message.ack()
            if len(tags) == 20:
                break
    assert tags == list(range(1, 21))


async def test_mandatory_unroutable_is_returned_312_before_its_confirm(
    connection: AbstractRobustConnection,
) -> None:
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        unique("nowhere"), aio_pika.ExchangeType.DIRECT, auto_delete=True
    )
    # aiormq resolves the publish with whichever came first: the return, or the ack
    returned = await exchange.publish(aio_pika.Message(b"lost"), "no.binding", mandatory=True)
    assert isinstance(returned, aiormq.abc.DeliveredMessage)
    assert isinstance(returned.delivery, commands.Basic.Return)
    assert (returned.delivery.reply_code, returned.delivery.reply_text) == (312, "NO_ROUTE")
    assert returned.body == b"lost"
    dropped = await exchange.publish(aio_pika.Message(b"gone"), "no.binding", mandatory=False)
    assert isinstance(dropped, commands.Basic.Ack)


async def test_basic_get_counts_and_nack_requeues_in_place(
    connection: AbstractRobustConnection,
) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    for n in range(1, 4):
        await channel.default_exchange.publish(
            aio_pika.Message(f"m{n}".encode()), routing_key=queue.name
        )
    first = await queue.get(timeout=TIMEOUT)
    assert (first.body, first.message_count) == (b"m1", 2)
    await first.nack(requeue=True)
    again = await queue.get(timeout=TIMEOUT)
    assert (again.body, again.redelivered, again.message_count) == (b"m1", True, 2)
    await again.reject(requeue=True)
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=TIMEOUT)) is not None:
        bodies.append((message.body, message.redelivered))
    assert bodies == [(b"m1", True), (b"m2", False), (b"m3", False)]


async def test_passive_declare_of_a_missing_queue_closes_only_the_channel(
    connection: AbstractRobustConnection,
) -> None:
    channel = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.declare_queue(unique("missing"), passive=True)
    assert not connection.is_closed
    other = await connection.channel()
    queue = await other.declare_queue(exclusive=True)
    assert (await other.declare_queue(queue.name, passive=True)).name == queue.name


HEADERS: FieldTable = {
    "float": 1.5,
    "small": 5,
    "int64": 2**40,
    "negative": -(2**35),
    "true": True,
    "text": "día",
    "decimal": decimal.Decimal("3.14"),
    "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "nested": {"n": {"m": 1}},
    "array": [1, None, "x", [2, {"k": False}]],
    "void": None,
}


async def test_typed_header_tables_round_trip(connection: AbstractRobustConnection) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    sent = aio_pika.Message(
        b"{}",
        headers=HEADERS,
        content_type="application/json",
        correlation_id="corr-1",
        priority=3,
        expiration=60,
        message_id="message-1",
        timestamp=datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC),
        type="kind",
        app_id="tests",
    )
    await channel.default_exchange.publish(sent, routing_key=queue.name)
    got = await queue.get(no_ack=True, timeout=TIMEOUT)
    assert got.headers == HEADERS
    assert (got.correlation_id, got.priority, got.message_id) == ("corr-1", 3, "message-1")
    assert (got.type, got.app_id, got.content_type) == ("kind", "tests", "application/json")
    assert got.timestamp == datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC)
    assert got.expiration == 60


async def ignore(message: AbstractIncomingMessage) -> None:
    pass


async def test_exclusive_queue_is_locked_to_its_connection_but_open_to_publishers(
    amqp_url: str, connection: AbstractRobustConnection
) -> None:
    owner = await connection.channel()
    queue = await owner.declare_queue(exclusive=True)
    async with await aio_pika.connect(amqp_url) as other:
        locked = await (await other.channel()).get_queue(queue.name, ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelLockedResource):
            await locked.consume(ignore)
        publisher = await other.channel()
        await publisher.default_exchange.publish(aio_pika.Message(b"reply"), queue.name)
    got = await queue.get(no_ack=True, timeout=TIMEOUT)
    assert got.body == b"reply"


async def test_a_failed_login_is_access_refused(amqp_broker: AmqpBroker) -> None:
    wrong = amqp_broker.but(password="not the password")
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError, match="ACCESS_REFUSED"):
        async with asyncio.timeout(TIMEOUT):
            await aio_pika.connect(wrong.url)
