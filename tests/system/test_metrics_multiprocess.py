"""In prometheus_client's multiprocess mode, run in a subprocess, the exposition of buffered
updates matches that of direct ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_metric_buffer import VALUES

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
