"""Per-request cost of rawpost's metric updates, four ways, in both prometheus_client modes.

    uv run python bench/metrics_bench.py

The parent runs itself twice: once with PROMETHEUS_MULTIPROC_DIR set to a fresh temporary
directory (what `rawpost serve` uses), once without (single process). In each child the
variants are interleaved, REPS times in rotated order, and the median is reported.

One simulated request makes the updates service.observability and service.db make on a
2xx answer with one SQL statement: in-progress gauge +1, pool-acquire histogram, query
histogram, in-progress gauge -1, request counter, request-duration histogram: nine value
updates in prometheus_client (a histogram observation updates its sum and one bucket).
A buffer is flushed every FLUSH_EVERY requests (about one second of one worker at the
benchmark's 4,000 req/s over two workers); the flush is inside the per-request timing,
and is also timed alone (the event-loop stall it causes once a second).
"""

from __future__ import annotations

import functools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import timeit
from bisect import bisect_left
from typing import Any

REPS = 9
FLUSH_EVERY = 2000
FLUSHES_PER_TIMING = 10
REQUESTS = FLUSH_EVERY * FLUSHES_PER_TIMING


def child() -> None:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client import values as prometheus_values

    multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    labels = ("rawpost", "GET", "/api/users/{user_id:uuid}", "200")

    def make_metrics() -> tuple[Any, ...]:
        registry = CollectorRegistry()
        requests = Counter("r", "r", ["a", "m", "p", "s"], registry=registry).labels(*labels)
        seconds = Histogram("d", "d", ["a", "m", "p", "s"], registry=registry).labels(*labels)
        in_progress = Gauge(
            "g", "g", ["a", "m", "p"], multiprocess_mode="livesum", registry=registry
        ).labels(*labels[:3])
        pool = Histogram(
            "p",
            "p",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        query = Histogram(
            "q",
            "q",
            ["query"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        ).labels("get_user")
        return requests, seconds, in_progress, pool, query

    # --- the buffer as it was: bucket counts kept beside prometheus_client's privates ---
    class _PendingHistogram:
        __slots__ = ("bounds", "child", "counts", "total")

        def __init__(self, child: Any) -> None:
            self.child = child
            self.bounds: list[float] = child._upper_bounds
            self.counts = [0] * len(self.bounds)
            self.total = 0.0

        def flush(self) -> None:
            counts, self.counts = self.counts, [0] * len(self.bounds)
            total, self.total = self.total, 0.0
            if any(counts):
                self.child._sum.inc(total)
                for value, count in zip(self.child._buckets, counts, strict=True):
                    if count:
                        value.inc(count)

    class PrivateBuffer:
        def __init__(self) -> None:
            self._histograms: dict[Any, _PendingHistogram] = {}
            self._counters: dict[Any, float] = {}
            self._gauges: dict[Any, float] = {}

        def observe(self, histogram: Any, value: float) -> None:
            if (pending := self._histograms.get(histogram)) is None:
                pending = self._histograms[histogram] = _PendingHistogram(histogram)
            pending.counts[bisect_left(pending.bounds, value)] += 1
            pending.total += value

        def inc(self, counter: Any, amount: float = 1.0) -> None:
            self._counters[counter] = self._counters.get(counter, 0.0) + amount

        def add(self, gauge: Any, amount: float) -> None:
            self._gauges[gauge] = self._gauges.get(gauge, 0.0) + amount

        def flush(self) -> None:
            for pending in self._histograms.values():
                pending.flush()
            counters, self._counters = self._counters, {}
            for counter, amount in counters.items():
                counter.inc(amount)
            for gauge, level in self._gauges.items():
                gauge.set(level)

    # --- (a) no buffer: every update a public call ---
    class Direct:
        def observe(self, histogram: Any, value: float) -> None:
            histogram.observe(value)

        def inc(self, counter: Any, amount: float = 1.0) -> None:
            counter.inc(amount)

        def add(self, gauge: Any, amount: float) -> None:
            gauge.inc(amount)

        def flush(self) -> None:
            pass

    # --- (b) public buffer: raw observations replayed, counter sums, gauge levels ---
    class PublicBuffer:
        def __init__(self) -> None:
            self._observations: dict[Any, list[float]] = {}
            self._counters: dict[Any, float] = {}
            self._gauges: dict[Any, float] = {}

        def observe(self, histogram: Any, value: float) -> None:
            if (values := self._observations.get(histogram)) is None:
                values = self._observations[histogram] = []
            values.append(value)

        def inc(self, counter: Any, amount: float = 1.0) -> None:
            self._counters[counter] = self._counters.get(counter, 0.0) + amount

        def add(self, gauge: Any, amount: float) -> None:
            self._gauges[gauge] = self._gauges.get(gauge, 0.0) + amount

        def flush(self) -> None:
            observations, self._observations = self._observations, {}
            for histogram, values in observations.items():
                observe = histogram.observe
                for value in values:
                    observe(value)
            counters, self._counters = self._counters, {}
            for counter, amount in counters.items():
                counter.inc(amount)
            for gauge, level in self._gauges.items():
                gauge.set(level)

    # --- (c) histograms direct, counter sums and gauge levels buffered ---
    class CountersOnlyBuffer(PublicBuffer):
        def observe(self, histogram: Any, value: float) -> None:
            histogram.observe(value)

    variants: dict[str, tuple[Any, tuple[Any, ...]]] = {}
    if multiprocess:
        # The old module replaced ValueClass so the pid was read once, not per update; a
        # constant identifier of its own keeps its mmap files apart from the others'.
        saved = prometheus_values.ValueClass
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: 4_000_000)  # type: ignore[no-untyped-call]
        variants["old: private buffer + pid patch"] = (PrivateBuffer(), make_metrics())
        prometheus_values.ValueClass = saved
    else:
        variants["old: private buffer"] = (PrivateBuffer(), make_metrics())
    variants["(a) direct public calls"] = (Direct(), make_metrics())
    variants["(b) public buffer (replay)"] = (PublicBuffer(), make_metrics())
    variants["(c) histograms direct, rest buffered"] = (CountersOnlyBuffer(), make_metrics())
    from service.metrics import MetricBuffer  # what rawpost now ships: (c)

    variants["shipped: service.metrics.MetricBuffer"] = (MetricBuffer(), make_metrics())

    rng = random.Random(1)  # noqa: S311 (durations for a benchmark, not secrets)
    durations = [rng.lognormvariate(-7, 1.0) for _ in range(4096)]

    def serve(buffer: Any, metrics: tuple[Any, ...]) -> None:
        """FLUSH_EVERY requests' updates."""
        requests, seconds, in_progress, pool, query = metrics
        observe, inc, add = buffer.observe, buffer.inc, buffer.add
        values = durations
        for i in range(FLUSH_EVERY):
            v = values[i & 4095]
            add(in_progress, 1)
            observe(pool, v * 0.01)
            observe(query, v * 0.5)
            add(in_progress, -1)
            inc(requests)
            observe(seconds, v)

    def run(buffer: Any, metrics: tuple[Any, ...]) -> None:
        for _ in range(FLUSHES_PER_TIMING):
            serve(buffer, metrics)
            buffer.flush()

    results: dict[str, list[float]] = {name: [] for name in variants}
    stalls: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm up: files, dict sizes, code paths
        run(*variants[name])
    for rep in range(REPS):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            took = timeit.timeit(functools.partial(run, *variants[name]), number=1)
            results[name].append(took / REQUESTS * 1e9)
            # The flush alone: how long it holds the event loop once a second.
            serve(*variants[name])
            stalls[name].append(timeit.timeit(variants[name][0].flush, number=1) * 1e3)

    # Building blocks, for the explanation.
    blocks: dict[str, float] = {}
    n = 200_000
    blocks["os.getpid()"] = min(timeit.repeat(os.getpid, number=n, repeat=5)) / n * 1e9
    registry = CollectorRegistry()
    counter = Counter("blk", "b", registry=registry)
    blocks["Counter.inc() (public)"] = min(timeit.repeat(counter.inc, number=n, repeat=5)) / n * 1e9
    histogram = Histogram("blkh", "b", registry=registry)
    blocks["Histogram.observe(0.003) (public)"] = (
        min(timeit.repeat(lambda: histogram.observe(0.003), number=n, repeat=5)) / n * 1e9
    )
    gauge = Gauge("blkg", "b", multiprocess_mode="livesum", registry=registry)
    blocks["Gauge.set(1.0) (public)"] = (
        min(timeit.repeat(lambda: gauge.set(1.0), number=n, repeat=5)) / n * 1e9
    )

    mode = "multiprocess (PROMETHEUS_MULTIPROC_DIR set)" if multiprocess else "single process"
    print(f"## {mode}, prometheus_client {prometheus_client_version()}")
    print(
        f"ns per request, median of {REPS} interleaved runs of {REQUESTS} requests (min-max);"
        f" one flush after {FLUSH_EVERY} requests, ms (median)"
    )
    for name in names:
        r = results[name]
        print(
            f"  {name:40s} {statistics.median(r):8.0f}   ({min(r):.0f}-{max(r):.0f})"
            f"   flush {statistics.median(stalls[name]):6.2f} ms"
        )
    print("building blocks, ns per call (best of 5):")
    for name, ns in blocks.items():
        print(f"  {name:40s} {ns:8.0f}")
    del prometheus_client


def prometheus_client_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("prometheus-client")


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        for multiproc in (True, False):
            env = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
            if multiproc:
                env["PROMETHEUS_MULTIPROC_DIR"] = tmp
            subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
