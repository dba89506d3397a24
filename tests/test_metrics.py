"""The metric buffer gives Prometheus exactly what direct updates would have."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

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


_MULTIPROCESS_CHECK = """
import json
from prometheus_client import Counter, Gauge, Histogram, values
chosen = values.ValueClass
from service import metrics
assert values.ValueClass is chosen, "service.metrics replaced prometheus_client's ValueClass"

def made(prefix):
    return (
        Histogram(prefix + "_seconds", "t", ["route"], registry=None).labels("/a"),
        Counter(prefix + "_requests", "t", ["route"], registry=None).labels("/a"),
        Gauge(prefix + "_in_progress", "t", ["route"], multiprocess_mode="livesum",
              registry=None).labels("/a"),
    )

(d_hist, d_count, d_gauge), (b_hist, b_count, b_gauge) = made("d"), made("b")
for value in VALUES:
    d_hist.observe(value)
    d_count.inc()
    d_gauge.inc()
    metrics.BUFFER.observe(b_hist, value)
    metrics.BUFFER.inc(b_count)
    metrics.BUFFER.add(b_gauge, 1)
d_gauge.dec()
metrics.BUFFER.add(b_gauge, -1)
print(metrics.metrics_text().decode())
"""


def test_multiprocess_exposition_of_buffered_updates_matches_direct_ones(
    tmp_path: Path,
) -> None:
    """Under `rawpost serve` (PROMETHEUS_MULTIPROC_DIR), through prometheus_client as it
    ships: what /metrics shows of buffered updates equals what direct calls show."""
    env = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "-c", f"VALUES = {VALUES!r}\n{_MULTIPROCESS_CHECK}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    by_prefix: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {"d": {}, "b": {}}
    for family in text_string_to_metric_families(run.stdout):
        for s in family.samples:
            prefix, _, name = s.name.partition("_")
            if prefix in by_prefix:
                by_prefix[prefix][name, tuple(sorted(s.labels.items()))] = s.value
    assert by_prefix["d"], run.stdout
    assert by_prefix["b"] == by_prefix["d"]
