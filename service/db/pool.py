"""The asyncpg pool: opened in the app's lifespan, waiting for the database with backoff."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import asyncpg.pool
import backoff
import msgspec

from service.config import Settings
from service.db.failures import is_unavailable

if TYPE_CHECKING:
    from service.db.replicas import Replicas

    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    RawConnection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
    Pool = asyncpg.Pool
    RawConnection = asyncpg.Connection


# Session settings of every pooled connection (the benchmark gives pgbench the same);
# why each, with its measurement: docs/performance.md, "Why the settings are what they
# are". tests/system/test_bench.py checks every list statement's generic plan reads
# through an index.
SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "application_name": "rawpost",
    "enable_memoize": "off",
    "plan_cache_mode": "force_generic_plan",
    "max_parallel_workers_per_gather": "0",
}

log = logging.getLogger("rawpost.db")


class Database(msgspec.Struct):
    """What the lifespan puts in app.state: the pool and the settings it was built from."""

    pool: Pool
    settings: Settings
    migrations: tuple[str, ...]  # every migration id in migrations/, oldest first
    born: dict[int, float]  # server pid -> when its connection opened (for max lifetime)
    waiting: int = 0  # requests waiting for a pooled connection right now
    replicas: Replicas | None = None  # RAWPOST_REPLICA_URLS: where reads may go instead


async def _init_connection(conn: RawConnection) -> None:
    # json/jsonb arrive as Python objects so msgspec.convert can build nested Structs.
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=lambda v: msgspec.json.encode(v).decode(),
            decoder=msgspec.json.decode,
        )


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


def _connection_hooks(opened: dict[int, float]) -> dict[str, Any]:
    """The init and reset every pooled connection gets, the primary's and the replicas'."""

    async def init(conn: RawConnection) -> None:
        await _init_connection(conn)
        pid = conn.get_server_pid()
        opened[pid] = time.monotonic()

        def forget(_conn: object) -> None:
            opened.pop(pid, None)

        conn.add_termination_listener(forget)

    async def reset(conn: RawConnection) -> None:
        # asyncpg's default reset (unlock advisory locks, CLOSE ALL, UNLISTEN, RESET ALL)
        # is a round trip per request; rawpost sets no session state on pooled
        # connections, so only an open transaction needs undoing.
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")

    return {"init": init, "reset": reset}


async def open_pool(settings: Settings, dsn: str, born: dict[int, float]) -> Pool:
    """One attempt at a pool on `dsn` with the service's pool settings (a replica's, or
    the primary's inside create_pool's backoff)."""
    pool = await asyncpg.create_pool(
        dsn=dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        max_inactive_connection_lifetime=settings.pool_max_idle,
        timeout=settings.connect_timeout,
        command_timeout=settings.command_timeout,
        # 0 behind PgBouncer in transaction mode: no named prepared statements,
        # which would not survive the switch to another server connection.
        statement_cache_size=settings.statement_cache_size,
        server_settings=SERVER_SETTINGS,
        **_connection_hooks(born),
    )
    assert pool is not None
    return pool


async def create_pool(settings: Settings, born: dict[int, float] | None = None) -> Pool:
    """Open the pool, waiting for the database with capped exponential backoff."""
    if not settings.database_url:
        raise ValueError("DATABASE_URL is not set")
    dsn = settings.database_url
    opened = born if born is not None else {}

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
        pool = await open_pool(settings, dsn, opened)
        try:
            # With RAWPOST_POOL_MIN_SIZE=0 the pool opens nothing: prove the database
            # answers now, inside the backoff, rather than at the first request.
            async with pool.acquire(timeout=settings.connect_timeout) as conn:
                await conn.execute("SELECT 1")
        except BaseException:
            pool.terminate()
            raise
        return pool

    return await connect()
