"""Failed-login limits: per user name and per client address.

A key (a user name, an address) that failed ``max_failures`` times within ``window``
seconds is refused until its oldest failure in the window ages out. Unknown user names
are counted like known ones, so the limit reveals nothing about which accounts exist.
The tables are bounded: past ``max_keys`` the least recently failed key is forgotten, so a
flood of made-up names costs memory proportional to the bound, not to the flood.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    """Counts failures per key in a sliding window.

    Args:
        max_failures: failures allowed within ``window``; the next attempt is refused.
        window: seconds a failure counts.
        max_keys: keys tracked at most.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None if it may try now."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self._max_failures:
            return None
        return failures[0] + self._window - now

    def failed(self, key: str) -> None:
        """Count one failure for ``key``."""
        failures = self._failures.get(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self._max_failures)
            if len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        failures.append(self._clock())

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures (a correct login)."""
        self._failures.pop(key, None)
