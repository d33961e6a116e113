"""Message rates: the broker's running totals sampled once a second.

The overview and the dashboard show messages in and out per second. Rates come from the
difference between samples, so the engine only keeps monotonic counters and never a clock.
The last ``history`` samples are kept (five minutes at one per second) for live charts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


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
    """

    def __init__(self, history: int = 300) -> None:
        self._samples: deque[Sample] = deque(maxlen=history)

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
