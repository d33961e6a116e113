"""Message rates: the broker's running totals sampled once a second.

The overview and the dashboard show messages in and out per second. Rates come from the
difference between samples, so the engine only keeps monotonic counters and never a clock.
The last ``history`` samples are kept (five minutes at one per second) for live charts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise

from buzon.broker import BrokerStats, address
from buzon.store import DestinationKind


@dataclass(frozen=True, slots=True)
class Sample:
    """Totals at one moment.

    Attributes:
        at: when (seconds, monotonic).
        published: messages published since start.
        delivered: deliveries made since start.
    """

    at: float
    published: int
    delivered: int


class RateMeter:
    """Keeps recent samples and turns them into rates.

    Args:
        history: samples kept.

    Attributes:
        destinations: the same rates per queue and channel.
    """

    def __init__(self, history: int = 300) -> None:
        self._samples: deque[Sample] = deque(maxlen=history)
        self.destinations = DestinationRates()

    def sample(self, at: float, published: int, delivered: int) -> None:
        """Record the totals at time ``at``."""
        self._samples.append(Sample(at, published, delivered))

    def rates(self, span: float = 5.0) -> tuple[float, float]:
        """Published and delivered per second over about the last ``span`` seconds."""
        samples = self._samples
        if len(samples) < 2:
            return (0.0, 0.0)
        last = samples[-1]
        first = next((s for s in samples if s.at >= last.at - span), samples[0])
        if first is last:
            first = samples[-2]
        elapsed = last.at - first.at
        if elapsed <= 0:
            return (0.0, 0.0)
        return (
            (last.published - first.published) / elapsed,
            (last.delivered - first.delivered) / elapsed,
        )

    def history(self) -> list[Sample]:
        """The samples kept, oldest first."""
        return list(self._samples)

    def per_second(self) -> list[tuple[float, float, float]]:
        """``(at, published/s, delivered/s)`` between each two consecutive samples kept."""
        return [
            (
                after.at,
                (after.published - before.published) / (after.at - before.at),
                (after.delivered - before.delivered) / (after.at - before.at),
            )
            for before, after in pairwise(self._samples)
            if after.at > before.at
        ]


class DestinationRates:
    """Published and delivered per second for each queue and channel.

    Only the samples of the last ``span`` seconds are kept (not a history per destination):
    ten thousand queues cost a few dictionaries, whatever the history of the totals.

    Args:
        span: seconds the rates average over.
    """

    def __init__(self, span: int = 5) -> None:
        self._samples: deque[tuple[float, dict[str, tuple[int, int]]]] = deque(maxlen=span + 1)

    def sample(self, at: float, stats: BrokerStats) -> None:
        """Record every destination's counters at time ``at``."""
        counters = {
            address(DestinationKind.QUEUE, q.name): (q.published, q.delivered) for q in stats.queues
        }
        counters.update(
            (address(DestinationKind.CHANNEL, c.name), (c.published, c.delivered))
            for c in stats.channels
        )
        self._samples.append((at, counters))

    def rates(self, destination: str) -> tuple[float, float]:
        """Published and delivered per second of ``destination`` (its STOMP address);
        zero until it has been sampled twice."""
        if not self._samples:
            return (0.0, 0.0)
        last_at, last = self._samples[-1]
        now = last.get(destination)
        if now is None:
            return (0.0, 0.0)
        for at, counters in self._samples:
            then = counters.get(destination)
            if then is not None and at < last_at:
                elapsed = last_at - at
                return ((now[0] - then[0]) / elapsed, (now[1] - then[1]) / elapsed)
        return (0.0, 0.0)
