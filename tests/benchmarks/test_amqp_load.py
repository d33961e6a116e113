"""The AMQP load generator's own logic: its pre-built frames are what pamqp decodes, its
hot-path readers agree with pamqp's encoder, its frame reader copes with any split of the
stream, and its confirm bookkeeping counts every publish exactly once."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from pamqp import commands, frame
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))


@pytest.mark.parametrize(("persistent", "mode"), [(True, 2), (False, 1)])
def test_a_publish_template_is_three_frames_pamqp_decodes(persistent: bool, mode: int) -> None:
    import amqp_frames

    template = amqp_frames.PublishTemplate.build(3, "logs", "a.b", 128, persistent)
    data = template.message(42, 1_234_567)
    decoded = []
    while data:
        used, channel, value = frame.unmarshal(data)
        assert channel == 3
        decoded.append(value)
        data = data[used:]
    publish, header, body = decoded
    assert isinstance(publish, commands.Basic.Publish)
    assert (publish.exchange, publish.routing_key) == ("logs", "a.b")
    assert (publish.mandatory, publish.immediate) == (False, False)
    assert isinstance(header, ContentHeader)
    assert (header.body_size, header.properties.delivery_mode) == (128, mode)
    assert isinstance(body, ContentBody)
    assert len(body.value) == 128
    assert amqp_frames.stamp(body.value) == (42, 1_234_567)


def test_a_publish_template_refuses_a_body_too_small_for_its_stamp() -> None:
    import amqp_frames

    with pytest.raises(ValueError, match="at least 16 bytes"):
        amqp_frames.PublishTemplate.build(1, "", "q", 15, False)


@pytest.mark.parametrize(("tag", "multiple"), [(1, False), (2**40, True)])
def test_the_packed_ack_is_pamqps(tag: int, multiple: bool) -> None:
    import amqp_frames

    built = frame.marshal(commands.Basic.Ack(delivery_tag=tag, multiple=multiple), 1)
    assert amqp_frames.ack_frame(1, tag, multiple) == built


def payload_of(data: bytes) -> bytes:
    """A single frame's payload (between its 7-byte header and its end octet)."""
    return data[7:-1]


@pytest.mark.parametrize("consumer_tag", ["", "ctag", "amq.ctag-" + "x" * 200])
@pytest.mark.parametrize("redelivered", [False, True])
def test_deliver_tags_are_read_where_pamqp_writes_them(
    consumer_tag: str, redelivered: bool
) -> None:
    import amqp_frames

    deliver = commands.Basic.Deliver(consumer_tag, 2**33 + 7, redelivered, "ex", "rk")
    payload = payload_of(frame.marshal(deliver, 1))
    assert amqp_frames.deliver_tag(payload) == (2**33 + 7, redelivered)


@pytest.mark.parametrize("method", [commands.Basic.Ack, commands.Basic.Nack])
@pytest.mark.parametrize("multiple", [False, True])
def test_ack_and_nack_arguments_are_read_where_pamqp_writes_them(
    method: type[commands.Basic.Ack] | type[commands.Basic.Nack], multiple: bool
) -> None:
    import amqp_frames

    payload = payload_of(frame.marshal(method(delivery_tag=99, multiple=multiple), 1))
    assert amqp_frames.ack_args(payload) == (99, multiple)


def test_a_content_headers_body_size_is_read_where_pamqp_writes_it() -> None:
    import amqp_frames

    properties = commands.Basic.Properties(content_type="text/plain", headers={"a": 1})
    header = frame.marshal(ContentHeader(0, 70_000, properties), 1)
    assert amqp_frames.body_size(payload_of(header)) == 70_000


def test_the_frame_reader_takes_any_split_of_the_stream() -> None:
    import amqp_frames

    sent: list[tuple[int, Frame | ContentHeader | ContentBody]] = [
        (1, commands.Basic.Deliver("c", 1, False, "", "q")),
        (1, ContentHeader(0, 3, commands.Basic.Properties())),
        (1, ContentBody(b"abc")),
        (0, commands.Connection.Close(320, "bye", 0, 0)),
    ]
    stream = b"".join(frame.marshal(value, channel) for channel, value in sent)
    for size in (1, 2, 7, 8, 50, len(stream)):
        reader = amqp_frames.FrameReader()
        got = []
        for start in range(0, len(stream), size):
            reader.feed(stream[start : start + size])
            got += list(reader.frames())
        assert [(kind, channel) for kind, channel, _ in got] == [(1, 1), (2, 1), (3, 1), (1, 0)]
        close = amqp_frames.decode(*got[3])
        assert isinstance(close, commands.Connection.Close)
        assert (close.reply_code, close.reply_text) == (320, "bye")
        assert got[2][2] == b"abc"
        assert not reader.buffer


def test_the_frame_reader_refuses_a_wrong_end_octet() -> None:
    import amqp_frames

    data = bytearray(frame.marshal(commands.Basic.Ack(1), 1))
    data[-1] = 0
    reader = amqp_frames.FrameReader()
    reader.feed(bytes(data))
    with pytest.raises(amqp_frames.ProtocolFailure, match="end octet"):
        list(reader.frames())


def test_confirms_count_single_multiple_and_out_of_order_acks_once() -> None:
    import amqp_frames

    confirms = amqp_frames.Confirms(10)
    confirms.published = 6
    assert confirms.ack(2, False) == 1
    assert confirms.ack(4, True) == 3  # 1, 3 and 4: 2 was confirmed already
    assert confirms.ack(6, False) == 1
    assert (confirms.confirmed, confirms.outstanding, confirms.low) == (5, 1, 5)
    assert confirms.ack(6, True) == 1  # 5
    assert confirms.outstanding == 0
    with pytest.raises(amqp_frames.ProtocolFailure, match="confirmed twice"):
        confirms.ack(3, False)
    with pytest.raises(amqp_frames.ProtocolFailure, match="only 6 published"):
        confirms.ack(7, True)


def test_buzons_listening_line_gives_every_url() -> None:
    import loadgen

    line = (
        b"starting\nbuzon listening: stomp://127.0.0.1:4001  amqp://127.0.0.1:4002"
        b"  http://127.0.0.1:4003/api/v1  (Ctrl-C stops)\n"
    )
    assert loadgen.listening_urls(line[:-1]) is None  # not the whole line yet
    urls = loadgen.listening_urls(line)
    assert urls == {
        "stomp": "stomp://127.0.0.1:4001",
        "amqp": "amqp://127.0.0.1:4002",
        "http": "http://127.0.0.1:4003/api/v1",
    }
    assert [loadgen.url_port(url) for url in urls.values()] == [4001, 4002, 4003]


async def read_acks(sock: socket.socket, reader: Any, count: int) -> list[tuple[int, bool]]:
    """``count`` more basic.ack frames the client wrote: (delivery tag, multiple) each."""
    import amqp_frames

    loop, acks = asyncio.get_running_loop(), list[tuple[int, bool]]()
    async with asyncio.timeout(10):
        while len(acks) < count:
            reader.feed(await loop.sock_recv(sock, 4096))
            for kind, channel, payload in reader.frames():
                ack = amqp_frames.decode(kind, channel, payload)
                assert isinstance(ack, commands.Basic.Ack)
                acks.append((ack.delivery_tag, ack.multiple))
    return acks


async def test_the_client_counts_deliveries_acks_in_batches_and_tracks_confirms() -> None:
    import amqp_frames
    import amqp_load
    import stomp_load

    ours, broker = socket.socketpair()
    broker.setblocking(False)
    loop = asyncio.get_running_loop()
    stats = stomp_load.Stats.for_messages(6, 6)
    _, client = await loop.create_connection(lambda: amqp_load.AmqpClient(stats), sock=ours)
    client.ack_every = 4

    def delivery(tag: int) -> bytes:
        body = amqp_frames.STAMP.pack(tag, 0) + b"x" * 20
        return b"".join(
            frame.marshal(value, 1)
            for value in (
                commands.Basic.Deliver("ctag", tag, False, "", "q"),
                ContentHeader(0, len(body), commands.Basic.Properties()),
                ContentBody(body[:10]),  # a body in two frames
                ContentBody(body[10:]),
            )
        )

    try:
        await loop.sock_sendall(broker, b"".join(delivery(tag) for tag in range(1, 4)))
        blocked = frame.marshal(commands.Connection.Blocked("low on memory"), 0)
        await loop.sock_sendall(broker, blocked)
        await loop.sock_sendall(broker, b"".join(delivery(tag) for tag in range(4, 7)))
        async with asyncio.timeout(10):
            await stats.done.wait()
        stomp_load.check(stats, 6, 1)
        assert (client.blocked, client.replies.qsize()) == (1, 0)
        client.flush_acks()
        reader = amqp_frames.FrameReader()
        acks = await read_acks(broker, reader, 1)
        while acks[-1][0] != 6:
            acks += await read_acks(broker, reader, 1)
        assert all(multiple for _, multiple in acks)
        assert acks[0][0] >= 4  # none before a batch of 4 waited
        client.confirms = amqp_frames.Confirms(5)
        client.confirms.published = 5
        confirms = [commands.Basic.Ack(2, False), commands.Basic.Ack(5, True)]
        await loop.sock_sendall(broker, b"".join(frame.marshal(ack, 1) for ack in confirms))
        async with asyncio.timeout(10):
            while client.confirms.outstanding:
                client.progress.clear()
                await client.progress.wait()
        assert client.confirms.confirmed == 5
    finally:
        client.close()
        broker.close()
