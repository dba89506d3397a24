"""The metric buffer gives Prometheus exactly what direct updates would have."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import MetricBuffer

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

    assert _samples(buffered)[("t_requests_total", (("route", "/a"),))] == 0  # not yet
    buffer.flush()
    assert _samples(buffered) == _samples(direct)
    buffer.flush()  # nothing new: nothing counted twice
    assert _samples(buffered) == _samples(direct)

    buffer.observe(b_hist.labels("/a"), 0.02)
    d_hist.labels("/a").observe(0.02)
    buffer.flush()
    assert _samples(buffered) == _samples(direct)
