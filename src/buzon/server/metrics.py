"""Prometheus metrics, read from the engine's own counters when scraped.

Strategy: the engine already keeps monotonic counters and gauges per queue and channel
(``Broker.statistics()``), the store times its commits, and the server counts connections
and measures event-loop lag. A custom collector turns those into metric families at
scrape time, so the message path does no extra work for metrics at all. Each server has
its own registry (several brokers may share a process, in tests or embedded).

Per-destination families carry the labels ``kind`` (queue or channel) and ``name``;
counters of a deleted destination disappear with it (the broker-wide totals keep them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from buzon import __version__
from buzon.broker.stats import BrokerStats
from buzon.durations import DurationSnapshot
from buzon.server.close_reasons import CloseReason
from buzon.server.context import ServerContext

_DESTINATION = ["kind", "name"]


def metrics_registry(ctx: ServerContext) -> CollectorRegistry:
    """A registry holding this server's metrics and its process's (memory, CPU, files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(ctx))
    ProcessCollector(registry=registry)
    return registry


class BrokerCollector(Collector):
    """Everything buzon knows about itself, as metric families, computed per scrape."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self._ctx
        yield from _connections(ctx)
        yield from _destinations(ctx.broker.statistics(), ctx.redrives.redriven)
        if ctx.store.commit_durations is not None:
            yield _histogram(
                "buzon_store_commit_seconds",
                "Store transactions (group commits) from BEGIN to a durable COMMIT",
                ctx.store.commit_durations.snapshot(),
            )
        size = ctx.store.size_on_disk()
        if size is not None:
            yield GaugeMetricFamily(
                "buzon_store_bytes", "Bytes the store's files take on disk (database and log)", size
            )
            yield GaugeMetricFamily(
                "buzon_storage_full",
                "1 while free disk is under --min-free-disk (persistent publishes refused)",
                int(ctx.broker.storage_full),
            )
        lag = ctx.loop_lag.snapshot()
        yield _histogram(
            "buzon_event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every half second",
            lag,
        )
        yield GaugeMetricFamily(
            "buzon_event_loop_lag_last_seconds", "The latest event-loop lag sample", lag.last
        )
        yield GaugeMetricFamily(
            "buzon_event_loop_lag_max_seconds",
            "The largest event-loop lag since start",
            lag.largest,
        )
        yield GaugeMetricFamily(
            "buzon_uptime_seconds", "Seconds since the broker started", _uptime(ctx)
        )
        info = GaugeMetricFamily("buzon_info", "The running buzon version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def _uptime(ctx: ServerContext) -> float:
    return max(0.0, time.time() - ctx.started_at)


def _connections(ctx: ServerContext) -> Iterator[Metric]:
    open_now = GaugeMetricFamily(
        "buzon_connections",
        "Open connections, by transport (tcp, tls, websocket) and protocol (stomp/1.2)",
        labels=["transport", "protocol"],
    )
    kinds = Counter((c.transport_name, c.protocol) for c in ctx.connections)
    for (transport, protocol), count in sorted(kinds.items()):
        open_now.add_metric([transport, protocol], count)
    yield open_now
    events = ctx.connection_events
    yield CounterMetricFamily(
        "buzon_connections_opened", "Client connections accepted", events.opened
    )
    closed = CounterMetricFamily(
        "buzon_connections_closed", "Client connections ended, by reason", labels=["reason"]
    )
    for reason in CloseReason:
        closed.add_metric([reason.value], events.closed[reason])
    yield closed


def _destinations(stats: BrokerStats, redriven: Mapping[str, int]) -> Iterator[Metric]:
    def counter(name: str, text: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, text, labels=_DESTINATION)

    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=_DESTINATION)

    published = counter("buzon_messages_published", "Messages published")
    delivered = counter("buzon_messages_delivered", "Deliveries made, redeliveries included")
    acked = counter("buzon_messages_acked", "Queue messages settled (acked, or sent in auto mode)")
    redelivered = counter("buzon_messages_redelivered", "Deliveries of queue messages given back")
    retired = counter(
        "buzon_messages_retired", "Queue messages gone undelivered (expired, over a limit)"
    )
    dead_lettered = counter(
        "buzon_messages_dead_lettered", "Retired queue messages moved to a dead-letter queue"
    )
    refused = counter(
        "buzon_messages_dead_letter_refused",
        "Retired queue messages dropped: the queue may no longer publish to its dead-letter queue",
    )
    by_reason = CounterMetricFamily(
        "buzon_messages_dead_lettered_by_reason",
        "Queue messages moved to a dead-letter queue, by reason (expired, max-deliveries,"
        " rejected, max-length, ack-timeout)",
        labels=[*_DESTINATION, "reason"],
    )
    scheduled_total = counter(
        "buzon_messages_scheduled", "Queue messages published with a delay or deliver-at time"
    )
    retried = counter(
        "buzon_messages_retried", "NACKed queue messages whose redelivery was delayed (back-off)"
    )
    lease_expired = counter(
        "buzon_messages_lease_expired",
        "Queue deliveries not acknowledged within their ack timeout or pull lease (they came back)",
    )
    late_settles = counter(
        "buzon_late_settles",
        "ACKs, NACKs and lease extensions of queue deliveries that had already come back",
    )
    moved_back = counter(
        "buzon_messages_redriven", "Messages a redrive moved out of this (dead-letter) queue"
    )
    deduplicated = counter(
        "buzon_messages_deduplicated",
        "Queue publishes not enqueued: their idempotency-key was seen within the window",
    )
    dropped = counter("buzon_messages_dropped", "Channel deliveries dropped for slow subscribers")
    depth = gauge("buzon_queue_depth", "Queue messages waiting for a consumer")
    in_flight = gauge("buzon_queue_in_flight", "Queue messages delivered, not yet acknowledged")
    held = gauge("buzon_queue_bytes", "Body bytes a queue holds (waiting and in flight)")
    scheduled = gauge(
        "buzon_queue_scheduled", "Queue messages waiting for their time (delays, retries)"
    )
    consumers = gauge("buzon_consumers", "Queue consumers or channel subscribers")
    for queue in stats.queues:
        labels = ["queue", queue.name]
        published.add_metric(labels, queue.published)
        delivered.add_metric(labels, queue.delivered)
        acked.add_metric(labels, queue.acked)
        redelivered.add_metric(labels, queue.redelivered)
        retired.add_metric(labels, queue.retired)
        dead_lettered.add_metric(labels, queue.dead_lettered)
        refused.add_metric(labels, queue.dead_letter_refused)
        for reason, count in queue.dead_lettered_by_reason:
            by_reason.add_metric([*labels, reason], count)
        scheduled_total.add_metric(labels, queue.scheduled_total)
        retried.add_metric(labels, queue.retried)
        scheduled.add_metric(labels, queue.scheduled)
        lease_expired.add_metric(labels, queue.lease_expired)
        late_settles.add_metric(labels, queue.late_settles)
        moved_back.add_metric(labels, redriven.get(queue.name, 0))
        deduplicated.add_metric(labels, queue.deduplicated)
        depth.add_metric(labels, queue.depth)
        in_flight.add_metric(labels, queue.in_flight)
        held.add_metric(labels, queue.bytes)
        consumers.add_metric(labels, queue.consumers)
    for channel in stats.channels:
        labels = ["channel", channel.name]
        published.add_metric(labels, channel.published)
        delivered.add_metric(labels, channel.delivered)
        dropped.add_metric(labels, channel.dropped)
        consumers.add_metric(labels, channel.subscribers)
    yield from (published, delivered, acked, redelivered, retired, dead_lettered, refused)
    yield from (by_reason, scheduled_total, retried, lease_expired, late_settles)
    yield from (moved_back, deduplicated, dropped)
    yield from (depth, in_flight, held, scheduled, consumers)
    yield GaugeMetricFamily(
        "buzon_idempotency_keys",
        "Publishers' idempotency keys held in memory (bounded by the broker)",
        stats.idempotency_keys,
    )
    yield CounterMetricFamily(
        "buzon_idempotency_keys_evicted",
        "Idempotency keys forgotten before their window ended, to stay within the bound",
        stats.idempotency_keys_evicted,
    )
    yield GaugeMetricFamily(
        "buzon_queued_bytes",
        "Body bytes queues hold in memory (what the water marks compare)",
        stats.queued_bytes,
    )
    yield CounterMetricFamily(
        "buzon_broker_messages_published",
        "Messages published since start, deleted destinations included",
        stats.messages_published,
    )
    yield CounterMetricFamily(
        "buzon_broker_messages_delivered",
        "Deliveries made since start, deleted destinations included",
        stats.messages_delivered,
    )


def _histogram(name: str, text: str, snapshot: DurationSnapshot) -> HistogramMetricFamily:
    buckets = [
        (str(bound), float(count))
        for bound, count in zip(snapshot.bounds, snapshot.buckets, strict=True)
    ]
    buckets.append(("+Inf", float(snapshot.count)))
    return HistogramMetricFamily(name, text, buckets=buckets, sum_value=snapshot.total)
