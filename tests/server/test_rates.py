"""Message rates from once-a-second samples: the totals' history and each destination's."""

from __future__ import annotations

from buzon.broker import BrokerStats, ChannelStats, QueueStats
from buzon.server.rates import RateMeter


def stats(queue_published: int, channel_delivered: int) -> BrokerStats:
    queue = QueueStats("jobs", 0, 0, 0, queue_published, 0, 0, 0, 0)
    channel = ChannelStats("news", 0, 0, channel_delivered, 0)
    return BrokerStats((queue,), (channel,), (), 0, queue_published, channel_delivered)


def test_history_is_the_rate_between_consecutive_samples() -> None:
    meter = RateMeter(history=3)
    assert meter.per_second() == []
    for at, published, delivered in ((10.0, 0, 0), (11.0, 5, 2), (12.0, 5, 4), (14.0, 9, 4)):
        meter.sample(at, published, delivered)
    # three samples kept: the oldest (at 10) is gone
    assert meter.per_second() == [(12.0, 0.0, 2.0), (14.0, 2.0, 0.0)]


def test_each_destination_has_its_own_rate_over_the_last_seconds() -> None:
    meter = RateMeter()
    rates = meter.destinations
    assert rates.rates("/queue/jobs") == (0.0, 0.0)
    rates.sample(1.0, stats(queue_published=0, channel_delivered=0))
    assert rates.rates("/queue/jobs") == (0.0, 0.0)  # one sample is not a rate
    for second in range(2, 10):
        rates.sample(float(second), stats(queue_published=3 * second, channel_delivered=second))
    assert rates.rates("/queue/jobs") == (3.0, 0.0)
    assert rates.rates("/topic/news") == (0.0, 1.0)
    assert rates.rates("/queue/news") == (0.0, 0.0)
    assert rates.rates("/queue/unknown") == (0.0, 0.0)
