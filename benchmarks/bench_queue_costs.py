"""What a queue's periodic expiry sweep and a give-back cost, against the backlog's size.

- expire: one sweep (``Broker.expire_messages``, run every second by ``buzon serve``) over
  one queue of N waiting messages that cannot expire;
- give-back: a pulled message newer than the head of a backlog of N returns (a NACK).

Each is timed over a few repeats on a fresh broker; the median is printed per N.

Usage:
    python benchmarks/bench_queue_costs.py [--sizes 10000 100000 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from buzon.auth import Principal
from buzon.broker import Broker, Queue
from buzon.store import DestinationKind, Role

BODY = b"x" * 16
NAME = "bench"


def backlog(size: int) -> tuple[Broker, Queue]:
    broker = Broker()
    producer = broker.open_session(_Quiet(), Principal("id-p", "p", Role.USER))
    for _ in range(size):
        producer.publish(f"/queue/{NAME}", (), BODY)
    queue = broker.destination(DestinationKind.QUEUE, NAME)
    assert isinstance(queue, Queue)
    return broker, queue


class _Quiet:
    def deliver(self, *args: object) -> None:
        raise AssertionError("no subscriptions here")

    def close_session(self, *args: object) -> None:
        raise AssertionError("never closed")


def expire_seconds(size: int, runs: int) -> float:
    broker, _ = backlog(size)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert broker.expire_messages(time.time()) == 0
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def give_back_seconds(size: int, runs: int) -> float:
    _, queue = backlog(size)
    times = []
    for _ in range(runs):
        (older, _), (newer, _) = queue.take(2)
        queue.return_taken([older])  # now the head
        start = time.perf_counter()
        queue.return_taken([newer])  # newer than the head
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for size in args.sizes:
        expire = expire_seconds(size, args.runs)
        give_back = give_back_seconds(size, args.runs)
        print(
            f"backlog {size:>9,}: expire sweep {expire * 1e6:>10,.1f} us"
            f"   give-back newer than head {give_back * 1e6:>10,.1f} us"
        )


if __name__ == "__main__":
    main()
