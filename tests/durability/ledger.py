"""What clients were told, and the invariants a crash must not break.

Each message body is unique (``<producer>-<n>``). The ledger records, from the clients'
side only, which publishes were confirmed (RECEIPT) or refused (ERROR), every delivery with
its ``redelivered`` flag, and which ACKs were confirmed. :func:`violations` sorts each
message as delivered, lost, duplicated or unexpected and lists every broken rule:

1. no confirmed message is lost;
2. a publish answered with ERROR is never delivered;
3. an ACK that got its receipt is never followed by a redelivery of that message;
4. every repeat of a message is marked redelivered;
5. one producer's messages are first delivered in the order they were published;
6. nothing is delivered that nobody published.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Ledger:
    published: list[str] = field(default_factory=list)  # in publish order, all producers
    confirmed: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    deliveries: list[tuple[str, bool]] = field(default_factory=list)  # (body, redelivered)
    acked: list[tuple[int, str]] = field(default_factory=list)  # (delivery index, body)
    # a test may wait for a condition on the ledger: ``progressed`` is set once it holds
    on_progress: Callable[[], bool] | None = None
    progressed: asyncio.Event | None = None

    def tick(self) -> None:
        """Something was recorded: set ``progressed`` if the awaited condition holds."""
        if self.on_progress is not None and self.progressed is not None and self.on_progress():
            self.progressed.set()

    def delivered(self, body: str, redelivered: bool) -> int:
        self.deliveries.append((body, redelivered))
        return len(self.deliveries) - 1


def violations(ledger: Ledger) -> list[str]:
    """Every broken invariant, one line each (empty when all hold)."""
    problems: list[str] = []
    counts = Counter(body for body, _ in ledger.deliveries)
    known = set(ledger.published)
    lost = sorted(ledger.confirmed - set(counts))
    if lost:
        problems.append(f"lost {len(lost)} confirmed messages, e.g. {lost[:3]}")
    refused_delivered = sorted(ledger.refused & set(counts))
    if refused_delivered:
        problems.append(f"delivered refused publishes: {refused_delivered[:3]}")
    unexpected = sorted(set(counts) - known)
    if unexpected:
        problems.append(f"delivered unknown messages: {unexpected[:3]}")
    problems += _unmarked_repeats(ledger)
    problems += _redelivered_after_ack(ledger)
    problems += _out_of_order(ledger)
    return problems


def _unmarked_repeats(ledger: Ledger) -> list[str]:
    seen: set[str] = set()
    bad = []
    for body, redelivered in ledger.deliveries:
        if body in seen and not redelivered:
            bad.append(body)
        seen.add(body)
    return [f"repeats not marked redelivered: {bad[:3]}"] if bad else []


def _redelivered_after_ack(ledger: Ledger) -> list[str]:
    bad = []
    for index, body in ledger.acked:
        later = [b for b, _ in ledger.deliveries[index + 1 :] if b == body]
        if later:
            bad.append(body)
    return [f"redelivered after a confirmed ack: {bad[:3]}"] if bad else []


def _out_of_order(ledger: Ledger) -> list[str]:
    position = {body: n for n, body in enumerate(ledger.published)}
    last: dict[str, int] = {}
    seen: set[str] = set()
    bad = []
    for body, _ in ledger.deliveries:
        if body in seen or body not in position:
            continue
        seen.add(body)
        producer = body.rsplit("-", 1)[0]
        if position[body] < last.get(producer, -1):
            bad.append(body)
        last[producer] = position[body]
    return [f"first deliveries out of publish order: {bad[:3]}"] if bad else []


def summary(ledger: Ledger) -> dict[str, int]:
    """How many messages ended up delivered, lost, duplicated or unexpected."""
    counts = Counter(body for body, _ in ledger.deliveries)
    return {
        "published": len(ledger.published),
        "confirmed": len(ledger.confirmed),
        "delivered": len(counts),
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "lost": len(ledger.confirmed - set(counts)),
        "unexpected": len(set(counts) - set(ledger.published)),
    }
