"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from typing import Any

import msgspec
from litestar import MediaType, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from service.db.pool import Database
from service.db.statements import Timed
from service.errors import RETRY_AFTER_SECONDS, NotFoundError, UnauthorizedError, problem_responses
from service.health import repository
from service.metrics import POOL_CONNECTIONS, POOL_WAITING, metrics_text

log = logging.getLogger("rawpost.health")


class PoolFigures(msgspec.Struct, kw_only=True):
    size: int
    idle: int
    in_use: int
    waiting: int
    min_size: int
    max_size: int


class ReplicaHealth(msgspec.Struct, kw_only=True):
    """One read replica as this worker sees it; it never makes the instance unready."""

    name: str  # host:port from RAWPOST_REPLICA_URLS
    state: str  # standby (takes reads within the lag bound), down, or not a standby
    lag_seconds: float | None  # None while it is not a reachable standby
    takes_reads: bool
    pool: PoolFigures | None  # None until it first answered


class Readiness(msgspec.Struct, kw_only=True):
    status: str
    database: str
    pending_migrations: list[str]
    pool: PoolFigures
    replicas: list[ReplicaHealth] = msgspec.field(default_factory=list)


class Liveness(msgspec.Struct):
    status: str


def pool_figures(db: Database) -> PoolFigures:
    size, idle = db.pool.get_size(), db.pool.get_idle_size()
    return PoolFigures(
        size=size,
        idle=idle,
        in_use=size - idle,
        waiting=db.waiting,
        min_size=db.pool.get_min_size(),
        max_size=db.pool.get_max_size(),
    )


def replica_health(db: Database) -> list[ReplicaHealth]:
    if db.replicas is None:
        return []
    max_lag = db.settings.replica_max_lag
    return [
        ReplicaHealth(
            name=r.name,
            state=r.state,
            lag_seconds=round(r.lag, 3) if math.isfinite(r.lag) else None,
            takes_reads=r.usable(max_lag),
            pool=None
            if r.pool is None
            else PoolFigures(
                size=r.pool.get_size(),
                idle=r.pool.get_idle_size(),
                in_use=r.pool.get_size() - r.pool.get_idle_size(),
                waiting=r.waiting,
                min_size=r.pool.get_min_size(),
                max_size=r.pool.get_max_size(),
            ),
        )
        for r in db.replicas.members
    ]


def publish_pool_figures(db: Database) -> None:
    """This worker's pool figures into the rawpost_pool_* gauges (summed over workers)."""
    figures = pool_figures(db)
    POOL_CONNECTIONS.labels("idle").set(figures.idle)
    POOL_CONNECTIONS.labels("in_use").set(figures.in_use)
    POOL_CONNECTIONS.labels("size").set(figures.size)
    POOL_CONNECTIONS.labels("max").set(figures.max_size)
    POOL_WAITING.set(figures.waiting)


async def check_readiness(db: Database) -> Readiness:
    """A round trip within the ready deadline, and the schema at the newest migration."""
    try:
        async with asyncio.timeout(db.settings.ready_timeout):
            async with db.pool.acquire() as conn:
                pending = await repository.list_pending_migrations(Timed(conn), db.migrations)
    except Exception as exc:
        figures = pool_figures(db)
        # Every connection busy past the deadline is overload, not an outage.
        exhausted = (
            isinstance(exc, TimeoutError)
            and figures.idle == 0
            and (figures.size >= figures.max_size)
        )
        if not exhausted:
            log.warning("readiness check failed: %s", type(exc).__name__)
        return Readiness(
            status="unavailable",
            database="pool exhausted" if exhausted else "unreachable",
            pending_migrations=[],
            pool=figures,
            replicas=replica_health(db),
        )
    return Readiness(
        status="ready" if not pending else "migrations pending",
        database="ok",
        pending_migrations=pending,
        pool=pool_figures(db),
        replicas=replica_health(db),
    )


@get("/live", summary="The process is up (touches no database)")
async def live() -> Liveness:
    return Liveness(status="ok")


@get(
    "/ready",
    summary="Ready to serve: database reachable and schema at the newest migration",
    description="200 when ready; 503 (with `Retry-After`) naming what is missing: an"
    " unreachable database or the pending migrations. Pool figures in both cases, and each"
    " read replica's state (a replica never makes the instance unready: the primary"
    " serves its reads).",
    responses={
        503: ResponseSpec(
            data_container=Readiness,
            description="Not ready (with a `Retry-After` header): `database` says why,"
            " `pending_migrations` lists what to"
            " apply (`rawpost migrate apply`).",
        )
    },
)
async def ready(state: State) -> Response[Readiness]:
    result = await check_readiness(state.db)
    if result.status == "ready":
        return Response(result)
    return Response(result, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


METRICS_SCHEME = "MetricsToken"


async def scraper_only(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """/metrics is for a scraper holding RAWPOST_METRICS_TOKEN; unset, it is not served."""
    db: Database = connection.app.state.db
    expected = db.settings.metrics_token
    if expected is None:
        raise NotFoundError(
            "metrics are not served: set RAWPOST_METRICS_TOKEN (docs/operations.md)"
        )
    scheme, _sep, given = (connection.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise UnauthorizedError("/metrics needs `Authorization: Bearer <RAWPOST_METRICS_TOKEN>`")


@get(
    "/metrics",
    summary="Prometheus metrics",
    description="Only for a scraper that sends `Authorization: Bearer` with the value of"
    " RAWPOST_METRICS_TOKEN (401 otherwise); 404 when that setting is unset.",
    media_type=MediaType.TEXT,
    include_in_schema=True,
    guards=[scraper_only],
    security=[{METRICS_SCHEME: []}],
    responses=problem_responses(401, 404, limited=False),
)
async def metrics(state: State) -> Response[bytes]:
    publish_pool_figures(state.db)  # this worker's, now; the others' within a second
    state.cache.publish()
    body = metrics_text()
    # Litestar appends "; charset=utf-8" to text types itself.
    return Response(body, media_type="text/plain; version=0.0.4")


router = Router("/health", route_handlers=[live, ready], tags=["health"])
