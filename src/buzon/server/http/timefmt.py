"""Unix times as the timezone-aware datetimes the API shows (ISO 8601, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(timestamp: float) -> datetime:
    """``timestamp`` (Unix time) as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC)
