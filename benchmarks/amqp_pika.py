"""pika as the client: what an application written with pika's ``BlockingConnection`` gets
from a broker, and what it costs the broker.

One run: a durable queue; ``--messages`` persistent messages of ``--size`` bytes published
on a channel in confirm mode (pika's blocking ``basic_publish`` waits for each confirm, as
its applications do), then consumed on another connection with manual acks, one per message,
and a prefetch of ``--prefetch``. The phases run one after the other, each timed; the rate
is messages over both phases' time, beside the broker's CPU over both. Every message is
checked by the sequence number in its body, as in ``amqp_load.py``.

Usage:
    python benchmarks/amqp_pika.py pika [--messages 20000] --port 5672 --pid 1234 \\
        --login guest --passcode guest
    python benchmarks/amqp_pika.py pika   # against a buzon serve --amqp-port 0 started here
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import pika

from amqp_frames import STAMP, stamp
from loadgen import Target, add_target_options, check_target, measure, run_loop
from stomp_load import Meter, Result, Stats, check, cpu_seconds


def connect(to: Target, vhost: str) -> Any:
    credentials = pika.PlainCredentials(to.who.login, to.who.passcode)
    parameters = pika.ConnectionParameters(to.host, to.port, vhost, credentials)
    return pika.BlockingConnection(parameters)


def publish_all(channel: Any, queue: str, messages: int, size: int) -> None:
    """Publish with a confirm per message (pika raises if one is refused or nacked)."""
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    padding = b"x" * (size - STAMP.size)
    for seq in range(1, messages + 1):
        body = STAMP.pack(seq, time.perf_counter_ns()) + padding
        channel.basic_publish("", queue, body, persistent, mandatory=True)


def consume_all(channel: Any, queue: str, stats: Stats, prefetch: int) -> None:
    """Consume until ``stats.expected`` messages arrived, acking each."""
    last_seq = 0

    def on_message(channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        nonlocal last_seq
        seq, sent_ns = stamp(body)
        stats.delivered += 1
        stats.counts[seq] = min(stats.counts[seq] + 1, 255)
        if seq <= last_seq:
            stats.out_of_order += 1
        last_seq = seq
        stats.latencies_ns.append(time.perf_counter_ns() - sent_ns)
        channel.basic_ack(method.delivery_tag)
        if stats.delivered >= stats.expected:
            channel.stop_consuming()

    channel.basic_qos(prefetch_count=prefetch)
    channel.basic_consume(queue, on_message)
    channel.start_consuming()


async def run_pika(args: argparse.Namespace, to: Target) -> Result:
    messages, queue = args.messages, f"pika-bench-{time.monotonic_ns()}"
    producer, consumer = connect(to, args.vhost), connect(to, args.vhost)
    publisher = producer.channel()
    publisher.queue_declare(queue, durable=True)
    stats = Stats.for_messages(messages, messages)
    async with Meter(to.pid) as meter:
        await asyncio.to_thread(publish_all, publisher, queue, messages, args.size)
        publish_s = time.perf_counter() - meter.started
        publish_cpu = (cpu_seconds(to.pid) - meter.cpu) if to.pid else float("nan")
        await asyncio.to_thread(consume_all, consumer.channel(), queue, stats, args.prefetch)
        elapsed = time.perf_counter() - meter.started
    check(stats, messages, 1)
    left = publisher.queue_delete(queue).method.message_count
    consumer.close()
    producer.close()
    if left:
        raise SystemExit(f"queue {queue} still held {left} messages")
    # send-to-delivery times span the phases: no latency is reported
    result = meter.result("pika", messages, elapsed, [])
    consume_cpu = result.broker_cpu_s - publish_cpu
    result.extra = {
        "publish_rate": messages / publish_s,
        "publish_cpu_per_100k": publish_cpu * 100_000 / messages,
        "consume_rate": messages / (elapsed - publish_s),
        "consume_cpu_per_100k": consume_cpu * 100_000 / messages,
    }
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["pika"])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--persistent", action="store_true", help="always: for compare.py")
    parser.add_argument("--runs", type=int, default=5)
    add_target_options(parser, vhost=True)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.size < STAMP.size:
        parser.error(f"--messages must be positive and --size at least {STAMP.size}")
    check_target(parser, args)
    args.connections = 2
    return args


async def main() -> None:
    await measure(parse_args(), run_pika, protocol="amqp")


if __name__ == "__main__":
    run_loop(main)
