"""Per-request context (request id, timings), the access log, Server-Timing and metrics.

The metrics are process-wide Prometheus collectors (that is how prometheus_client works);
nothing in a request's logic reads them.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar
from typing import Any, Protocol

from litestar import Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Histogram, Info

access_log = logging.getLogger("rawpost.access")

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
BUILD_INFO = Info("rawpost_build", "The running rawpost build.")


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


def request_context_middleware(app: ASGIApp, *, access_log_enabled: bool) -> ASGIApp:
    """Request id (X-Request-ID, propagated or created), Server-Timing, one log line."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        http: Any = scope
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
            if access_log_enabled:
                access_log.info(
                    "%s %s %s",
                    http["method"],
                    http.get("path_template", http["path"]),
                    status,
                    extra={
                        "method": http["method"],
                        "route": http.get("path_template", http["path"]),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - ctx.started) * 1000, 2),
                        "request_id": request_id,
                    },
                )

    return middleware
