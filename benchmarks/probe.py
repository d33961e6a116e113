"""Latency probe for the backlog scenario: while another process loads the broker, time
non-persistent messages sent at a steady rate through queues of their own.

Runs in its own process, so the load generator's busy event loop never delays a probe
message or its timestamp. For each rate in ``--rates`` it opens a producer and a consumer
(client-individual acks) on a fresh queue, prints ``ready`` once all are subscribed, then
sends the i-th message of each rate at ``i / rate`` seconds (one write each) until a line
or end of file arrives on stdin. It then waits for the messages in flight, checks that each
arrived exactly once and in order, and prints one JSON line: per rate, how many were sent
and the p50, p99 and largest send-to-delivery times in ms.

Usage (normally started by backlog.py):
    python benchmarks/probe.py --port 61613 --login guest --passcode guest --rates 20,1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass

from loadgen import run_loop
from stomp_load import Client, Login, Stats, check, open_client, percentile, subscribe

# Seconds the messages in flight get to arrive once sending stops.
DRAIN_S = 30.0


@dataclass
class Lane:
    """One rate: its producer, its consumer and what the consumer saw."""

    rate: float
    destination: str
    producer: Client
    consumer: Client
    stats: Stats
    sent: int = 0


async def open_lane(args: argparse.Namespace, rate: float) -> Lane:
    who = Login(args.login, args.passcode)
    # every message gets a slot in the delivery counts: enough for the longest run allowed
    capacity = int(rate * args.max_seconds) + 1
    stats = Stats.for_messages(capacity, capacity)
    destination = f"/queue/probe-{rate:g}-{time.monotonic_ns()}"
    consumer = await open_client(args.host, args.port, who, stats, ack=True)
    await subscribe(consumer, destination, "client-individual", args.prefetch)
    producer = await open_client(args.host, args.port, who, Stats.for_messages(0, 1))
    return Lane(rate, destination, producer, consumer, stats)


async def send_until(lane: Lane, head: bytes, body: bytes, stop: asyncio.Event) -> None:
    """Send the i-th message at ``i / rate`` seconds from now until ``stop`` is set (or the
    delivery counts are full)."""
    assert lane.producer.transport is not None
    started = time.perf_counter()
    capacity = len(lane.stats.counts) - 1
    while not stop.is_set() and lane.sent < capacity:
        delay = started + (lane.sent + 1) / lane.rate - time.perf_counter()
        if delay > 0:
            # wakes at the send time, or at once when told to stop
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except TimeoutError:
                pass
        lane.sent += 1
        lane.producer.transport.write(
            b"%sseq:%d\nts:%d\n\n%s\x00" % (head, lane.sent, time.perf_counter_ns(), body)
        )


async def main() -> None:
    args = parse_args()
    lanes = [await open_lane(args, rate) for rate in args.rates]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    print("ready", flush=True)
    body = b"x" * args.size
    await asyncio.gather(
        *(
            send_until(lane, send_head(lane.destination, args.size, not args.unmarked), body, stop)
            for lane in lanes
        )
    )
    deadline = time.monotonic() + DRAIN_S
    while any(lane.stats.delivered < lane.sent for lane in lanes):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    summaries = []
    for lane in lanes:
        lane.producer.close()
        lane.consumer.close()
        check(lane.stats, lane.sent, 1)
        latencies = sorted(lane.stats.latencies_ns)
        summaries.append(
            {
                "rate": lane.rate,
                "sent": lane.sent,
                "p50_ms": percentile(latencies, 0.5),
                "p99_ms": percentile(latencies, 0.99),
                "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
            }
        )
    print(json.dumps(summaries), flush=True)


def send_head(destination: str, size: int, mark: bool) -> bytes:
    """The fixed part of a probe SEND; ``mark`` adds ``persistent:false`` (buzon keeps a
    message sent without the header on disk)."""
    extra = "persistent:false\n" if mark else ""
    return f"SEND\ndestination:{destination}\ncontent-length:{size}\n{extra}".encode()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--passcode", required=True)
    parser.add_argument("--rates", default="20,1000", help="msgs/s, comma-separated")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--unmarked",
        action="store_true",
        help="send no persistent:false header (RabbitMQ: its messages are transient"
        " unless marked, and its STOMP plugin reads persistent:false on a SEND as"
        " declaring the queue not durable, which clashes with the durable queue the"
        " consumer's SUBSCRIBE declared)",
    )
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument(
        "--max-seconds", type=float, default=7200, help="the longest a probe may send"
    )
    args = parser.parse_args()
    try:
        args.rates = [float(rate) for rate in args.rates.split(",")]
    except ValueError:
        parser.error(f"--rates must be numbers separated by commas, not {args.rates!r}")
    if not args.rates or min(args.rates) <= 0:
        parser.error("--rates must be positive")
    return args


if __name__ == "__main__":
    run_loop(main)
