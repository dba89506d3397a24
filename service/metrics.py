"""Prometheus metrics: their definitions, how worker processes share them, and a buffer
that keeps the hot path's gauge moves in plain Python.

Under `rawpost serve` several worker processes share the metrics through
PROMETHEUS_MULTIPROC_DIR (service.server): every update is a lock, a process-id check
and a store into a memory-mapped file there, and `/metrics` adds all the workers' files
up. BUFFER keeps a request's gauge moves (requests in progress) instead, and `flush()`
sets the level reached once a second, before each scrape answered, and at shutdown.
Counters and histograms are updated at once: a worker killed by SIGKILL keeps what it
counted (its files stay), and prometheus_client's public API adds observations one at a
time only, so holding them back would not save their cost, only spend it all at once in
the flush, stalling the event loop (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from service.background import in_background
from service.config import metrics_dir

MULTIPROCESS = metrics_dir() is not None

QUERY_SECONDS = Histogram(
    "rawpost_query_duration_seconds",
    "Time of one SQL statement, by the SQL file that holds it.",
    ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WRITE_BATCH_SIZE = Histogram(
    "rawpost_write_batch_size",
    "Requests whose writes went to the database in one statement (RAWPOST_WRITE_COALESCE_MS).",
    ["query"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
POOL_ACQUIRE_SECONDS = Histogram(
    "rawpost_pool_acquire_seconds",
    "Time a request waited for a pooled database connection.",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5),
)
TRANSIENT_FAILURES = Counter(
    "rawpost_db_transient_failures_total",
    "Transient database failures (connection loss, serialization, deadlock, overload),"
    " by SQLSTATE class ('conn' for driver-level connection errors).",
    ["sqlstate_class"],
)
RETRIES = Counter(
    "rawpost_db_retries_total",
    "Statements or transactions retried after a transient failure, by SQLSTATE class.",
    ["sqlstate_class"],
)
BUILD_INFO = Gauge(
    "rawpost_build_info",
    "The running rawpost build (always 1; the labels say which).",
    ["version", "python", "litestar", "asyncpg"],
    multiprocess_mode="max",
)
POOL_CONNECTIONS = Gauge(
    "rawpost_pool_connections",
    "Database pool connections by state, summed over the worker processes.",
    ["state"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "rawpost_pool_waiting",
    "Requests waiting for a pooled database connection, summed over the workers.",
    multiprocess_mode="livesum",
)

# The read cache (docs/caching.md): counted in plain Python per request and added here
# once a second by each worker (service.cache.ReadCache.publish).
CACHE_LOOKUPS = Counter(
    "rawpost_cache_lookups",
    "Cacheable reads by outcome: hit, miss (read from the database, and kept unless a"
    " change to its rows arrived meanwhile), or bypass"
    " (the invalidation channel was not trusted, or the read sent a Consistency-Token).",
    ["result"],
)
CACHE_INVALIDATIONS = Counter(
    "rawpost_cache_invalidations",
    "Changes applied to the cache (read from cache_events, the instance's bus, or made"
    " by the worker itself), and the entries they dropped.",
    ["what"],
)
CACHE_EVICTIONS = Counter(
    "rawpost_cache_evictions", "Entries dropped to stay under RAWPOST_CACHE_MAX_MB."
)
CACHE_SIZE = Gauge(
    "rawpost_cache_size",
    "Entries and bytes held (bytes as counted against RAWPOST_CACHE_MAX_MB), summed over"
    " the workers.",
    ["unit"],
    multiprocess_mode="livesum",
)
CACHE_CHANNEL_UP = Gauge(
    "rawpost_cache_channel_up",
    "Workers whose change poller has polled within 750 ms (the others bypass their cache).",
    multiprocess_mode="livesum",
)

# Read replicas (service.db.replicas; docs/scaling.md, "Read replicas").
REPLICA_LAG_SECONDS = Gauge(
    "rawpost_replica_lag_seconds",
    "How long ago the primary first had WAL a read replica has not replayed yet (0: caught"
    " up; +Inf: unreachable), as the workers last measured it (the largest).",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_UP = Gauge(
    "rawpost_replica_up",
    "1 while every worker reaches the read replica as a streaming standby, else 0.",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_POOL_CONNECTIONS = Gauge(
    "rawpost_replica_pool_connections",
    "Read replica pool connections by replica and state, summed over the workers.",
    ["replica", "state"],
    multiprocess_mode="livesum",
)
REPLICA_READS = Counter(
    "rawpost_replica_reads",
    "Read requests routed by RAWPOST_REPLICA_URLS, by the pool that served them (a"
    " replica's name, or primary; a read re-run on the primary counts on both).",
    ["pool"],
)
REPLICA_FALLBACKS = Counter(
    "rawpost_replica_fallbacks",
    "Read requests served by the primary instead of a replica, by reason: unavailable"
    " (none up and within RAWPOST_REPLICA_MAX_LAG), behind (none replayed the"
    " Consistency-Token within RAWPOST_REPLICA_WAIT), error (failed on a replica, re-run"
    " on the primary).",
    ["reason"],
)
REPLICA_TOKEN_WAIT_SECONDS = Histogram(
    "rawpost_replica_token_wait_seconds",
    "Time a read with a Consistency-Token waited for a replica to replay it, by where it"
    " then ran (replica, primary); reads a replica could take at once are not observed.",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)


def worker_stopped() -> None:
    """Flush, then drop this process's live gauges (pool, requests in progress) from the
    sums."""
    BUFFER.flush()
    if MULTIPROCESS:
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def metrics_text() -> bytes:
    """Every metric in Prometheus' text format: all workers' under `rawpost serve`
    (this worker's up to now; the others' counters and gauges as of their last flush, at
    most a second ago, their histograms up to now)."""
    BUFFER.flush()
    if not MULTIPROCESS:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


# Requests by route template (never the raw path: ids would make label values unbounded)
# and status. Recorded by service.observability's middleware, in the same pass as the
# request id and the access log (cheaper than Litestar's PrometheusMiddleware:
# docs/performance.md).
_ROUTE_LABELS = ["app_name", "method", "path", "status_code"]
REQUESTS = Counter("rawpost_requests", "Requests answered, by route and status.", _ROUTE_LABELS)
REQUEST_SECONDS = Histogram(
    "rawpost_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route and status.",
    _ROUTE_LABELS,
)
REQUEST_ERRORS = Counter(
    "rawpost_requests_error", "Responses with a status of 500 or more.", _ROUTE_LABELS
)
IN_PROGRESS = Gauge(
    "rawpost_requests_in_progress",
    "Requests being handled now, by route.",
    ["app_name", "method", "path"],
    multiprocess_mode="livesum",
)
APP_NAME = "rawpost"


class MetricBuffer:
    """Gauge levels of this process, held in plain Python until `flush()`; counter
    increments and histogram observations passed straight on."""

    def __init__(self) -> None:
        self._gauges: dict[Gauge, float] = {}

    def observe(self, histogram: Histogram, value: float) -> None:
        """Observe now: only one observation at a time can enter a histogram through
        prometheus_client's API, so deferring it saves nothing."""
        histogram.observe(value)

    def inc(self, counter: Counter, amount: float = 1.0) -> None:
        """Count now: a worker killed by SIGKILL (the OOM killer) must not take the counts
        of requests it already answered with it."""
        counter.inc(amount)

    def add(self, gauge: Gauge, amount: float) -> None:
        """Move a gauge by `amount`; flush() sets it to the level reached."""
        self._gauges[gauge] = self._gauges.get(gauge, 0.0) + amount

    def flush(self) -> None:
        for gauge, level in self._gauges.items():
            gauge.set(level)


# One per process, like prometheus_client's own registry.
BUFFER = MetricBuffer()


@contextlib.asynccontextmanager
async def flushing(publish: Callable[[], None], every: float = 1.0) -> AsyncIterator[None]:
    """While the app runs, every second: `publish()` (gauges read off live objects, such
    as the pool's figures), then flush BUFFER. Whichever worker answers a scrape, every
    worker's figures are at most that old."""

    async def loop() -> None:
        while True:
            publish()
            BUFFER.flush()
            forget_dead_workers()
            await asyncio.sleep(every)

    async with in_background(loop(), "rawpost-metrics-flush"):
        yield


def forget_dead_workers() -> list[int]:
    """Drop the live-gauge files of worker processes that died without a word (kill -9),
    so their pool and in-progress figures leave the sums; their counter and histogram
    files stay, so what they counted is kept. Returns the pids dropped."""
    folder = metrics_dir()
    if not MULTIPROCESS or folder is None:
        return []
    dead: set[int] = set()
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid_text = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            dead.add(int(pid_text))
        except PermissionError:
            pass  # alive, someone else's
    for pid in dead:
        # Every worker runs this: another one may have removed the files first.
        with contextlib.suppress(FileNotFoundError):
            mark_process_dead(pid)  # type: ignore[no-untyped-call]
    return sorted(dead)
