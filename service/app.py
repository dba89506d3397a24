"""create_app(): routes, lifespan (pool + SQL check), error handling, OpenAPI, metrics."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp

from service import migrate
from service.auth.callers import Callers
from service.auth.passwords import Passwords
from service.auth.repository import Issuer
from service.auth.routes import router as auth_router
from service.auth.security import bearer_auth
from service.cache import ReadCache
from service.config import Settings, check_jwt_secrets
from service.db.pool import Database, Pool, create_pool
from service.db.replicas import Replicas, consistency_headers
from service.db.session import provide_connection
from service.db.statements import Timed
from service.docs_page import SwaggerPage
from service.errors import handle_exception
from service.health import repository as health_repository
from service.health.routes import METRICS_SCHEME, metrics, publish_pool_figures
from service.health.routes import router as health_router
from service.metrics import BUILD_INFO, flushing, worker_stopped
from service.observability import (
    AllowedHosts,
    InFlight,
    mark_handler_done,
    request_context_middleware,
    vary_by_authorization,
)
from service.openapi import refine as refine_openapi
from service.posts.routes import router as posts_router
from service.posts.writes import PostWrites
from service.ratelimit import RateLimits
from service.sql import QUERIES, Query, SqlFileError
from service.users.routes import router as users_router

log = logging.getLogger("rawpost.app")


API_DESCRIPTION = """\
Users and their posts over PostgreSQL.

* JSON in and out (UTF-8). Timestamps are RFC 3339 in UTC with a `Z`; ids are UUIDs.
* Unknown fields in a request body are rejected with 400; so is an empty PATCH body.
* Soft delete: deleted rows are invisible to every read (404 / absent from lists) until
  restored. A deleted user's posts are invisible too, and cannot be restored on their own.
* Lists are keyset-paginated, newest first by `(created_at, id)`; pass `next_cursor` back
  as `cursor`. A cursor is 32 base64url characters: any string of that shape names a
  position (a made-up one only starts the page elsewhere); anything else is a 400.
* One user or post comes with an `ETag`: send it back in `If-None-Match` on a read (304,
  no body, when unchanged) or in `If-Match` on `PATCH`, `DELETE` and restore (412 when
  the row changed since, decided inside the write itself: no lost update).
* Errors are RFC 9457 problem documents (`application/problem+json`); validation
  failures list `errors: [{field, message}]`. 503 responses carry `Retry-After`.
* Accounts: sign up with `POST /api/users`, sign in with `POST /api/auth/token` (or the
  Authorize button), send `Authorization: Bearer <access token>`. Reads are public but
  depend on the caller: an email is shown only to its user and admins, a draft only to
  its author and admins (404 for everybody else). A token sent to any route is checked:
  a bad, expired or revoked one is a 401 even where no token is needed. Writes need a
  token (401 without, 403 for a caller who may not, 404 for a draft it cannot see).
  Idempotency keys belong to the caller that used them.
* Rate limits: per caller across `/api` (the token's user, else the client address),
  per email for sign-in, per address for sign-up. Over a limit: 429 with `Retry-After`;
  limited responses carry `RateLimit-Policy` and `RateLimit` headers.
* Load shedding: a worker past its in-flight limit answers 503 with `Retry-After` at once.
"""


def publish_figures(db: Database, cache: ReadCache) -> None:
    publish_pool_figures(db)
    cache.publish()


def provide_issuer(state: State) -> Issuer:
    issuer: Issuer = state.issuer
    return issuer


def provide_callers(state: State) -> Callers:
    callers: Callers = state.callers
    return callers


async def verify_sql(
    pool: Pool,
    migrations: tuple[str, ...],
    queries: Mapping[str, Query] = QUERIES,
    *,
    prepare: bool = True,
) -> None:
    """Prepare every SQL file; any failure stops the start, naming each file.

    Behind PgBouncer in transaction mode (`prepare=False`) named statements cannot be
    used, so only the schema version is checked; `rawpost sql check` against the
    database itself does the rest.
    """
    async with pool.acquire() as conn:
        pending = await health_repository.list_pending_migrations(Timed(conn), migrations)
        if pending:
            log.warning(
                "schema is behind: pending migrations %s; /health/ready answers 503 until"
                " `rawpost migrate apply` runs",
                ", ".join(pending),
            )
            return
        if not prepare:
            log.info("statement cache off (PgBouncer?): SQL files not prepared at start")
            return
        failures = []
        for q in queries.values():
            try:
                await conn.prepare(q.sql)
            except asyncpg.PostgresError as exc:
                failures.append(f"{q.path}: {exc}")
        if failures:
            raise SqlFileError("SQL files do not prepare:\n" + "\n".join(failures))


# What a browser script may read off a response when CORS is open.
CORS_EXPOSED = [
    "Location",
    "ETag",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-Request-ID",
    "Consistency-Token",
]


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS is closed (no Access-Control-* headers at all) unless RAWPOST_CORS_ORIGINS
    lists origins; bearer tokens, not cookies, so no credentials mode."""
    origins = _listed(settings.cors_origins)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "If-Match",
            "If-None-Match",
            "Consistency-Token",
        ],
        expose_headers=CORS_EXPOSED,
    )


def allowed_hosts(settings: Settings) -> AllowedHosts | None:
    """Requests whose Host is not listed in RAWPOST_ALLOWED_HOSTS get a 400 ("*": any)."""
    hosts = _listed(settings.allowed_hosts)
    if not hosts or "*" in hosts:
        return None
    return AllowedHosts(hosts)


def create_app(settings: Settings) -> Litestar:
    check_jwt_secrets(settings)
    assert settings.jwt_secret is not None
    migrations = tuple(migrate.migration_ids(Path(settings.migrations_dir)))

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        born: dict[int, float] = {}
        pool = await create_pool(settings, born)
        try:
            await verify_sql(pool, migrations, prepare=settings.statement_cache_size > 0)
            db = Database(pool=pool, settings=settings, migrations=migrations, born=born)
            db.replicas = replicas = Replicas.configured(settings)
            app.state.db = db
            passwords = Passwords(settings.hash_threads)
            app.state.issuer = Issuer(settings, passwords)
            app.state.callers = callers = Callers(db)
            app.state.cache = cache = ReadCache.for_worker(settings)
            app.state.post_writes = post_writes = (
                PostWrites(db, cache, settings.write_coalesce_ms)
                if settings.write_coalesce_ms
                else None
            )
            BUILD_INFO.labels(
                version=importlib.metadata.version("rawpost"),
                python=platform.python_version(),
                litestar=importlib.metadata.version("litestar"),
                asyncpg=importlib.metadata.version("asyncpg"),
            ).set(1)
            try:
                async with (
                    callers.polling(),
                    replicas.running() if replicas else contextlib.nullcontext(),
                    cache.serving(),
                    flushing(lambda: publish_figures(db, cache)),
                ):
                    try:
                        yield
                    finally:
                        if post_writes is not None:  # its batches need the pool
                            await post_writes.close()
            finally:
                passwords.close()
        finally:
            await pool.close()
            worker_stopped()

    in_flight = InFlight(settings.max_in_flight)
    hosts = allowed_hosts(settings)
    limits = RateLimits(settings)

    def around_authentication(config: AppConfig) -> AppConfig:
        """The request context goes first, around authentication (whose on_app_init puts
        it first): a refused token's 401 gets a request id, headers and metrics too, and
        load shedding answers before any token is verified."""
        config.middleware.insert(0, request_context)
        return config

    def request_context(app: ASGIApp) -> ASGIApp:
        return request_context_middleware(
            app,
            access_log=settings.access_log,
            in_flight=in_flight,
            allowed_hosts=hosts,
            public_max_age=settings.public_max_age,
        )

    cors = cors_config(settings)
    app = Litestar(
        cors_config=cors,
        before_send=[
            *([vary_by_authorization] if cors is not None else []),
            *([consistency_headers(settings)] if settings.replica_urls else []),
        ],
        route_handlers=[users_router, posts_router, auth_router, health_router, metrics],
        dependencies={
            "conn": Provide(provide_connection),
            "issuer": Provide(provide_issuer, sync_to_thread=False),
            "callers": Provide(provide_callers, sync_to_thread=False),
            "limits": Provide(limits.provide, sync_to_thread=False),
        },
        on_app_init=[
            bearer_auth(settings.jwt_secret, settings.jwt_previous_secret, limits).on_app_init,
            around_authentication,
        ],
        lifespan=[database, limits.running],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.body_limit,
        # After authentication (the caller).
        middleware=[limits.middleware],
        after_request=mark_handler_done,
        openapi_config=OpenAPIConfig(
            title="rawpost",
            version="2",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=[SwaggerPage()],
            components=Components(
                security_schemes={
                    METRICS_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="The value of RAWPOST_METRICS_TOKEN (for /metrics only).",
                    )
                }
            ),
        ),
        logging_config=None,
    )
    refine_openapi(app.openapi_schema)
    return app
