"""Cost of routing one message through a topic channel with many bindings.

Prints the median of 5 runs, in µs per routed key, for a topic router holding BINDINGS
patterns (``svc<n>.*.error``, ``svc<n>.#``, ``svc<n>.<level>.<n>`` and a few ``#``):

- ``trie, repeated keys``: keys drawn from a few hundred (the router's answer cache hits);
- ``trie, fresh keys``: every key new (the trie is walked each time);
- ``regex per binding``: the straightforward way, one compiled regex per binding tried on
  every key, for comparison;

and, through the engine, µs per publish to a topic channel with as many pattern
subscribers, of which a handful match each message.

Usage:
    python benchmarks/bench_routing.py [--bindings 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time
from collections.abc import Callable

from buzon.auth import Principal
from buzon.broker import Broker, Message
from buzon.broker.destinations import new_record
from buzon.broker.routing import TopicRouter
from buzon.errors import ErrorCode
from buzon.store import ChannelType, DestinationKind, Role

LEVELS = ("info", "warn", "error", "debug")


def patterns(count: int) -> list[str]:
    """``count`` binding patterns of the shapes a busy topic channel has."""
    shapes = ("svc{n}.*.error", "svc{n}.#", "svc{n}.{level}.{n}", "*.{level}.{n}")
    found = [
        shapes[i % len(shapes)].format(n=i // len(shapes), level=LEVELS[i % len(LEVELS)])
        for i in range(count - 3)
    ]
    return [*found, "#", "#.error", "*.*.*"]


def keys(count: int, services: int, offset: int = 0) -> list[str]:
    return [
        f"svc{(i * 7919) % services}.{LEVELS[i % len(LEVELS)]}.{i + offset}" for i in range(count)
    ]


def regex(pattern: str) -> re.Pattern[str]:
    """A regex doing about a topic pattern's work, for the comparison's cost only (``#``
    is approximated by ``.*``)."""
    words = (
        "[^.]*" if w == "*" else ".*" if w == "#" else re.escape(w) for w in pattern.split(".")
    )
    return re.compile(r"\.".join(words))


def per_call(run: Callable[[], int], calls: int, runs: int) -> float:
    """Median µs per call of ``run`` (which makes ``calls`` calls)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


class Sink:
    """Counts deliveries; the engine's DeliverySink."""

    def __init__(self) -> None:
        self.count = 0

    def deliver(self, subscription_id: str, message: Message, ack_id: str | None, r: bool) -> None:
        self.count += 1

    def close_session(self, code: ErrorCode, detail: str) -> None:
        raise AssertionError(detail)


def engine_publish(bindings: list[str], sample: list[str], runs: int) -> tuple[float, float]:
    """µs per publish to a topic channel with a pattern subscriber per binding, and the
    deliveries per publish."""
    broker = Broker()
    record = new_record(DestinationKind.CHANNEL, "logs", "owner", None, 0.0)
    broker.add_destination(dataclasses.replace(record, channel_type=ChannelType.TOPIC))
    sink = Sink()
    who = Principal("owner", "owner", Role.USER)
    for n, pattern in enumerate(bindings):
        broker.open_session(sink, who).subscribe(str(n), f"/topic/logs/{pattern}")
    publisher = broker.open_session(Sink(), who)
    destinations = [f"/topic/logs/{key}" for key in sample]

    def run() -> int:
        for destination in destinations:
            publisher.publish(destination, (), b"x")
        return len(destinations)

    cost = per_call(run, len(destinations), runs)
    return cost, sink.count / (len(destinations) * runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindings", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bound = patterns(args.bindings)
    services = args.bindings // 4
    router: TopicRouter[int] = TopicRouter()
    for n, pattern in enumerate(bound):
        router.add(pattern, n)
    repeated = keys(300, services) * 20
    fresh = [keys(5000, services, offset=run * 5000) for run in range(args.runs)]
    rounds = iter(fresh)

    def trie_fresh() -> int:
        sample = next(rounds)
        for key in sample:
            router.match(key)
        return len(sample)

    def trie_repeated() -> int:
        for key in repeated:
            router.match(key)
        return len(repeated)

    compiled = [regex(p) for p in bound]
    few = keys(50, services)

    def regexes() -> int:
        for key in few:
            for pattern in compiled:
                pattern.fullmatch(key)
        return len(few)

    matched = statistics.mean(len(router.match(key)) for key in repeated[:300])
    print(f"topic router, {len(bound)} bindings, {matched:.1f} matches per key (median µs/key)")
    print(f"  trie, repeated keys:  {per_call(trie_repeated, len(repeated), args.runs):9.2f}")
    print(f"  trie, fresh keys:     {per_call(trie_fresh, 5000, args.runs):9.2f}")
    print(f"  regex per binding:    {per_call(regexes, len(few), args.runs):9.2f}")
    cost, delivered = engine_publish(bound, keys(2000, services), args.runs)
    print(f"engine: publish to a topic channel with {len(bound)} pattern subscribers:")
    print(f"  {cost:.2f} µs per publish, {delivered:.1f} deliveries each")


if __name__ == "__main__":
    main()
