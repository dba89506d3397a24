"""Per-request context (request id, timings), the access log, Server-Timing and metrics.

The metrics are process-wide Prometheus collectors (that is how prometheus_client works);
nothing in a request's logic reads them. Under `rawpost serve` several worker processes
share them through PROMETHEUS_MULTIPROC_DIR (service.server), and `/metrics` adds them up.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextvars import ContextVar
from typing import Any, Protocol

from litestar import Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from service.config import metrics_dir

MULTIPROCESS = metrics_dir() is not None
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if MULTIPROCESS:
    # prometheus_client calls os.getpid() on every inc/observe to notice a fork: a
    # system call each time, ten per request. The pid only changes at a fork, so keep it.
    os.register_at_fork(after_in_child=_after_fork)
    prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: _pid)  # type: ignore[no-untyped-call]

access_logger = logging.getLogger("rawpost.access")

QUERY_SECONDS = Histogram(
    "rawpost_query_duration_seconds",
    "Time of one SQL statement, by the SQL file that holds it.",
    ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
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


def worker_stopped() -> None:
    """Drop this process's live gauges (pool, requests in progress) from the sums."""
    if MULTIPROCESS:
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def metrics_text() -> bytes:
    """Every metric in Prometheus' text format: all workers' under `rawpost serve`."""
    if not MULTIPROCESS:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


# Requests by route template (never the raw path: ids would make label values unbounded)
# and status. Recorded by request_context_middleware below, in the same pass as the
# request id and the access log (Litestar's PrometheusMiddleware cost 13 % of a request).
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


class RequestContext:
    """Timings of one request, filled in by the database session and the hooks."""

    __slots__ = (
        "db_seconds",
        "handler_done",
        "pool_wait_seconds",
        "request_id",
        "session",
        "started",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.perf_counter()
        self.pool_wait_seconds = 0.0
        self.db_seconds = 0.0
        self.handler_done: float | None = None
        self.session: Closable | None = None  # the request's database session, if any

    async def release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()


class Closable(Protocol):
    async def close(self) -> None: ...


CURRENT: ContextVar[RequestContext | None] = ContextVar("rawpost_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


async def mark_handler_done(response: Response[Any]) -> Response[Any]:
    """after_request hook: what follows until the response starts is encoding.

    Async on purpose: Litestar runs a sync hook in a worker thread, per request."""
    if (ctx := CURRENT.get()) is not None:
        await ctx.release()  # the handler is done with the database
        ctx.handler_done = time.perf_counter()
    return response


def _server_timing(ctx: RequestContext, now: float) -> bytes:
    encode = now - ctx.handler_done if ctx.handler_done is not None else 0.0
    return (
        f'pool;dur={ctx.pool_wait_seconds * 1000:.2f};desc="pool wait",'
        f' db;dur={ctx.db_seconds * 1000:.2f};desc="database",'
        f' encode;dur={encode * 1000:.2f};desc="encode",'
        f" total;dur={(now - ctx.started) * 1000:.2f}"
    ).encode()


class _RouteMetrics:
    """The label children of one (method, route, status): `.labels()` is slow, so once."""

    __slots__ = ("errors", "requests", "seconds")

    def __init__(self, method: str, route: str, status: int) -> None:
        labels = (APP_NAME, method, route, str(status))
        self.requests = REQUESTS.labels(*labels)
        self.seconds = REQUEST_SECONDS.labels(*labels)
        self.errors = REQUEST_ERRORS.labels(*labels) if status >= 500 else None

    def record(self, seconds: float) -> None:
        self.requests.inc()
        self.seconds.observe(seconds)
        if self.errors is not None:
            self.errors.inc()


def request_context_middleware(app: ASGIApp, *, access_log: str) -> ASGIApp:
    """Request id (X-Request-ID, propagated or created), Server-Timing, metrics, and an
    access-log line: for every request (`all`), for responses of 500 and more
    (`errors`), or none (`off`). A line per request costs about a sixth of the
    throughput (docs/performance.md); the metrics count every request anyway.

    Litestar runs it after routing, so `path_template` names the matched route.
    """
    log_all = access_log == "all"
    log_errors = access_log != "off"
    route_metrics: dict[tuple[str, str, int], _RouteMetrics] = {}
    in_progress_gauges: dict[tuple[str, str], Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        http: Any = scope
        method: str = http["method"]
        route: str = http.get("path_template", http["path"])
        if (in_progress := in_progress_gauges.get((method, route))) is None:
            in_progress = IN_PROGRESS.labels(APP_NAME, method, route)
            in_progress_gauges[method, route] = in_progress
        in_progress.inc()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:128] if incoming.isprintable() and incoming else uuid.uuid4().hex
        ctx = RequestContext(request_id)
        token = CURRENT.set(ctx)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"server-timing", _server_timing(ctx, time.perf_counter())))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            await ctx.release()  # the handler raised before after_request ran
            CURRENT.reset(token)
            in_progress.dec()
            seconds = time.perf_counter() - ctx.started
            if (metrics := route_metrics.get((method, route, status))) is None:
                metrics = route_metrics[method, route, status] = _RouteMetrics(
                    method, route, status
                )
            metrics.record(seconds)
            if log_all or (log_errors and status >= 500):
                access_logger.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "request_id": request_id,
                    },
                )

    return middleware
