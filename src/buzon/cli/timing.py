"""Command-line delays and moments: ``--delay 5s`` and ``--deliver-at 2026-12-03T10:00Z``,
as argparse types that turn a bad value into one readable line."""

from __future__ import annotations

import argparse
import re
from datetime import datetime

from buzon.client.timing import delay_ms, epoch_ms

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3_600, "d": 86_400}


def duration_ms(text: str) -> int:
    """argparse type: a duration with its unit (``250ms``, ``5s``, ``1.5m``, ``2h``, ``1d``)
    in whole milliseconds, rounded up."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write a number and a unit, like 500ms, 5s, 2m, 1h, 1d"
        )
    amount, unit = found.groups()
    try:
        return delay_ms(float(amount) * _UNIT_SECONDS[unit])
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is too long a duration") from None


def moment_ms(text: str) -> int:
    """argparse type: a moment, as milliseconds since the Unix epoch (digits only) or an
    ISO 8601 time (``2026-12-03T10:00:00Z``; without a zone, the local time)."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give ISO 8601 (2026-12-03T10:00:00Z) or epoch ms"
        ) from None
    try:
        return epoch_ms(when if when.tzinfo is not None else when.astimezone())
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a time after 1970") from None
