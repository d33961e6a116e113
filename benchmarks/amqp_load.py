"""AMQP 0-9-1 load generator: throughput and the broker's CPU cost, with a client that costs
little per message (raw sockets, pre-built frames: ``amqp_frames.py``), so the rate measures
the broker rather than a Python AMQP library.

Runs against a broker it starts itself (``python -m buzon serve --amqp-port 0``) or against
``--port`` (any AMQP 0-9-1 broker, to compare; give ``--pid`` for its CPU and memory). It
logs in with SASL PLAIN. Every delivery is checked by the sequence number in its body: a run
that loses, duplicates or reorders a message fails instead of reporting a number.

Scenarios:
    queue   a queue (durable with ``--persistent``, and messages then persistent), three
            phases of ``--messages`` each: publish only (publisher confirms, at most
            ``--window`` unconfirmed), consume only (the backlog, by ``--consumers``
            connections with manual acks, ``--prefetch`` each, acked ``multiple`` every
            ``--ack-every``), then both at once. The rate is the last phase's, end to end
            (first publish to last delivery and confirm); the others are in the report line.
    fanout  a fanout exchange bound to ``--queues`` queues, a consumer connection on each
            (manual acks, as above); one publisher with confirms: deliveries/s

Usage:
    python benchmarks/amqp_load.py queue  [--messages 100000] [--persistent] [--window 1000]
    python benchmarks/amqp_load.py fanout [--messages 20000] [--queues 10]
    python benchmarks/amqp_load.py queue --port 5672 --pid 1234 --login guest --passcode guest
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import time
from typing import TypeVar, cast

from pamqp import commands
from pamqp.base import Frame
from pamqp.common import FieldTable
from pamqp.header import ProtocolHeader

from amqp_frames import (
    ACK_METHOD,
    BASIC,
    BODY,
    DELIVER,
    HEADER,
    METHOD,
    METHOD_IDS,
    NACK,
    Confirms,
    FrameReader,
    ProtocolFailure,
    PublishTemplate,
    ack_args,
    ack_frame,
    body_size,
    decode,
    deliver_tag,
    marshal,
    stamp,
)
from loadgen import Target, add_target_options, check_target, measure, run_loop
from stomp_load import Meter, Result, Stats, check

F = TypeVar("F", bound=Frame)
CHANNEL = 1  # every connection uses one channel
FRAME_MAX = 131_072
BATCH = 256  # messages per write at most
REPLY_TIMEOUT_S = 30.0
PROPERTIES: FieldTable = {
    "product": "buzon benchmarks/amqp_load.py",
    "capabilities": {
        "publisher_confirms": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
    },
}


class AmqpClient(asyncio.Protocol):
    """One AMQP connection with one channel: replies to what it sent go to ``replies``;
    deliveries and publisher confirms are handled on the hot path."""

    def __init__(self, stats: Stats) -> None:
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.replies: asyncio.Queue[Frame] = asyncio.Queue()
        self.stats = stats
        self.closing = False
        self.blocked = 0  # connection.blocked notices received
        # publisher: what the broker confirmed, and a wake-up when it confirms more
        self.confirms = Confirms(0)
        self.progress = asyncio.Event()
        # consumer: acks are sent (multiple) once ``ack_every`` deliveries wait for one
        self.ack_every = 0
        self.prefetch = 0
        self.unacked = 0
        self.last_tag = 0
        self.last_seq = 0
        self.delivering = 0  # the tag of the delivery whose content is arriving
        self.body_left = 0
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            raise SystemExit(f"the broker closed an AMQP connection: {exc or 'end of stream'}")

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        now = time.perf_counter_ns()
        try:
            for kind, channel, payload in self.reader.frames():
                if kind == BODY:
                    self.on_body(payload, now)
                elif kind == METHOD:
                    self.on_method(channel, payload)
                elif kind == HEADER:
                    self.on_header(payload)
                # heartbeats: none were negotiated, so none are expected; a stray one is moot
        except (ProtocolFailure, struct.error) as failure:
            raise SystemExit(f"AMQP: {failure}") from None
        if self.unacked >= self.ack_every > 0:
            self.flush_acks()
        stats = self.stats
        if stats.delivered >= stats.expected and not stats.done.is_set():
            stats.last_delivery = time.perf_counter()
            stats.done.set()

    def on_method(self, channel: int, payload: bytes) -> None:
        class_id, method_id = METHOD_IDS.unpack_from(payload)
        if class_id == BASIC and method_id == DELIVER:
            self.delivering = deliver_tag(payload)[0]
        elif class_id == BASIC and method_id == ACK_METHOD:
            if self.confirms.ack(*ack_args(payload)):
                self.progress.set()
        elif class_id == BASIC and method_id == NACK:
            raise ProtocolFailure(f"the broker nacked publish {ack_args(payload)[0]}")
        else:
            reply = decode(METHOD, channel, payload)
            if isinstance(reply, commands.Connection.Close | commands.Channel.Close):
                raise ProtocolFailure(
                    f"the broker sent {reply.name}: {reply.reply_code} {reply.reply_text}"
                )
            if isinstance(reply, commands.Connection.Blocked):
                self.blocked += 1  # publishes wait on confirms anyway; counted in the result
            elif not isinstance(reply, commands.Connection.Unblocked):
                self.replies.put_nowait(reply)

    def on_header(self, payload: bytes) -> None:
        self.body_left = body_size(payload)
        self.parts = []
        if not self.body_left:
            raise ProtocolFailure("a delivery with an empty body: not one this run sent")

    def on_body(self, payload: bytes, now: int) -> None:
        self.body_left -= len(payload)
        if self.body_left:
            self.parts.append(payload)
            return
        if self.parts:
            payload = b"".join([*self.parts, payload])
        self.on_message(payload, now)

    def on_message(self, body: bytes, now: int) -> None:
        seq, sent_ns = stamp(body)
        stats = self.stats
        stats.delivered += 1
        stats.counts[seq] = min(stats.counts[seq] + 1, 255)
        if seq <= self.last_seq:
            stats.out_of_order += 1
        self.last_seq = seq
        stats.latencies_ns.append(now - sent_ns)
        self.unacked += 1
        self.last_tag = self.delivering

    def flush_acks(self) -> None:
        """Ack every delivery so far (``multiple``)."""
        if self.unacked and self.transport is not None:
            self.transport.write(ack_frame(CHANNEL, self.last_tag, True))
            self.unacked = 0

    def send(self, channel: int, method: Frame) -> None:
        assert self.transport is not None
        self.transport.write(marshal(method, channel))

    async def expect(self, kind: type[F]) -> F:
        reply = await asyncio.wait_for(self.replies.get(), REPLY_TIMEOUT_S)
        if not isinstance(reply, kind):
            raise SystemExit(f"AMQP: expected {kind.__name__}, the broker sent {reply.name}")
        return reply

    async def call(self, method: Frame, kind: type[F]) -> F:
        """Send ``method`` on the channel and wait for its reply."""
        self.send(CHANNEL, method)
        return await self.expect(kind)

    def close(self) -> None:
        """Close at once with a reset (the run is over; nothing is left unsettled)."""
        self.closing = True
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.close()


async def open_amqp(to: Target, vhost: str, stats: Stats) -> AmqpClient:
    """A logged-in connection (SASL PLAIN) with channel 1 open."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: AmqpClient(stats), to.host, to.port)
    assert client.transport is not None
    client.transport.write(ProtocolHeader().marshal())
    await client.expect(commands.Connection.Start)
    response = f"\0{to.who.login}\0{to.who.passcode}"
    client.send(0, commands.Connection.StartOk(PROPERTIES, "PLAIN", response))
    tune = await client.expect(commands.Connection.Tune)
    frame_max = min(tune.frame_max or FRAME_MAX, FRAME_MAX)
    client.send(0, commands.Connection.TuneOk(tune.channel_max, frame_max, 0))
    client.send(0, commands.Connection.Open(vhost))
    await client.expect(commands.Connection.OpenOk)
    await client.call(commands.Channel.Open(), commands.Channel.OpenOk)
    return client


async def consume(client: AmqpClient, queue: str, prefetch: int, ack_every: int) -> None:
    client.ack_every, client.prefetch = ack_every, prefetch
    await client.call(commands.Basic.Qos(prefetch_count=prefetch), commands.Basic.QosOk)
    await client.call(commands.Basic.Consume(queue=queue), commands.Basic.ConsumeOk)


async def settle(clients: list[AmqpClient]) -> None:
    """Ack what each consumer holds, and wait until the broker has read it (a reply to a
    later frame on the channel)."""
    for client in clients:
        client.flush_acks()
    for client in clients:
        qos = commands.Basic.Qos(prefetch_count=client.prefetch)
        await client.call(qos, commands.Basic.QosOk)


async def enable_confirms(client: AmqpClient, capacity: int) -> None:
    client.confirms = Confirms(capacity)
    await client.call(commands.Confirm.Select(), commands.Confirm.SelectOk)


async def produce(
    client: AmqpClient, template: PublishTemplate, count: int, window: int, stall: float
) -> None:
    """Publish messages 1..``count``, at most ``window`` unconfirmed; return once all are
    confirmed (the channel's delivery tags go on from its earlier publishes); ``stall``
    seconds without a new confirm fail the run."""
    assert client.transport is not None
    write, confirms, message = client.transport.write, client.confirms, template.message
    target = confirms.published + count
    seq = 0
    while seq < count:
        room = min(window - confirms.outstanding, count - seq, BATCH)
        if room <= 0:
            client.progress.clear()
            await asyncio.wait_for(client.progress.wait(), stall)
            continue
        clock = time.perf_counter_ns
        write(b"".join([message(each, clock()) for each in range(seq + 1, seq + room + 1)]))
        seq += room
        confirms.published += room
        await asyncio.sleep(0)  # let the receivers read
    while confirms.confirmed < target:
        client.progress.clear()
        await asyncio.wait_for(client.progress.wait(), stall)


async def delete_queue(client: AmqpClient, queue: str) -> None:
    """Delete a queue the run emptied; one with messages left means some went unacked."""
    left = await client.call(commands.Queue.Delete(queue=queue), commands.Queue.DeleteOk)
    if left.message_count:
        raise SystemExit(f"queue {queue} still held {left.message_count} messages")


def restart(clients: list[AmqpClient], stats: Stats) -> None:
    for client in clients:
        client.stats, client.last_seq = stats, 0


async def run_queue(args: argparse.Namespace, to: Target) -> Result:
    messages, queue = args.messages, f"amqp-bench-{time.monotonic_ns()}"
    producer = await open_amqp(to, args.vhost, Stats.for_messages(0, 1))
    await producer.call(
        commands.Queue.Declare(queue=queue, durable=args.persistent), commands.Queue.DeclareOk
    )
    await enable_confirms(producer, 2 * messages)
    template = PublishTemplate.build(CHANNEL, "", queue, args.size, args.persistent)
    async with Meter(to.pid) as meter:
        await produce(producer, template, messages, args.window, args.timeout)
        elapsed = time.perf_counter() - meter.started
    published = meter.result("publish", messages, elapsed, [])
    stats = Stats.for_messages(messages, messages)
    consumers = [await open_amqp(to, args.vhost, stats) for _ in range(args.consumers)]
    async with Meter(to.pid) as meter:
        for consumer in consumers:
            await consume(consumer, queue, args.prefetch, args.ack_every)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = stats.last_delivery - meter.started
    check(stats, messages, 1)
    consumed = meter.result("consume", messages, elapsed, [])
    await settle(consumers)
    stats = Stats.for_messages(messages, messages)
    restart(consumers, stats)
    async with Meter(to.pid) as meter:
        await produce(producer, template, messages, args.window, args.timeout)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = time.perf_counter() - meter.started
    check(stats, messages, 1)
    await settle(consumers)
    await delete_queue(producer, queue)
    for client in [*consumers, producer]:
        client.close()
    result = meter.result("queue", messages, elapsed, stats.latencies_ns)
    result.extra = {
        "publish_rate": published.rate,
        "publish_cpu_per_100k": published.cpu_per_100k,
        "consume_rate": consumed.rate,
        "consume_cpu_per_100k": consumed.cpu_per_100k,
        "blocked": producer.blocked,
    }
    return result


async def run_fanout(args: argparse.Namespace, to: Target) -> Result:
    messages, exchange = args.messages, f"amqp-fanout-{time.monotonic_ns()}"
    producer = await open_amqp(to, args.vhost, Stats.for_messages(0, 1))
    declare = commands.Exchange.Declare(
        exchange=exchange, exchange_type="fanout", durable=args.persistent
    )
    await producer.call(declare, commands.Exchange.DeclareOk)
    stats = Stats.for_messages(messages, messages * args.queues)
    queues = [f"{exchange}-{n}" for n in range(args.queues)]
    consumers = []
    for queue in queues:
        consumer = await open_amqp(to, args.vhost, stats)
        await consumer.call(
            commands.Queue.Declare(queue=queue, durable=args.persistent), commands.Queue.DeclareOk
        )
        bind = commands.Queue.Bind(queue=queue, exchange=exchange)
        await consumer.call(bind, commands.Queue.BindOk)
        await consume(consumer, queue, args.prefetch, args.ack_every)
        consumers.append(consumer)
    await enable_confirms(producer, messages)
    template = PublishTemplate.build(CHANNEL, exchange, "", args.size, args.persistent)
    async with Meter(to.pid) as meter:
        await produce(producer, template, messages, args.window, args.timeout)
        await asyncio.wait_for(stats.done.wait(), args.timeout)
        elapsed = time.perf_counter() - meter.started
    check(stats, messages, args.queues)
    await settle(consumers)
    for queue in queues:
        await delete_queue(producer, queue)
    await producer.call(commands.Exchange.Delete(exchange=exchange), commands.Exchange.DeleteOk)
    for client in [*consumers, producer]:
        client.close()
    result = meter.result("fanout", stats.delivered, elapsed, stats.latencies_ns)
    result.extra = {"blocked": producer.blocked}
    return result


async def run_scenario(args: argparse.Namespace, to: Target) -> Result:
    if args.scenario == "fanout":
        return await run_fanout(args, to)
    return await run_queue(args, to)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["queue", "fanout"])
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--consumers", type=int, default=1, help="queue: consumer connections")
    parser.add_argument("--queues", type=int, default=10, help="fanout: queues bound")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--ack-every", type=int, default=None, help="default: prefetch / 4")
    parser.add_argument("--window", type=int, default=1000, help="unconfirmed publishes")
    parser.add_argument("--persistent", action="store_true", help="durable, persistent")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    add_target_options(parser, vhost=True)
    args = parser.parse_args(argv)
    if args.messages is None:
        args.messages = 100_000 if args.scenario == "queue" else 20_000
    if args.ack_every is None:
        args.ack_every = max(1, args.prefetch // 4)
    if not 1 <= args.ack_every <= args.prefetch:
        parser.error("--ack-every must be between 1 and --prefetch")
    if args.messages < 1 or args.window < 1 or args.consumers < 1 or args.queues < 1:
        parser.error("--messages, --window, --consumers and --queues must be positive")
    if args.size < 16:
        parser.error("--size must be at least 16 (a body holds its sequence number and time)")
    check_target(parser, args)
    args.connections = 1 + (args.queues if args.scenario == "fanout" else args.consumers)
    return args


async def main() -> None:
    await measure(parse_args(), run_scenario, protocol="amqp")


if __name__ == "__main__":
    run_loop(main)
