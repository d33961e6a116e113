"""What pika applications rely on beyond the tutorials, as RabbitMQ 3.10 behaves: confirms,
mandatory returns, basic.get counts, requeue and dead-lettering, errors that close a channel
or a connection with the reply codes clients expect, transactions, message properties and
typed header tables, exclusive queues, login and virtual host refusals."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.interop.amqp.clients import TIMEOUT, connect, parameters, unique
from tests.interop.amqp.conftest import AmqpBroker

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


@pytest.fixture
def connection(amqp_broker: AmqpBroker) -> Iterator[Any]:
    with connect(amqp_broker) as opened:
        yield opened


@pytest.fixture
def queue(connection: Any) -> Iterator[str]:
    """A fresh durable queue, deleted afterwards."""
    name = unique("semantics")
    channel = connection.channel()
    channel.queue_declare(name, durable=True)
    yield name
    if connection.is_open:
        connection.channel().queue_delete(name)


def ready(connection: Any, queue: str) -> int:
    """Messages ready in ``queue``, as a passive declare counts them."""
    channel = connection.channel()
    count: int = channel.queue_declare(queue, passive=True).method.message_count
    channel.close()
    return count


def test_confirms_and_delivery_tags_starting_at_one(connection: Any, queue: str) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    for n in range(50):
        channel.basic_publish("", queue, f"m{n}".encode(), PERSISTENT)  # raises unless acked
    consumer = connection.channel()
    consumer.basic_qos(prefetch_count=100)
    tags = []
    for method, _, body in consumer.consume(queue, inactivity_timeout=TIMEOUT):
        tags.append(method.delivery_tag)
        assert body == f"m{len(tags) - 1}".encode()
        if len(tags) == 50:
            break
    assert tags == list(range(1, 51))
    consumer.basic_ack(delivery_tag=50, multiple=True)
    consumer.cancel()
    assert ready(connection, queue) == 0


def test_mandatory_unroutable_is_returned_312_before_its_confirm(connection: Any) -> None:
    exchange = unique("nowhere")
    channel = connection.channel()
    channel.exchange_declare(exchange, exchange_type="direct", auto_delete=True)
    channel.confirm_delivery()
    # pika's blocking publish raises UnroutableError only if the return came before the ack
    with pytest.raises(pika.exceptions.UnroutableError) as unroutable:
        channel.basic_publish(exchange, "no.binding", b"lost", mandatory=True)
    (returned,) = unroutable.value.messages
    assert (returned.method.reply_code, returned.method.reply_text) == (312, "NO_ROUTE")
    assert (returned.method.exchange, returned.method.routing_key) == (exchange, "no.binding")
    assert returned.body == b"lost"
    channel.basic_publish(exchange, "no.binding", b"dropped")  # not mandatory: confirmed
    assert channel.is_open
    channel.exchange_delete(exchange)


def test_publish_to_a_missing_exchange_closes_the_channel_404(connection: Any) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.basic_publish(unique("missing"), "key", b"body")
    assert closed.value.reply_code == 404
    assert connection.is_open


def test_basic_get_counts_what_is_left(connection: Any, queue: str) -> None:
    channel = connection.channel()
    for n in range(3):
        channel.basic_publish("", queue, f"m{n}".encode())
    left = []
    for n in range(3):
        method, _, body = channel.basic_get(queue, auto_ack=True)
        assert body == f"m{n}".encode()
        left.append(method.message_count)
    assert left == [2, 1, 0]
    assert channel.basic_get(queue, auto_ack=True) == (None, None, None)


def test_nack_and_reject_requeue_at_the_original_place_redelivered(
    connection: Any, queue: str
) -> None:
    channel = connection.channel()
    for n in range(1, 4):
        channel.basic_publish("", queue, f"m{n}".encode())
    first, _, _ = channel.basic_get(queue)
    second, _, _ = channel.basic_get(queue)
    channel.basic_nack(first.delivery_tag, requeue=True)
    again, _, body = channel.basic_get(queue)
    assert (body, again.redelivered) == (b"m1", True)  # ahead of m3, where it was
    channel.basic_reject(second.delivery_tag, requeue=True)
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(2)]
    assert [(body, method.redelivered) for method, _, body in got] == [
        (b"m2", True),
        (b"m3", False),
    ]
    channel.basic_ack(again.delivery_tag)


def test_a_multiple_nack_covers_every_consumer_of_the_channel_up_to_its_tag(
    connection: Any,
) -> None:
    names = [unique("multiple-a"), unique("multiple-b")]
    channel = connection.channel()
    for name in names:
        channel.queue_declare(name, auto_delete=True)
        for n in range(3):
            channel.basic_publish("", name, f"{name[-1]}{n}".encode())
    held: list[tuple[int, str]] = []  # (delivery tag, queue), in delivery order
    for name in names:  # each queue's gets are its own consumer in the engine
        for _ in range(3):
            method, _, _ = channel.basic_get(name)
            held.append((method.delivery_tag, name))
    individually = held[1][0]
    channel.basic_ack(individually)  # a gap: the multiple nack below skips it
    middle = held[3][0]
    channel.basic_nack(middle, multiple=True, requeue=True)
    # the first queue's other two came back; the second's first one did too
    back = {name: ready(connection, name) for name in names}
    assert back == {names[0]: 2, names[1]: 1}
    channel.basic_ack(held[-1][0], multiple=True)  # the rest: none comes back
    assert {name: ready(connection, name) for name in names} == back
    for name in names:
        method, _, _ = channel.basic_get(name, auto_ack=True)
        assert method is not None
        assert method.redelivered


def test_reject_dead_letters_keeping_the_routing_key_with_x_death(connection: Any) -> None:
    work, dead = unique("work"), unique("dead")
    channel = connection.channel()
    channel.exchange_declare(work, exchange_type="direct", auto_delete=True)
    channel.exchange_declare(dead, exchange_type="topic", auto_delete=True)
    kept = channel.queue_declare("", exclusive=True, arguments={"x-dead-letter-exchange": dead})
    renamed = channel.queue_declare(
        "",
        exclusive=True,
        arguments={"x-dead-letter-exchange": dead, "x-dead-letter-routing-key": "moved"},
    )
    graveyard = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(graveyard, dead, routing_key="#")
    for source in (kept.method.queue, renamed.method.queue):
        channel.queue_bind(source, work, routing_key="task.a")
    headers = {"trace": "t-1"}
    channel.basic_publish(work, "task.a", b"job", pika.BasicProperties(headers=headers))
    for source, settle in ((kept, channel.basic_reject), (renamed, channel.basic_nack)):
        method, _, _ = channel.basic_get(source.method.queue)
        settle(method.delivery_tag, requeue=False)
    got = {}
    for _ in range(2):
        method, properties, body = channel.basic_get(graveyard, auto_ack=True)
        assert body == b"job"
        got[method.routing_key] = properties.headers
    assert set(got) == {"task.a", "moved"}
    for routing_key, source, reason in (
        ("task.a", kept, "rejected"),
        ("moved", renamed, "rejected"),
    ):
        assert got[routing_key]["trace"] == "t-1"
        (death,) = got[routing_key]["x-death"]
        assert death["queue"] == source.method.queue
        assert (death["reason"], death["count"]) == (reason, 1)
        assert (death["exchange"], death["routing-keys"]) == (work, ["task.a"])


def test_passive_declare_of_a_missing_queue_closes_only_the_channel(connection: Any) -> None:
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare(unique("missing"), passive=True)
    assert closed.value.reply_code == 404
    assert channel.is_closed
    assert connection.is_open
    other = connection.channel()
    name = other.queue_declare("", exclusive=True).method.queue
    assert other.queue_declare(name, passive=True).method.message_count == 0


def test_purge_and_delete_count_ready_messages(connection: Any, queue: str) -> None:
    channel = connection.channel()
    channel.confirm_delivery()  # routed before another channel looks
    for n in range(5):
        channel.basic_publish("", queue, f"m{n}".encode())
    holder = connection.channel()
    holder.basic_get(queue)  # one unacked: not ready, not purged
    assert channel.queue_purge(queue).method.message_count == 4
    for n in range(2):
        channel.basic_publish("", queue, f"n{n}".encode())
    holder.close()  # the unacked one is ready again
    assert channel.queue_delete(queue).method.message_count == 3


def test_transactions_publish_and_ack_only_on_commit(connection: Any, queue: str) -> None:
    tx = connection.channel()
    tx.tx_select()
    tx.basic_publish("", queue, b"m1")
    assert ready(connection, queue) == 0
    tx.tx_commit()
    assert ready(connection, queue) == 1
    tx.basic_publish("", queue, b"rolled back")
    tx.tx_rollback()
    assert ready(connection, queue) == 1
    method, _, body = tx.basic_get(queue)
    tx.basic_ack(method.delivery_tag)  # uncommitted: discarded when the channel closes
    tx.close()
    other = connection.channel()
    again, _, body = other.basic_get(queue)
    assert (body, again.redelivered) == (b"m1", True)
    other.close()
    tx = connection.channel()
    tx.tx_select()
    method, _, _ = tx.basic_get(queue)
    tx.basic_ack(method.delivery_tag)
    tx.tx_commit()
    tx.close()
    assert ready(connection, queue) == 0


HEADERS = {
    "int32": 2**31 - 1,
    "negative": -5,
    "int64": 2**40,
    "true": True,
    "false": False,
    "text": "día",
    "bytes": b"\x00\xff",
    "decimal": decimal.Decimal("1.23"),
    "nested": {"a": {"b": [1, "two", None, True]}},
    "array": [1, 2**40, "x", None, {"k": "v"}],
    "void": None,
    "when": datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.UTC),
}


def test_a_rolled_back_ack_leaves_its_delivery_unacked_to_settle_again(
    connection: Any, queue: str
) -> None:
    channel = connection.channel()
    channel.basic_publish("", queue, b"once")
    channel.tx_select()
    method, _, _ = channel.basic_get(queue)
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()  # the ack never happened: the tag is still unacked
    channel.basic_ack(method.delivery_tag)  # no 406 unknown delivery tag
    channel.tx_commit()
    assert channel.is_open
    assert ready(connection, queue) == 0
    channel.close()
    assert ready(connection, queue) == 0  # settled: nothing came back with the channel


def test_all_basic_properties_and_typed_headers_round_trip(
    amqp_broker: AmqpBroker, connection: Any
) -> None:
    sent = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=HEADERS,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-1",
        reply_to="replies",
        expiration="60000",
        message_id="message-1",
        timestamp=1_764_748_800,
        type="kind",
        user_id=amqp_broker.username,
        app_id="tests",
    )  # and cluster_id, reserved since AMQP 0-9-1: the 14th flag, left unset
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"{}", sent)
    _, got, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"{}"
    assert got.headers == HEADERS
    names = [name for name, value in vars(sent).items() if value is not None]
    assert len(names) == 13
    assert {name: getattr(got, name) for name in names} == {n: getattr(sent, n) for n in names}


def test_user_id_other_than_the_login_closes_the_channel_406(connection: Any) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"x", pika.BasicProperties(user_id="someone-else"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.basic_get(queue)  # a round trip: the close arrives before its answer
    assert closed.value.reply_code == 406
    assert connection.is_open


def test_exclusive_queue_is_locked_to_its_connection_but_open_to_publishers(
    amqp_broker: AmqpBroker, connection: Any
) -> None:
    owner = connection.channel()
    queue = owner.queue_declare("", exclusive=True).method.queue
    assert queue.startswith("amq.gen-")
    with connect(amqp_broker) as other:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as locked:
            other.channel().basic_consume(queue, lambda *_: None)
        assert locked.value.reply_code == 405
        publisher = other.channel()
        publisher.confirm_delivery()
        publisher.basic_publish("", queue, b"reply")  # publishing to it is allowed
        _, _, body = owner.basic_get(queue, auto_ack=True)
        assert body == b"reply"
        connection.close()  # the queue goes with its connection
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
            other.channel().queue_declare(queue, passive=True)
        assert gone.value.reply_code == 404


def test_deleting_a_queue_cancels_its_consumers(amqp_broker: AmqpBroker, connection: Any) -> None:
    name = unique("doomed")
    channel = connection.channel()
    channel.queue_declare(name)
    cancelled: list[Any] = []
    channel.add_on_cancel_callback(cancelled.append)
    channel.basic_consume(name, lambda *_: None)
    with connect(amqp_broker) as other:
        assert other.channel().queue_delete(name).method.message_count == 0
    connection.process_data_events(time_limit=1)
    for _ in range(int(TIMEOUT / 0.05)):
        if cancelled:
            break
        connection.process_data_events(time_limit=0.05)
    assert [frame.method.NAME for frame in cancelled] == ["Basic.Cancel"]


def test_a_failed_login_is_access_refused(amqp_broker: AmqpBroker) -> None:
    wrong = amqp_broker.but(password="not the password")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as refused:
        pika.BlockingConnection(parameters(wrong))
    assert "(403) 'ACCESS_REFUSED" in str(refused.value)


def test_a_virtual_host_other_than_root_is_refused(amqp_broker: AmqpBroker) -> None:
    elsewhere = amqp_broker.but(vhost="elsewhere")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        pika.BlockingConnection(parameters(elsewhere))
    assert "(530) 'NOT_ALLOWED" in str(refused.value)
