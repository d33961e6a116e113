"""Channels, content assembly, every event from real client frames, and the replies."""

from __future__ import annotations

import tracemalloc
import warnings

import pytest
from pamqp import body, commands, header

from buzon.amqp import (
    AmqpLimits,
    AmqpState,
    BasicAck,
    BasicCancel,
    BasicConsume,
    BasicGet,
    BasicNack,
    BasicQos,
    BasicRecover,
    BasicReject,
    ChannelClosed,
    ChannelCloseOk,
    ChannelFlow,
    ChannelOpened,
    ConfirmSelect,
    Event,
    ExchangeDeclare,
    ExchangeDelete,
    Publish,
    QueueBind,
    QueueDeclare,
    QueueDelete,
    QueuePurge,
    QueueUnbind,
    ReplyCode,
    TxCommit,
    TxRollback,
    TxSelect,
)
from buzon.amqp.codec import method_frame
from buzon.amqp.properties import EMPTY

from .helpers import (
    Frame,
    closed_with,
    events,
    open_channel,
    open_connection,
    publish_frames,
    read_frames,
    wire,
)

C = commands


def test_channel_open_and_close() -> None:
    conn = open_connection()
    assert events(conn, wire((5, C.Channel.Open()))) == [ChannelOpened(5)]
    ((ch, open_ok),) = read_frames(conn.data_to_send())
    assert ch == 5
    assert isinstance(open_ok, C.Channel.OpenOk)
    found = events(conn, wire((5, C.Channel.Close(200, "bye", 0, 0))))
    assert found == [ChannelClosed(5, 200, "bye", 0, 0)]
    ((_, close_ok),) = read_frames(conn.data_to_send())
    assert isinstance(close_ok, C.Channel.CloseOk)
    assert events(conn, wire((5, C.Channel.Open()))) == [ChannelOpened(5)]


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(1, C.Channel.Open()), (1, C.Channel.Open())], ReplyCode.CHANNEL_ERROR),
        ([(2, C.Queue.Declare(queue="q"))], ReplyCode.CHANNEL_ERROR),
        ([(0, C.Queue.Declare(queue="q"))], ReplyCode.COMMAND_INVALID),
        (
            [(1, C.Channel.Open()), (1, C.Connection.Close(200, "", 0, 0))],
            ReplyCode.COMMAND_INVALID,
        ),
        ([(3000, C.Channel.Open())], ReplyCode.CHANNEL_ERROR),
        (
            [(1, C.Channel.Open()), (1, C.Exchange.Bind(destination="a", source="b"))],
            ReplyCode.NOT_IMPLEMENTED,
        ),
        (
            [(1, C.Channel.Open()), (1, C.Basic.Deliver("t", 1, False, "", ""))],
            ReplyCode.COMMAND_INVALID,
        ),
        ([(1, header.ContentHeader(0, 1))], ReplyCode.CHANNEL_ERROR),
    ],
)
def test_channel_misuse_closes_the_connection(
    frames: list[tuple[int, Frame]], code: ReplyCode
) -> None:
    conn = open_connection()
    events(conn, wire(*frames))
    assert closed_with(conn) == code
    assert conn.state is AmqpState.CLOSING


def test_unknown_method_ids_are_named() -> None:
    conn = open_connection()
    open_channel(conn)
    raw = b"\x00\x63\x00\x07"  # class 99, method 7
    events(conn, b"\x01\x00\x01" + len(raw).to_bytes(4) + raw + b"\xce")
    ((_, close),) = read_frames(conn.data_to_send())
    assert isinstance(close, C.Connection.Close)
    assert close.reply_code == 540
    assert "class 99, method 7" in close.reply_text


def test_opening_every_channel_number_is_refused_cleanly() -> None:
    conn = open_connection(channel_max=0)
    data = b"".join(wire((ch, C.Channel.Open())) for ch in range(1, 65536))
    found = events(conn, data)
    assert len(found) == 2047
    assert closed_with(conn) == ReplyCode.CHANNEL_ERROR
    assert conn.state is AmqpState.CLOSING
    assert events(conn, wire((0, C.Connection.CloseOk())))
    assert conn.close_expected()


def test_after_channel_close_only_close_ok_counts() -> None:
    conn = open_connection()
    open_channel(conn)
    conn.close_channel(1, ReplyCode.NOT_FOUND, "no queue 'x'", 50, 10)
    ((_, close),) = read_frames(conn.data_to_send())
    assert isinstance(close, C.Channel.Close)
    assert close.reply_code == 404
    assert (close.class_id, close.method_id) == (50, 10)
    dropped = wire((1, C.Queue.Declare(queue="q")), (1, C.Basic.Ack(1)))
    assert events(conn, dropped + publish_frames(1, b"abc")) == []
    assert not conn.deliver(1, "t", 1, False, "", "q", EMPTY, b"x")
    assert conn.data_to_send() == b""
    assert events(conn, wire((1, C.Channel.CloseOk()))) == [ChannelCloseOk(1)]
    assert events(conn, wire((1, C.Channel.Open()))) == [ChannelOpened(1)]


def test_hard_code_on_close_channel_closes_the_connection() -> None:
    conn = open_connection()
    open_channel(conn)
    conn.close_channel(1, ReplyCode.COMMAND_INVALID, "no")
    assert closed_with(conn) == ReplyCode.COMMAND_INVALID


def test_flow_is_answered() -> None:
    conn = open_connection()
    open_channel(conn)
    assert events(conn, wire((1, C.Channel.Flow(active=False)))) == [ChannelFlow(1, False)]
    ((_, flow_ok),) = read_frames(conn.data_to_send())
    assert isinstance(flow_ok, C.Channel.FlowOk)
    assert flow_ok.active is False


# -- content ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 131064, 131065, 400_000])
def test_publish_assembles_any_body(size: int) -> None:
    conn = open_connection()
    open_channel(conn)
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    props = C.Basic.Properties(content_type="text/plain", delivery_mode=2, headers={"n": 1})
    (event,) = events(conn, publish_frames(1, payload, props=props, routing_key="rk"))
    assert isinstance(event, Publish)
    assert (event.exchange, event.routing_key, event.body) == ("", "rk", payload)
    assert event.properties.delivery_mode == 2
    assert event.properties.headers == {"n": 1}


def test_a_body_in_tiny_and_empty_frames_costs_its_size_not_a_list_of_frames() -> None:
    conn = open_connection()
    open_channel(conn)
    size = 20_000
    head = wire((1, C.Basic.Publish(routing_key="drip")), (1, header.ContentHeader(0, size)))
    drip = wire((1, body.ContentBody(b"x")), (1, body.ContentBody(b""))) * (size - 1)
    tracemalloc.start()
    assert events(conn, head + drip) == []  # all but the last byte, each behind an empty frame
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < 4 * size  # one growing buffer, not 40,000 frame objects
    (event,) = events(conn, wire((1, body.ContentBody(b"x"))))
    assert isinstance(event, Publish)
    assert event.body == b"x" * size


def test_publishes_on_two_channels_interleave() -> None:
    conn = open_connection()
    open_channel(conn, 1)
    open_channel(conn, 2)
    p1 = wire((1, C.Basic.Publish(routing_key="a")), (1, header.ContentHeader(0, 2)))
    p2 = wire((2, C.Basic.Publish(routing_key="b")), (2, header.ContentHeader(0, 1)))
    data = p1 + p2 + wire((2, body.ContentBody(b"B")), (1, body.ContentBody(b"AA")))
    found = events(conn, data)
    assert [(e.channel, e.body) for e in found if isinstance(e, Publish)] == [(2, b"B"), (1, b"AA")]


def test_oversized_declared_body_is_refused_before_it_arrives() -> None:
    conn = open_connection(AmqpLimits(max_message_size=1000))
    open_channel(conn)
    head = wire((1, C.Basic.Publish()), (1, header.ContentHeader(0, 100 * 1024 * 1024)))
    assert events(conn, head) == []
    ((_, close),) = read_frames(conn.data_to_send())
    assert isinstance(close, C.Channel.Close)
    assert close.reply_code == 406
    assert "104857600" in close.reply_text
    assert events(conn, wire((1, body.ContentBody(b"x" * 100_000)))) == []
    assert conn.is_open


def test_frame_over_frame_max_closes_501() -> None:
    conn = open_connection()
    open_channel(conn)
    events(conn, b"\x03\x00\x01" + (131072).to_bytes(4))
    assert closed_with(conn) == ReplyCode.FRAME_ERROR


@pytest.mark.parametrize(
    "frames",
    [
        [(1, header.ContentHeader(0, 1))],
        [(1, body.ContentBody(b"x"))],
        [(1, C.Basic.Publish()), (1, C.Queue.Declare(queue="q"))],
        [(1, C.Basic.Publish()), (1, header.ContentHeader(0, 1)), (1, body.ContentBody(b"xy"))],
    ],
)
def test_content_out_of_place_closes_505(frames: list[tuple[int, Frame]]) -> None:
    conn = open_connection()
    open_channel(conn)
    events(conn, wire(*frames))
    assert closed_with(conn) == ReplyCode.UNEXPECTED_FRAME


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # pamqp warns: deprecated in 0-9-1
    RECOVER_ASYNC = C.Basic.RecoverAsync(requeue=False)

# -- every event -------------------------------------------------------------------------

EVENTS: list[tuple[Frame, Event]] = [
    (
        C.Exchange.Declare(
            exchange="logs", exchange_type="fanout", durable=True, arguments={"a": 1}
        ),
        ExchangeDeclare(1, "logs", "fanout", False, True, False, False, False, {"a": 1}),
    ),
    (C.Exchange.Delete(exchange="logs", if_unused=True), ExchangeDelete(1, "logs", True, False)),
    (
        C.Queue.Declare(queue="", exclusive=True, auto_delete=True, arguments={"x-expires": 5000}),
        QueueDeclare(1, "", False, False, True, True, False, {"x-expires": 5000}),
    ),
    (
        C.Queue.Bind(queue="q", exchange="e", routing_key="a.#"),
        QueueBind(1, "q", "e", "a.#", False, {}),
    ),
    (C.Queue.Unbind(queue="q", exchange="e", routing_key="k"), QueueUnbind(1, "q", "e", "k", {})),
    (C.Queue.Purge(queue="q", nowait=True), QueuePurge(1, "q", True)),
    (C.Queue.Delete(queue="q", if_empty=True), QueueDelete(1, "q", False, True, False)),
    (C.Basic.Qos(prefetch_count=1000, global_=True), BasicQos(1, 0, 1000, True)),
    (
        C.Basic.Consume(queue="q", consumer_tag="c1", no_ack=True, arguments={"k": "v"}),
        BasicConsume(1, "q", "c1", False, True, False, False, {"k": "v"}),
    ),
    (C.Basic.Cancel(consumer_tag="c1"), BasicCancel(1, "c1", False)),
    (C.Basic.Get(queue="q", no_ack=True), BasicGet(1, "q", True)),
    (C.Basic.Ack(delivery_tag=2**40, multiple=True), BasicAck(1, 2**40, True)),
    (C.Basic.Nack(delivery_tag=3, requeue=False), BasicNack(1, 3, False, False)),
    (C.Basic.Reject(delivery_tag=4, requeue=True), BasicReject(1, 4, True)),
    (C.Basic.Recover(requeue=True), BasicRecover(1, True, False)),
    (RECOVER_ASYNC, BasicRecover(1, False, True)),
    (C.Confirm.Select(), ConfirmSelect(1, False)),
    (C.Tx.Select(), TxSelect(1)),
    (C.Tx.Commit(), TxCommit(1)),
    (C.Tx.Rollback(), TxRollback(1)),
]


@pytest.mark.parametrize(("method", "expected"), EVENTS, ids=lambda v: type(v).__name__)
def test_every_client_method_becomes_its_event(method: Frame, expected: Event) -> None:
    conn = open_connection()
    open_channel(conn)
    assert events(conn, wire((1, method))) == [expected]
    assert conn.is_open


# -- replies -----------------------------------------------------------------------------


def test_replies_decode_as_a_client_expects() -> None:
    conn = open_connection()
    open_channel(conn)
    conn.exchange_declare_ok(1)
    conn.queue_declare_ok(1, "amq.gen-x", 3, 1)
    conn.queue_purge_ok(1, 7)
    conn.queue_delete_ok(1, 2)
    conn.basic_consume_ok(1, "ctag")
    conn.confirm_ack(1, 5, multiple=True)
    conn.confirm_nack(1, 6)
    conn.get_empty(1)
    conn.get_ok(1, 9, True, "ex", "rk", 4, EMPTY, b"body")
    conn.basic_return(1, ReplyCode.NO_ROUTE, "NO_ROUTE", "ex", "rk", EMPTY, b"r")
    for reply in (
        conn.exchange_delete_ok,
        conn.queue_bind_ok,
        conn.queue_unbind_ok,
        conn.basic_qos_ok,
        conn.basic_recover_ok,
        conn.confirm_select_ok,
        conn.tx_select_ok,
        conn.tx_commit_ok,
        conn.tx_rollback_ok,
    ):
        assert reply(1)
    assert conn.basic_cancel_ok(1, "ctag")
    assert conn.cancel_consumer(1, "ctag")
    assert conn.blocked("memory")
    assert conn.unblocked()
    frames = [f for _, f in read_frames(conn.data_to_send())]
    names = [type(f).__name__ for f in frames]
    assert names[:10] == [
        "DeclareOk",
        "DeclareOk",
        "PurgeOk",
        "DeleteOk",
        "ConsumeOk",
        "Ack",
        "Nack",
        "GetEmpty",
        "GetOk",
        "ContentHeader",
    ]
    declare_ok = frames[1]
    assert isinstance(declare_ok, C.Queue.DeclareOk)
    assert (declare_ok.queue, declare_ok.message_count, declare_ok.consumer_count) == (
        "amq.gen-x",
        3,
        1,
    )
    ack = frames[5]
    assert isinstance(ack, C.Basic.Ack)
    assert (ack.delivery_tag, ack.multiple) == (5, True)
    assert names[-3:] == ["Cancel", "Blocked", "Unblocked"]


def test_deliver_splits_the_body_by_frame_max() -> None:
    conn = open_connection(AmqpLimits(frame_max=4096))
    open_channel(conn)
    (publish,) = events(
        conn,
        publish_frames(
            1,
            b"p" * 10000,
            props=C.Basic.Properties(message_id="m1", headers={"x": [1, None]}),
            frame_max=4096,
        ),
    )
    assert isinstance(publish, Publish)
    payload = bytes(range(256)) * 40
    assert conn.deliver(1, "ctag", 7, True, "ex", "rk", publish.raw_properties, payload)
    data = conn.data_to_send()
    frames = read_frames(data)
    deliver, content = frames[0][1], frames[1][1]
    assert isinstance(deliver, C.Basic.Deliver)
    assert isinstance(content, header.ContentHeader)
    assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered) == ("ctag", 7, True)
    assert content.body_size == len(payload)
    assert content.properties.message_id == "m1"
    bodies = [f for _, f in frames[2:]]
    assert all(isinstance(b, body.ContentBody) for b in bodies)
    assert b"".join(b.value for b in bodies if isinstance(b, body.ContentBody)) == payload
    assert len(bodies) == 3


def test_capabilities_gate_server_notices() -> None:
    conn = open_connection()
    conn.client_properties = {}
    open_channel(conn)
    assert not conn.cancel_consumer(1, "c")
    assert not conn.blocked("disk")
    assert conn.data_to_send() == b""


# -- heart-beats -------------------------------------------------------------------------


def test_heartbeats_are_sent_and_silence_fails() -> None:
    conn = open_connection(heartbeat=10)
    deadline = conn.get_timer()
    assert deadline is not None
    assert deadline <= 5.0
    conn.handle_timer(5.0)
    assert conn.data_to_send() == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    conn.receive_data(b"\x08\x00\x00\x00\x00\x00\x00\xce", 15.0)  # the client's beat
    assert conn.next_event() is None
    conn.handle_timer(30.0)
    assert conn.is_open
    conn.handle_timer(35.1)
    assert conn.state is AmqpState.FAILED
    assert conn.close_expected()
    assert "heart-beat" in (conn.close_reason or "")


def test_heartbeat_on_a_channel_closes_501() -> None:
    conn = open_connection()
    events(conn, b"\x08\x00\x01\x00\x00\x00\x00\xce")
    assert closed_with(conn) == ReplyCode.FRAME_ERROR


def test_lost_framing_closes_501_and_reads_no_more() -> None:
    conn = open_connection()
    open_channel(conn)
    events(conn, b"\x01\x00\x01\x00\x00\x00\x04\x00\x0a\x00\x0a\xff")  # bad frame end
    assert closed_with(conn) == ReplyCode.FRAME_ERROR
    assert conn.close_expected()
    conn.receive_data(b"\x00" * 1_000_000, 1.0)
    assert conn.buffered_bytes == 0


def test_malformed_arguments_close_502() -> None:
    conn = open_connection()
    open_channel(conn)
    raw = b"\x00\x32\x00\x0a\x00\x00\x05ab"  # queue.declare with a cut short string
    events(conn, b"\x01\x00\x01" + len(raw).to_bytes(4) + raw + b"\xce")
    assert closed_with(conn) == ReplyCode.SYNTAX_ERROR


def test_deeply_nested_table_closes_502() -> None:
    conn = open_connection()
    open_channel(conn)
    table = b""
    for _ in range(100):
        table = b"\x01aF" + (len(table)).to_bytes(4) + table
    raw = b"\x00\x32\x00\x0a\x00\x00\x01q\x00" + len(table).to_bytes(4) + table
    events(conn, b"\x01\x00\x01" + len(raw).to_bytes(4) + raw + b"\xce")
    assert closed_with(conn) == ReplyCode.SYNTAX_ERROR


def test_any_name_a_client_used_can_be_sent_back() -> None:
    conn = open_connection()
    open_channel(conn)
    # RabbitMQ allows any UTF-8 name (pamqp's client side would refuse to build this one)
    declare = method_frame(1, C.Queue.Declare, 0, "cola ñ*", False, False, False, False, False, {})
    (event,) = events(conn, declare)
    assert isinstance(event, QueueDeclare)
    assert event.queue == "cola ñ*"
    assert conn.queue_declare_ok(1, "cola ñ*", 0, 0)
    assert conn.deliver(1, "tag ñ", 1, False, "ex ñ", "a.*", EMPTY, b"")
    frames = [f for _, f in read_frames(conn.data_to_send())]
    assert isinstance(frames[0], C.Queue.DeclareOk)
    assert frames[0].queue == "cola ñ*"
    assert isinstance(frames[1], C.Basic.Deliver)
    assert (frames[1].exchange, frames[1].routing_key) == ("ex ñ", "a.*")
    assert isinstance(frames[2], header.ContentHeader)
    assert frames[2].body_size == 0
    assert len(frames) == 3  # an empty body has no body frame


def test_partial_messages_on_many_channels_are_bounded() -> None:
    conn = open_connection(AmqpLimits(max_message_size=1000, max_pending_content=2500))
    head = b""
    for channel in (1, 2, 3):
        open_channel(conn, channel)
        head += wire((channel, C.Basic.Publish()), (channel, header.ContentHeader(0, 1000)))
    events(conn, head)
    assert closed_with(conn) == ReplyCode.RESOURCE_ERROR


def test_completed_and_refused_messages_free_their_budget() -> None:
    conn = open_connection(AmqpLimits(max_message_size=1000, max_pending_content=1000))
    open_channel(conn, 1)
    open_channel(conn, 2)
    for _ in range(3):
        assert len(events(conn, publish_frames(1, b"x" * 1000))) == 1
    events(conn, wire((2, C.Basic.Publish()), (2, header.ContentHeader(0, 1000))))
    conn.close_channel(2, ReplyCode.NOT_FOUND, "no exchange")
    assert len(events(conn, publish_frames(1, b"y" * 1000))) == 1
    assert conn.is_open


def test_get_ok_and_return_carry_their_content_split() -> None:
    conn = open_connection(AmqpLimits(frame_max=4096))
    open_channel(conn)
    payload = b"g" * 9000
    assert conn.get_ok(1, 1, False, "", "q", 0, EMPTY, payload)
    assert conn.basic_return(1, ReplyCode.NO_ROUTE, "NO_ROUTE", "ex", "nowhere", EMPTY, b"r")
    frames = [f for _, f in read_frames(conn.data_to_send())]
    names = [type(f).__name__ for f in frames]
    assert names == [
        "GetOk",
        "ContentHeader",
        "ContentBody",
        "ContentBody",
        "ContentBody",
        "Return",
        "ContentHeader",
        "ContentBody",
    ]
    bodies = [f.value for f in frames[2:5] if isinstance(f, body.ContentBody)]
    assert b"".join(bodies) == payload


def test_replies_on_a_closed_channel_are_dropped() -> None:
    conn = open_connection()
    assert not conn.queue_declare_ok(9, "q", 0, 0)
    assert not conn.confirm_ack(9, 1)
    conn.close_channel(9, ReplyCode.NOT_FOUND, "none")
    assert conn.data_to_send() == b""
    assert conn.is_open


def test_heartbeat_off_when_the_client_says_zero() -> None:
    conn = open_connection(heartbeat=0)
    assert conn.heartbeat == 0
    assert conn.get_timer() is None
