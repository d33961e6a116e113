"""Delays and times as the SDK takes them (seconds or ``timedelta``; an aware ``datetime``
or Unix seconds) and as the broker wants them (whole milliseconds).

One place for both roads: the STOMP clients send ``delay`` / ``deliver-at`` / ``requeue-delay``
headers, the HTTP client the ``delay_ms`` / ``deliver_at_ms`` / ``requeue_delay_ms`` fields.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

Delay = float | timedelta
"""How long to wait: seconds (fractions allowed) or a ``timedelta``."""

When = datetime | float
"""A moment: a timezone-aware ``datetime``, or Unix time in seconds (``time.time()``)."""


def delay_ms(delay: Delay, name: str = "delay") -> int:
    """``delay`` in whole milliseconds (rounded up: a delay is a lower bound).

    Raises:
        ValueError: negative, or not a finite number.
    """
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be 0 seconds or more, not {delay!r}")
    return _whole_ms(seconds)


def epoch_ms(when: When, name: str = "deliver_at") -> int:
    """``when`` in milliseconds since the Unix epoch.

    Raises:
        ValueError: a naive ``datetime`` (its zone would be a guess), or a negative or
            non-finite number.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"{name} needs a timezone-aware datetime (e.g. tzinfo=UTC)")
        seconds = when.timestamp()
    else:
        seconds = float(when)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a time after 1970, not {when!r}")
    return _whole_ms(seconds)


def lease_ms(seconds: float, name: str) -> int:
    """A lease's length (an ack timeout, an extension) in whole milliseconds, at least 1.

    Raises:
        ValueError: not a positive, finite number of seconds.
    """
    value = float(seconds)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
    return max(1, _whole_ms(value))


def _whole_ms(seconds: float) -> int:
    """Rounded up to the millisecond, after float noise is rounded away (0.1 s is 100 ms,
    not 101)."""
    return math.ceil(round(seconds * 1000, 6))


def schedule(delay: Delay | None, deliver_at: When | None) -> tuple[str, int] | None:
    """Which of ``delay`` and ``deliver_at`` was given, in ms: ``("delay", ms)``,
    ``("deliver-at", ms)``, or None for neither.

    Raises:
        ValueError: both given, or a bad value.
    """
    if delay is not None and deliver_at is not None:
        raise ValueError("give delay or deliver_at, not both")
    if delay is not None:
        return "delay", delay_ms(delay)
    if deliver_at is not None:
        return "deliver-at", epoch_ms(deliver_at)
    return None
