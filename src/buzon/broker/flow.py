"""Producer flow control: the body bytes all queues hold, and the high/low-water marks.

The engine cannot pause a publisher itself (it knows no sockets); it only keeps the number.
The server checks ``over_high_water`` after a publish, stops reading from that publisher, and
registers a one-shot callback that runs when the total falls under the low-water mark. The
gap between the two marks keeps publishers from flapping on every message.
"""

from __future__ import annotations

from collections.abc import Callable


class QueuedBytes:
    """Running total of body bytes that queues hold in memory (waiting and in flight; a
    paged backlog's tail is on disk and not counted).

    Args:
        high_water: above this many bytes producers should be paused.
        low_water: under this many bytes paused producers are resumed.

    Attributes:
        storage_full: the store's volume is below its free-space floor (set by the
            server): persistent publishes are refused and nothing is spilled to disk.
    """

    __slots__ = ("_callbacks", "_high_water", "_low_water", "storage_full", "total")

    def __init__(self, high_water: int, low_water: int) -> None:
        self.total = 0
        self.storage_full = False
        self._high_water = high_water
        self._low_water = low_water
        self._callbacks: list[Callable[[], None]] = []

    @property
    def over_high_water(self) -> bool:
        """True while the total is above the high-water mark."""
        return self.total > self._high_water

    def add(self, size: int) -> None:
        """Count ``size`` more bytes (a message entered a queue)."""
        self.total += size

    def remove(self, size: int) -> None:
        """Forget ``size`` bytes (a queue message was settled), firing due callbacks."""
        self.total -= size
        if self._callbacks and self.total < self._low_water:
            self._fire()

    def call_when_below_low_water(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, as soon as the total is under the low-water mark.

        Args:
            callback: called synchronously, from whatever engine command settles the bytes
                that bring the total down (or right now, if it already is down). It must
                not raise.
        """
        self._callbacks.append(callback)
        if self.total < self._low_water:
            self._fire()

    def _fire(self) -> None:
        # Swap first: a callback may register again (it is one-shot) without being
        # called twice in this round.
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
