"""Per-request context (request id, timings), the access log, Server-Timing, and the
request metrics (defined in service.metrics); nothing in a request's logic reads them."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from contextvars import ContextVar
from typing import Any

import msgspec
from litestar import Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.docs_page import CONTENT_SECURITY_POLICY
from service.metrics import APP_NAME, BUFFER, IN_PROGRESS, REQUEST_ERRORS, REQUEST_SECONDS, REQUESTS

access_logger = logging.getLogger("rawpost.access")

# Request ids: a random prefix per process and a counter, 32 hex digits like a UUID's,
# without a getrandom() system call per request.
_id_prefix = secrets.token_hex(8)
_id_counter = itertools.count()


def new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter):016x}"


def _after_fork() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = secrets.token_hex(8), itertools.count()


os.register_at_fork(after_in_child=_after_fork)


class RequestContext:
    """Timings of one request, filled in by the database session and the hooks."""

    __slots__ = (
        "consistency_lsn",
        "db_seconds",
        "handler_done",
        "pool_wait_seconds",
        "request_id",
        "started",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.perf_counter()
        self.pool_wait_seconds = 0.0
        self.db_seconds = 0.0
        self.handler_done: float | None = None
        # The primary's WAL position after this request's write committed, with read
        # replicas on: its Consistency-Token (service.db.replicas).
        self.consistency_lsn: int | None = None


CURRENT: ContextVar[RequestContext | None] = ContextVar("rawpost_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


async def mark_handler_done(response: Response[Any]) -> Response[Any]:
    """after_request hook: what follows until the response starts is encoding.

    Async on purpose: Litestar runs a sync hook in a worker thread, per request."""
    if (ctx := CURRENT.get()) is not None:
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
        BUFFER.inc(self.requests)
        BUFFER.observe(self.seconds, seconds)
        if self.errors is not None:
            BUFFER.inc(self.errors)


class InFlight:
    """/api requests this worker is handling, and how many it takes before it sheds.

    One per worker, shared by every route's copy of the middleware (Litestar builds the
    middleware stack once per route handler)."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.count = 0
        self.limit = limit  # 0: never shed

    def full(self) -> bool:
        return 0 < self.limit <= self.count


DOCS_POLICY = CONTENT_SECURITY_POLICY.encode()

# What a shed request gets: the same problem document every time, built once.
_OVERLOADED = msgspec.json.encode(
    {
        "type": "/problems/overloaded",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the server is handling as many requests as it takes; retry after the"
        " Retry-After seconds (RAWPOST_MAX_IN_FLIGHT)",
    }
)


# No route takes more than a handful of query parameters; a request with more is refused
# before Litestar parses them.
MAX_QUERY_PARAMETERS = 20
_TOO_MANY_PARAMETERS = msgspec.json.encode(
    {
        "type": "/problems/validation",
        "title": "Bad Request",
        "status": 400,
        "detail": f"the query string has more than {MAX_QUERY_PARAMETERS} parameters",
    }
)


_HOST_NOT_SERVED = msgspec.json.encode(
    {
        "type": "/problems/bad-request",
        "title": "Bad Request",
        "status": 400,
        "detail": "this Host is not served here (RAWPOST_ALLOWED_HOSTS)",
    }
)


class AllowedHosts:
    """The Host headers served (RAWPOST_ALLOWED_HOSTS): names, or `*.example.com` for any
    subdomain of example.com; compared without the port, ignoring case.

    Not Litestar's AllowedHostsConfig: its 400 is `{"message": ...}`, not a problem
    document, and it compares the Host header's port too (`api.example:8000` is refused
    when `api.example` is listed).
    """

    def __init__(self, hosts: list[str]) -> None:
        self.names = frozenset(h.lower() for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:].lower() for h in hosts if h.startswith("*."))

    def allows(self, host: bytes) -> bool:
        name = host.decode("latin-1").lower()
        if not name.endswith("]"):  # "[::1]" has no port to strip
            name = name.rpartition(":")[0] or name
        return name in self.names or (bool(self.suffixes) and name.endswith(self.suffixes))


async def _problem(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _too_many_parameters(query: bytes) -> bool:
    return query.count(b"&") >= MAX_QUERY_PARAMETERS


def _list_allowed_methods(headers: list[tuple[bytes, bytes]], scope: Any) -> None:
    routes = scope["app"].routes
    route = next((r for r in routes if r.path_format == scope.get("path_template")), None)
    if route is None:
        return
    headers[:] = [(k, v) for k, v in headers if k.lower() != b"allow"]
    headers.append((b"allow", ", ".join(sorted(route.methods)).encode()))


async def vary_by_authorization(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook, on when CORS is: under /api, `Vary` names
    Authorization. Litestar's CORS middleware, around everything else, sets `Vary:
    Origin` on answers to an allowed origin, replacing the request context's `Vary:
    Authorization`; a cache would then hand an anonymous answer to a signed-in request."""
    if message["type"] != "http.response.start" or not scope["path"].startswith("/api"):
        return
    start: Any = message
    headers = [(k, v) for k, v in start.get("headers") or () if k.lower() != b"vary"]
    values = [v for k, v in start.get("headers") or () if k.lower() == b"vary"]
    names = {name.strip().lower() for value in values for name in value.split(b",")}
    if b"authorization" not in names:
        values.append(b"Authorization")
    start["headers"] = [*headers, (b"vary", b", ".join(values))]


def request_context_middleware(
    app: ASGIApp,
    *,
    access_log: str,
    in_flight: InFlight | None = None,
    allowed_hosts: AllowedHosts | None = None,
    public_max_age: int = 0,
) -> ASGIApp:
    """Request id (X-Request-ID, propagated or created), Server-Timing, the security
    headers (nosniff everywhere; under /api `Vary: Authorization` and `Cache-Control`:
    `no-store` on answers to a token or to a write, `no-cache` (or `public,
    max-age=public_max_age`) on reads without a token), metrics, and an access-log line:
    for every request (`all`), for responses of 500 and more (`errors`), or none
    (`off`). A line per request costs about a sixth of the
    throughput (docs/performance.md); the metrics count every request anyway.

    A Host header that `allowed_hosts` does not list is answered 400 at once.

    Load shedding: an /api request arriving while `in_flight` is full is answered 503
    with Retry-After at once, before its body is read or a connection is asked for, so
    the requests already accepted keep their latency.

    `Allow` on an answer to OPTIONS lists every method of the route: Litestar 2 builds its
    OPTIONS handler when a path's first handler is registered and never updates it
    (litestar-org/litestar#4169, fixed only in 3), so it would list one method.

    Litestar runs it after routing, so `path_template` names the matched route.
    """
    private = b"no-store"
    public = b"no-cache" if public_max_age == 0 else b"public, max-age=%d" % public_max_age
    log_all = access_log == "all"
    log_errors = access_log != "off"
    flight = in_flight if in_flight is not None else InFlight(0)
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
        BUFFER.add(in_progress, 1)
        incoming = ""
        signed = False  # the request carries a token: its answer depends on the caller
        host = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"authorization":
                signed = True
            elif name == b"host":
                host = value
        api = route.startswith("/api")
        read = method in ("GET", "HEAD")
        docs = route.startswith("/schema")
        request_id = incoming[:128] if incoming.isprintable() and incoming else new_request_id()
        ctx = RequestContext(request_id)
        token = CURRENT.set(ctx)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Litestar builds this message and its header list for this response
                # alone: extend them in place rather than copy both.
                start: Any = message
                headers = start.get("headers")
                if not isinstance(headers, list):  # ASGI allows any iterable
                    headers = start["headers"] = list(headers or ())
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"server-timing", _server_timing(ctx, time.perf_counter())))
                headers.append((b"x-content-type-options", b"nosniff"))
                if docs:
                    headers.append((b"content-security-policy", DOCS_POLICY))
                if method == "OPTIONS":
                    _list_allowed_methods(headers, http)
                if api:
                    # What /api answers can depend on the caller (emails, drafts): caches
                    # must key on Authorization, and never store an answer to a token.
                    headers.append((b"vary", b"Authorization"))
                    if not any(k == b"cache-control" for k, _ in headers):
                        # An answer to a token is the caller's, one to a write may hold an
                        # email, an error (a 401, a 429 for this address, a 503) is about
                        # this request: no cache may keep them. A 200 or 304 to a read
                        # without a token may be kept, and revalidated (its ETag) before
                        # each reuse, or after RAWPOST_PUBLIC_MAX_AGE seconds.
                        shareable = read and not signed and status in (200, 304)
                        headers.append((b"cache-control", public if shareable else private))
            await send(message)

        counted = api and not flight.full()
        try:
            if allowed_hosts is not None and not allowed_hosts.allows(host):
                counted = False
                await _problem(send_with_headers, 400, _HOST_NOT_SERVED)
            elif _too_many_parameters(http.get("query_string", b"")):
                counted = False
                await _problem(send_with_headers, 400, _TOO_MANY_PARAMETERS)
            elif counted:
                flight.count += 1
                await app(scope, receive, send_with_headers)
            elif api:
                await _problem(send_with_headers, 503, _OVERLOADED, (b"retry-after", b"1"))
            else:
                await app(scope, receive, send_with_headers)
        finally:
            if counted:
                flight.count -= 1
            CURRENT.reset(token)
            BUFFER.add(in_progress, -1)
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
