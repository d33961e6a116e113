"""Process-wide tuning for ``buzon serve``, whose process is the broker's alone.

Both settings were measured with ``benchmarks/loadgen.py`` (see docs/performance.md); a
broker embedded in someone else's process (``buzon.testing``) leaves them alone.

- The C allocator. glibc hands memory back to the system as soon as a large block is freed
  (blocks of 128 KiB and up get their own mapping; the top of the heap is trimmed past
  128 KiB free). A broker moving 1 MiB messages then maps, faults in and unmaps a megabyte
  or two per message, and the kernel's page work cost more CPU than the broker itself.
  Keeping up to ``KEEP_FREED_BYTES`` of freed memory for reuse made 1 MiB messages about
  1.6x faster for a few tens of MiB of resident memory.
- The garbage collector. What start-up allocated (the HTTP stack, routes, records) lives as
  long as the process, so it is left out of every later collection (8% of the CPU of the
  queue scenario otherwise); and the youngest generation is collected every 10,000
  allocations instead of 700, so frames and deliveries die young instead of being promoted
  until a full collection walks every connection and queued message (with 10,000
  connections open, each full collection took about 0.1 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks below this come from the heap (glibc's ceiling for this setting)."""
KEEP_FREED_BYTES = 64 * 1024 * 1024
"""Free memory at the top of the heap kept for reuse rather than returned at once."""
YOUNG_GENERATION = 10_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


def tune_allocator() -> bool:
    """Keep freed memory for reuse (glibc only); return whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    )


def tune_collector() -> None:
    """Call once start-up is done: freeze what exists, collect the young less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, 10, 10)
