"""Engine throughput without I/O: deliveries per second through ``buzon.broker``.

Two scenarios, each run five times on a fresh broker; the median is printed:

- queue: 200 000 messages of 128 B to one queue with 4 client-individual consumers, each
  acking every delivery from inside its sink (what a fast consumer over a socket amounts to);
- fan-out: 20 000 messages of 128 B to one channel with 10 auto-ack subscribers;
- keyed queue (``--keys``): the queue scenario with a new ``idempotency-key`` (a uuid4, as
  the SDK sends) on every publish; and, in one more run under tracemalloc, the bytes each
  key then holds (every message was acked, so the keys are what is left).

Usage:
    python benchmarks/bench_engine.py [--runs 5] [--keys]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
import uuid

from buzon.auth import Principal
from buzon.broker import AckMode, Broker, Message, PublishOptions, Session
from buzon.errors import ErrorCode
from buzon.store import Role

BODY = b"x" * 128


def user(name: str) -> Principal:
    return Principal(f"id-{name}", name, Role.USER)


class AckingSink:
    """Acks every delivery as it arrives (client-individual)."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.count = 0
        self.session = broker.open_session(self, user(name))

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        self.count += 1
        self.session.ack(ack_id or "")

    def close_session(self, code: ErrorCode, detail: str) -> None:
        raise AssertionError(f"unexpected close: {code.name} {detail}")


class CountingSink:
    """Counts deliveries (auto ack)."""

    def __init__(self) -> None:
        self.count = 0

    def deliver(
        self, subscription_id: str, message: Message, ack_id: str | None, redelivered: bool
    ) -> None:
        self.count += 1

    def close_session(self, code: ErrorCode, detail: str) -> None:
        raise AssertionError(f"unexpected close: {code.name} {detail}")


def consumed_queue(consumers: int) -> tuple[Broker, list[AckingSink], Session]:
    """A broker whose queue ``/queue/bench`` has acking consumers, and a producer."""
    broker = Broker()
    sinks = []
    for n in range(consumers):
        sink = AckingSink(broker, f"consumer-{n}")
        sink.session.subscribe("s", "/queue/bench", AckMode.CLIENT_INDIVIDUAL)
        sinks.append(sink)
    return broker, sinks, broker.open_session(CountingSink(), user("producer"))


def queue_run(messages: int, consumers: int) -> float:
    """Deliveries per second for one queue run."""
    broker, sinks, producer = consumed_queue(consumers)
    publish = producer.publish
    start = time.perf_counter()
    for _ in range(messages):
        publish("/queue/bench", (), BODY)
    elapsed = time.perf_counter() - start
    delivered = sum(sink.count for sink in sinks)
    assert delivered == messages, delivered
    assert all(sink.count > 0 for sink in sinks)
    assert broker.statistics().queued_bytes == 0
    return delivered / elapsed


def keyed_queue_run(messages: int, consumers: int, *, traced: bool = False) -> float:
    """Deliveries per second for one queue run with a new idempotency key per publish; with
    ``traced``, instead the bytes Python holds per key once every message was acked (what
    the keys cost: their text, message ids and index entries), measured by tracemalloc."""
    broker, sinks, producer = consumed_queue(consumers)
    publish = producer.publish
    gc.collect()
    if traced:
        tracemalloc.start()
    # made before the clock starts (a client's cost, not the broker's); under tracemalloc
    # they are counted too, as the index keeps the key text
    # (the key also travels as a header, as a STOMP SEND's does)
    keyed = [
        ((("idempotency-key", key),), PublishOptions(idempotency_key=key))
        for key in (str(uuid.uuid4()) for _ in range(messages))
    ]
    start = time.perf_counter()
    for headers, options in keyed:
        publish("/queue/bench", headers, BODY, options)
    del keyed
    elapsed = time.perf_counter() - start
    delivered = sum(sink.count for sink in sinks)
    assert delivered == messages, delivered
    held = broker.statistics().idempotency_keys
    assert held == messages, held
    if traced:
        gc.collect()
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return size / held
    return delivered / elapsed


def fanout_run(messages: int, subscribers: int) -> float:
    """Deliveries per second for one channel run."""
    broker = Broker()
    sinks = []
    for n in range(subscribers):
        sink = CountingSink()
        broker.open_session(sink, user(f"subscriber-{n}")).subscribe("s", "/topic/bench")
        sinks.append(sink)
    producer = broker.open_session(CountingSink(), user("producer"))
    publish = producer.publish
    start = time.perf_counter()
    for _ in range(messages):
        publish("/topic/bench", (), BODY)
    elapsed = time.perf_counter() - start
    delivered = sum(sink.count for sink in sinks)
    assert delivered == messages * subscribers, delivered
    return delivered / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", action="store_true", help="also the keyed queue scenario")
    args = parser.parse_args()
    queue = [queue_run(200_000, 4) for _ in range(args.runs)]
    fanout = [fanout_run(20_000, 10) for _ in range(args.runs)]
    print(
        f"queue   200000 x 128 B, 4 client-individual consumers: "
        f"median {statistics.median(queue):>10,.0f} deliveries/s"
    )
    print(
        f"fan-out  20000 x 128 B, 10 auto subscribers:          "
        f"median {statistics.median(fanout):>10,.0f} deliveries/s"
    )
    if args.keys:
        keyed = [keyed_queue_run(200_000, 4) for _ in range(args.runs)]
        per_key = keyed_queue_run(200_000, 4, traced=True)
        print(
            f"keyed queue 200000 x 128 B, a new key each:         "
            f"median {statistics.median(keyed):>10,.0f} deliveries/s,"
            f" {per_key:,.0f} B held per key"
        )


if __name__ == "__main__":
    main()
