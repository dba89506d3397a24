"""The asyncpg pool: created in the app's lifespan (with backoff), lent to handlers by DI."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import asyncpg.pool
import backoff
import msgspec
from litestar.datastructures import State
from litestar.di import NamedDependency

from service.config import Settings
from service.errors import UnavailableError, is_unavailable
from service.sql import QUERIES

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    RawConnection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
    Pool = asyncpg.Pool
    RawConnection = asyncpg.Connection

# What generated query functions accept: a pooled connection or a plain one.
Executor: TypeAlias = "Connection | RawConnection"

# What a handler declares to get a pooled connection: `conn: ConnectionDep`.
ConnectionDep: TypeAlias = NamedDependency[Connection]

log = logging.getLogger("rawpost.db")
sql_log = logging.getLogger("rawpost.sql")

# The statement text -> its file name, so a query log line names the file, not the SQL.
_NAME_BY_SQL = {q.sql: q.name for q in QUERIES.values()}


class Database(msgspec.Struct):
    """What the lifespan puts in app.state: the pool and the settings it was built from."""

    pool: Pool
    settings: Settings
    migrations: tuple[str, ...]  # every migration id in migrations/, oldest first


def _log_query(record: Any) -> None:
    # Parameter values (record.args) are never logged.
    if sql_log.isEnabledFor(logging.DEBUG):
        sql_log.debug(
            "query %s took %.2f ms",
            _NAME_BY_SQL.get(record.query, "<internal>"),
            record.elapsed * 1000,
            extra={"query": _NAME_BY_SQL.get(record.query, "<internal>")},
        )


async def _init_connection(conn: RawConnection) -> None:
    # json/jsonb arrive as Python objects so msgspec.convert can build nested Structs.
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode,
        )
    conn.add_query_logger(_log_query)


def _give_up_message(details: Any) -> None:
    log.error(
        "database still unreachable after %.1f s (%d attempts); giving up",
        details["elapsed"],
        details["tries"],
    )


def _retry_message(details: Any) -> None:
    exc = details.get("exception")
    log.warning(
        "database not reachable (attempt %d, %s: %s); retrying in %.1f s",
        details["tries"],
        type(exc).__name__,
        exc,
        details.get("wait", 0.0),
    )


async def create_pool(settings: Settings) -> Pool:
    """Open the pool, waiting for the database with capped exponential backoff."""
    if not settings.database_url:
        raise UnavailableError("DATABASE_URL is not set")

    @backoff.on_exception(
        backoff.expo,
        Exception,
        giveup=lambda exc: not is_unavailable(exc),
        max_time=settings.startup_timeout,
        max_value=5,
        on_backoff=_retry_message,
        on_giveup=_give_up_message,
        raise_on_giveup=True,
    )
    async def connect() -> Pool:
        pool = await asyncpg.create_pool(
            dsn=settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_inactive_connection_lifetime=settings.pool_max_idle,
            timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            server_settings={"TimeZone": "UTC", "application_name": "rawpost"},
            init=_init_connection,
        )
        assert pool is not None
        return pool

    return await connect()


async def provide_connection(state: State) -> AsyncGenerator[Connection, None]:
    """Lend a pooled connection for one request; none free in time is a 503, never a hang."""
    db: Database = state.db
    try:
        conn = await db.pool.acquire(timeout=db.settings.acquire_timeout)
    except TimeoutError as exc:
        raise UnavailableError(
            "no database connection became available in time; retry shortly"
        ) from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise UnavailableError("the database is unreachable; retry shortly") from exc
        raise
    try:
        yield conn
    finally:
        try:
            await db.pool.release(conn, timeout=db.settings.acquire_timeout)
        except Exception as exc:
            # The pool terminates a connection it cannot reset; the request's own
            # outcome stands, so a clean-up failure must not turn it into a 500.
            log.warning("pooled connection discarded on release: %s", type(exc).__name__)
