"""Buffered metric updates, flushed, equal direct prometheus_client updates: histogram
buckets, bucket bounds, counters and gauges."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import MetricBuffer

# Also what the multiprocess check in tests/system/test_metrics_multiprocess.py observes.
VALUES = [0.0, 0.0004, 0.005, 0.0050001, 0.3, 2.5, 7.0, 1e9, 0.005]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _metrics(registry: CollectorRegistry) -> tuple[Histogram, Counter, Gauge]:
    histogram = Histogram("t_seconds", "t", ["route"], registry=registry)
    counter = Counter("t_requests", "t", ["route"], registry=registry)
    gauge = Gauge("t_in_progress", "t", ["route"], registry=registry)
    return histogram, counter, gauge


def test_flushed_observations_match_direct_ones_bucket_for_bucket() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    d_hist, d_count, d_gauge = _metrics(direct)
    b_hist, b_count, b_gauge = _metrics(buffered)
    buffer = MetricBuffer()
    for value in VALUES:
        d_hist.labels("/a").observe(value)
        d_count.labels("/a").inc()
        buffer.observe(b_hist.labels("/a"), value)
        buffer.inc(b_count.labels("/a"))
    d_gauge.labels("/a").inc()
    d_gauge.labels("/a").inc()
    d_gauge.labels("/a").dec()
    for step in (1, 1, -1):
        buffer.add(b_gauge.labels("/a"), step)

    # Counted at once (a worker killed before its next flush keeps its counts); only the
    # gauge waits for the flush.
    assert _samples(buffered)[("t_requests_total", (("route", "/a"),))] == len(VALUES)
    assert _samples(buffered)[("t_in_progress", (("route", "/a"),))] == 0
    buffer.flush()
    assert _samples(buffered) == _samples(direct)
    buffer.flush()  # nothing new: nothing counted twice
    assert _samples(buffered) == _samples(direct)

    buffer.observe(b_hist.labels("/a"), 0.02)
    d_hist.labels("/a").observe(0.02)
    buffer.flush()
    assert _samples(buffered) == _samples(direct)


def test_values_on_bucket_bounds_land_where_direct_observations_do() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    d_hist, _, _ = _metrics(direct)
    b_hist, _, _ = _metrics(buffered)
    buffer = MetricBuffer()
    for bound in Histogram.DEFAULT_BUCKETS[:-1]:  # every finite bound, and just either side
        for value in (bound, math.nextafter(bound, 0), math.nextafter(bound, math.inf)):
            d_hist.labels("/a").observe(value)
            buffer.observe(b_hist.labels("/a"), value)
    buffer.flush()
    assert _samples(buffered) == _samples(direct)


def test_counters_and_gauges_flushed_many_times_match_direct_updates() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    _, d_count, d_gauge = _metrics(direct)
    _, b_count, b_gauge = _metrics(buffered)
    buffer = MetricBuffer()
    # A gauge that goes up, down to zero and below between flushes keeps its level across
    # them; counter totals keep adding onto what earlier flushes moved in.
    for steps in ((1, 1), (-1,), (-1, -1, 1), (), (3, -3)):
        for step in steps:
            (d_gauge.labels("/a").inc if step > 0 else d_gauge.labels("/a").dec)(abs(step))
            buffer.add(b_gauge.labels("/a"), step)
            d_count.labels("/b").inc(2)
            buffer.inc(b_count.labels("/b"), 2)
        buffer.flush()
        assert _samples(buffered) == _samples(direct)
