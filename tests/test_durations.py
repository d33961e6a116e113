"""The duration histogram behind the store-latency and event-loop-lag metrics."""

from __future__ import annotations

import pytest

from buzon.durations import Durations


def test_buckets_count_durations_up_to_and_including_their_bound() -> None:
    durations = Durations((0.001, 0.005))
    for seconds in (0.001, 0.003, 10.0, 0.0005):
        durations.record(seconds)
    snapshot = durations.snapshot()
    assert snapshot.buckets == (2, 3)  # cumulative, as Prometheus reads them
    assert snapshot.count == 4
    assert snapshot.total == pytest.approx(10.0045)
    assert (snapshot.last, snapshot.largest) == (0.0005, 10.0)


def test_bounds_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        Durations((0.1, 0.01))
