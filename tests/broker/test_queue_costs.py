"""The expiry sweep and a give-back cost what they touch, not the size of the backlog.

Work is counted, not timed: :func:`steps` counts the Python-level events (calls, lines,
returns) the interpreter runs for one engine call, so the same call on a backlog of 100
and of 10 000 messages must take the same number of steps. The order rules of
docs/durability.md are checked alongside: what comes out still comes out oldest first.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from buzon.broker import RELEASE, AckMode, Broker
from tests.broker.helpers import Clock, Peer, numbered, open_peer, send, user

Q = "/queue/costly"
SIZES = (100, 10_000)


def steps(call: Callable[[], object]) -> int:
    """How many interpreter trace events ``call`` runs (work done in Python code)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += 1
        return trace

    previous = sys.gettrace()
    # the collector may run finalizers of other tests' objects in the middle: not our work
    gc.disable()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
        gc.enable()
    return count


def expires_in(clock: Clock, seconds: float) -> tuple[tuple[str, str], ...]:
    return (("expires", str(int((clock.now + seconds) * 1000))),)


def sweep_over_lasting_messages(size: int) -> int:
    """Steps of one sweep over ``size`` waiting messages that cannot expire yet."""
    clock = Clock()
    broker = Broker(clock=clock)
    open_peer(broker, "alice").publish(Q, *numbered(size))
    clock.now += 3600
    work = steps(lambda: broker.expire_messages(clock.now))
    assert broker.statistics().queues[0].depth == size
    return work


def test_a_sweep_touches_no_message_that_cannot_expire() -> None:
    assert sweep_over_lasting_messages(SIZES[0]) == sweep_over_lasting_messages(SIZES[1])


def sweep_with_four_due(size: int) -> int:
    """Steps of a sweep that retires 4 short-lived messages among ``size`` long-lived ones
    (none at the head); what is left still comes out in order."""
    clock = Clock()
    broker = Broker(clock=clock)
    producer = open_peer(broker, "alice")
    short = {n for n in range(size) if n % (size // 4) == 1}
    for n in range(size):
        send(producer.session, Q, expires_in(clock, 1 if n in short else 3600), b"%d" % n)
    clock.now += 2
    expired: list[int] = []
    work = steps(lambda: expired.append(broker.expire_messages(clock.now)))
    assert expired == [4]
    assert broker.statistics().queues[0].depth == size - 4
    consumer = open_peer(broker).subscribe(Q)
    assert consumer.bodies() == [b"%d" % n for n in range(size) if n not in short]
    return work


def test_a_sweep_costs_the_messages_that_expire_wherever_they_wait() -> None:
    assert sweep_with_four_due(SIZES[0]) == sweep_with_four_due(SIZES[1])


def give_back_behind_the_head(size: int) -> int:
    """Steps of a NACK of a pulled message newer than the head of ``size`` waiting ones;
    afterwards they come out in their original order."""
    broker = Broker()
    open_peer(broker, "alice").publish(Q, *numbered(size))
    puller = user("puller")
    older, newer = broker.pull(puller, "costly", 2, 30.0, 0.0)
    broker.settle(puller, "costly", [older.receipt], RELEASE)  # the head again
    work = steps(lambda: broker.settle(puller, "costly", [newer.receipt], RELEASE))
    consumer = open_peer(broker).subscribe(Q, AckMode.CLIENT_INDIVIDUAL, prefetch=3)
    assert consumer.bodies() == numbered(3)
    assert consumer.flags() == [True, True, False]
    return work


def test_a_give_back_newer_than_the_head_does_not_copy_the_backlog() -> None:
    assert give_back_behind_the_head(SIZES[0]) == give_back_behind_the_head(SIZES[1])


def durable_away(broker: Broker) -> Peer:
    peer = open_peer(broker, "alice")
    peer.session.subscribe("sub", "/topic/news", durable_name="inbox")
    peer.session.close()
    return peer


def test_the_sweep_also_retires_expired_messages_of_durable_backlogs() -> None:
    clock = Clock()
    broker = Broker(clock=clock)
    durable_away(broker)
    producer = open_peer(broker, "carol")
    send(producer.session, "/topic/news", expires_in(clock, 1), b"stale soon")
    producer.session.publish("/topic/news", (), b"keeps")
    clock.now += 2
    assert broker.expire_messages(clock.now) == 1
    ((_, backlog),) = broker.durable_subscriptions("news")
    assert backlog.statistics().depth == 1
