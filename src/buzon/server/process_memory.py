"""How much memory the broker process holds now, for the overview and the dashboard."""

from __future__ import annotations

import os

_STATM = "/proc/self/statm"


def resident_bytes() -> int | None:
    """The process's resident set size in bytes, or None where the system does not say
    (``/proc`` is Linux's; the value is read from memory, not from a disk)."""
    try:
        with open(_STATM, "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")
