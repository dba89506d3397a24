"""The asyncpg pool: created in the app's lifespan (with backoff), lent to handlers by DI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

import asyncpg
import asyncpg.pool
import backoff
import msgspec
from litestar.datastructures import State
from litestar.di import NamedDependency

from service import observability
from service.config import Settings
from service.errors import UnavailableError, is_unavailable
from service.metrics import BUFFER, POOL_ACQUIRE_SECONDS, QUERY_SECONDS, RETRIES, TRANSIENT_FAILURES
from service.sql import QUERIES

T = TypeVar("T")

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    RawConnection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
    Pool = asyncpg.Pool
    RawConnection = asyncpg.Connection


class Executor(Protocol):
    """What generated query functions run on: a Session, or any asyncpg connection."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


# Session settings of every pooled connection (the benchmark gives pgbench the same;
# docs/performance.md has the measurements).
# - Memoize caches the users lookups of a nested loop; for rawpost's pages of at most
#   101 rows building that cache costs more than it saves (list_posts 2.6 times faster
#   under pgbench with it off).
# - Generic plans, always: every statement is prepared once per connection, but with the
#   default plan_cache_mode PostgreSQL planned list_posts afresh on every run (its generic
#   plan's LIMIT $n estimate looks costly), and planning took longer than running it.
#   Forced, the cached plan runs it in 173 us instead of 311 us. tests/test_bench.py
#   checks every list statement's generic plan reads through an index.
# - No parallel workers: the generic plan of a LIMIT $n page otherwise starts two of
#   them for a 21-row page (4.9 ms instead of 0.17 ms).
SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "application_name": "rawpost",
    "enable_memoize": "off",
    "plan_cache_mode": "force_generic_plan",
    "max_parallel_workers_per_gather": "0",
}

log = logging.getLogger("rawpost.db")
sql_log = logging.getLogger("rawpost.sql")

# The statement text -> its file, so logs and metrics name the file, never the SQL;
# and which statements are plain reads (safe to run again after a lost connection).
_QUERY_BY_SQL = {q.sql: q for q in QUERIES.values()}
_READONLY = frozenset(q.sql for q in QUERIES.values() if q.readonly)


class Database(msgspec.Struct):
    """What the lifespan puts in app.state: the pool and the settings it was built from."""

    pool: Pool
    settings: Settings
    migrations: tuple[str, ...]  # every migration id in migrations/, oldest first
    born: dict[int, float]  # server pid -> when its connection opened (for max lifetime)
    waiting: int = 0  # requests waiting for a pooled connection right now


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


async def create_pool(settings: Settings, born: dict[int, float] | None = None) -> Pool:
    """Open the pool, waiting for the database with capped exponential backoff."""
    if not settings.database_url:
        raise UnavailableError("DATABASE_URL is not set")
    opened = born if born is not None else {}

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
            # 0 behind PgBouncer in transaction mode: no named prepared statements,
            # which would not survive the switch to another server connection.
            statement_cache_size=settings.statement_cache_size,
            server_settings=SERVER_SETTINGS,
            init=init,
            reset=reset,
        )
        assert pool is not None
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


# Failures after which nothing was executed, so even a write may run again.
_NOT_EXECUTED_STATES = {"40001", "40P01", "53300", "57P03"}
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "40001", "40P01", "53300"}


def transient_class(exc: BaseException) -> str | None:
    """The SQLSTATE class of a transient failure ('conn' for driver-level loss), else None."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if state.startswith("08") or state in _TRANSIENT_STATES:
            return state[:2]
        return None
    if isinstance(
        exc,
        asyncpg.InterfaceError | asyncpg.InternalClientError | ConnectionError | OSError,
    ) and not isinstance(exc, TimeoutError):
        return "conn"
    return None


def _not_executed(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "") in _NOT_EXECUTED_STATES


class _Retry(Exception):
    """Internal: a transient failure that is safe to run again."""

    def __init__(self, cause: BaseException, sqlstate_class: str) -> None:
        super().__init__(str(cause))
        self.cause, self.sqlstate_class = cause, sqlstate_class


class _Statements:
    """asyncpg's four statement methods, each sent through the subclass's `_run`."""

    __slots__ = ()

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", query, args)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        status: str = await self._run("execute", query, args)
        return status


class Session(_Statements):
    """What a handler gets as `conn`: one pooled connection, acquired on first use.

    A statement that fails transiently (the connection died, a serialization failure,
    a deadlock, too many connections) runs again on a fresh connection, with
    exponential backoff and full jitter, bounded by RAWPOST_RETRY_ATTEMPTS and
    RAWPOST_RETRY_MAX_TIME, if it is a read or certainly did not run. A write whose
    outcome is unknown is never replayed: the client gets a 503 and can retry with an
    Idempotency-Key.
    """

    __slots__ = ("_conn", "_db")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None

    async def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = await _acquire(self._db)
        return self._conn

    async def _connection_or_retry(self) -> Connection:
        try:
            return await self._connection()
        except UnavailableError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise  # the acquire timeout is already spent: answer 503 now
            # Could not connect (refused, starting up, too many clients): nothing ran.
            TRANSIENT_FAILURES.labels("conn").inc()
            raise _Retry(exc, "conn") from exc

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # asyncpg may already have given a lost connection back to the pool ("released").
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()  # the pool opens a fresh one in its place
            await self._db.pool.release(conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        db = self._db
        try:
            born = db.born.get(conn.get_server_pid(), time.monotonic())
            if time.monotonic() - born > db.settings.pool_max_lifetime:
                db.born.pop(conn.get_server_pid(), None)
                await conn.close(timeout=db.settings.acquire_timeout)  # recycled by the pool
            else:
                await db.pool.release(conn, timeout=db.settings.acquire_timeout)
        except Exception as exc:
            # The pool terminates a connection it cannot reset; the request's own
            # outcome stands, so a clean-up failure must not turn it into a 500.
            log.warning("pooled connection discarded on release: %s", type(exc).__name__)

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        readonly = query in _READONLY

        async def attempt() -> Any:
            conn = await self._connection_or_retry()
            try:
                return await _timed(conn, method, query, args, self._db.settings.slow_query_ms)
            except Exception as exc:
                sqlstate_class = transient_class(exc)
                if sqlstate_class is None:
                    raise
                TRANSIENT_FAILURES.labels(sqlstate_class).inc()
                await self._discard()
                if readonly or _not_executed(exc):
                    raise _Retry(exc, sqlstate_class) from exc
                raise

        return await _with_retries(self._db.settings, attempt)

    async def transaction(self, work: Callable[[Executor], Awaitable[T]]) -> T:
        """Run `work` in one transaction, retried whole if it fails transiently before
        COMMIT; a failure during COMMIT leaves the outcome unknown and is not retried."""
        slow_ms = self._db.settings.slow_query_ms

        async def attempt() -> T:
            conn = await self._connection_or_retry()
            tx = conn.transaction()
            try:
                await tx.start()
                result = await work(_Timed(conn, slow_ms))
            except Exception as exc:
                sqlstate_class = transient_class(exc)
                if sqlstate_class is None:
                    await _rollback_quietly(tx)
                    raise
                TRANSIENT_FAILURES.labels(sqlstate_class).inc()
                await self._discard()
                raise _Retry(exc, sqlstate_class) from exc  # nothing was committed
            try:
                await tx.commit()
            except Exception as exc:
                if transient_class(exc) is not None:
                    await self._discard()
                raise
            return result

        return await _with_retries(self._db.settings, attempt)


class _Timed(_Statements):
    """An Executor over one connection that times, counts and logs each statement."""

    __slots__ = ("_conn", "_slow_ms")

    def __init__(self, conn: Connection, slow_ms: float) -> None:
        self._conn, self._slow_ms = conn, slow_ms

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        return await _timed(self._conn, method, query, args, self._slow_ms)


async def _rollback_quietly(tx: Any) -> None:
    try:
        await tx.rollback()
    except Exception as exc:  # the connection is probably gone; the pool will notice
        log.warning("rollback failed: %s", type(exc).__name__)


async def _timed(
    conn: Connection, method: str, query: str, args: tuple[Any, ...], slow_ms: float
) -> Any:
    known = _QUERY_BY_SQL.get(query)
    name = known.name if known else "<ad hoc>"
    started = time.perf_counter()
    try:
        result = await getattr(conn, method)(query, *args)
    finally:
        _observe(name, started)
    _log_statement(name, started, result if method != "execute" else _tag_rows(result), slow_ms)
    return result


async def _with_retries(settings: Settings, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt`; after a retryable failure, run it again under backoff's policy.

    The first try goes straight through: building backoff's wrapper costs more than
    the statement itself on the hot path, and most statements never need it.
    """
    started = time.monotonic()
    try:
        return await attempt()
    except _Retry as first:
        if settings.retry_attempts <= 1:
            raise first.cause from None
        RETRIES.labels(first.sqlstate_class).inc()
        log.info("retrying after a transient failure (%s), attempt 1", first)

    def on_backoff(details: Any) -> None:
        exc = details["exception"]
        RETRIES.labels(exc.sqlstate_class).inc()
        log.info("retrying after a transient failure (%s), attempt %d", exc, details["tries"] + 1)

    retrying = backoff.on_exception(
        backoff.expo,
        _Retry,
        max_tries=max(settings.retry_attempts - 1, 1),
        # RAWPOST_RETRY_MAX_TIME counts from the first attempt, not the first retry.
        max_time=max(settings.retry_max_time - (time.monotonic() - started), 0.001),
        jitter=backoff.full_jitter,
        factor=0.05,
        max_value=1.0,
        on_backoff=on_backoff,
        raise_on_giveup=True,
    )(attempt)
    await asyncio.sleep(backoff.full_jitter(0.05))
    try:
        return await retrying()
    except _Retry as exc:
        raise exc.cause from None


# The histogram's child per SQL file: `.labels()` on every statement costs more than the
# observation itself.
_query_seconds: dict[str, Any] = {}


def _observe(name: str, started: float) -> None:
    took = time.perf_counter() - started
    if (histogram := _query_seconds.get(name)) is None:
        histogram = _query_seconds[name] = QUERY_SECONDS.labels(name)
    BUFFER.observe(histogram, took)
    if (ctx := observability.current()) is not None:
        ctx.db_seconds += took


class _Rows:
    """Rows an execute() touched, read from its command tag (e.g. "UPDATE 3")."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def _tag_rows(tag: Any) -> _Rows:
    text = str(tag)
    return _Rows(int(text.rpartition(" ")[2]) if text[-1:].isdigit() else 0)


def _log_statement(name: str, started: float, result: Any, slow_ms: float) -> None:
    took_ms = (time.perf_counter() - started) * 1000
    if isinstance(result, list):
        rows = len(result)
    elif isinstance(result, _Rows):
        rows = result.count
    else:
        rows = int(result is not None)
    if took_ms >= slow_ms:
        sql_log.warning(
            "slow query %s took %.1f ms (%d rows)",
            name,
            took_ms,
            rows,
            extra={"query": name, "duration_ms": round(took_ms, 2), "rows": rows},
        )
    elif sql_log.isEnabledFor(logging.DEBUG):
        # Parameter values are never logged.
        sql_log.debug(
            "query %s took %.2f ms (%d rows)",
            name,
            took_ms,
            rows,
            extra={"query": name, "duration_ms": round(took_ms, 2), "rows": rows},
        )


async def _acquire(db: Database) -> Connection:
    """A pooled connection; none free within the acquire timeout is a 503, never a hang."""
    started = time.perf_counter()
    db.waiting += 1
    try:
        return await db.pool.acquire(timeout=db.settings.acquire_timeout)
    except TimeoutError as exc:
        raise UnavailableError(
            "no database connection became available in time; retry shortly"
        ) from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise UnavailableError("the database is unreachable; retry shortly") from exc
        raise
    finally:
        db.waiting -= 1
        took = time.perf_counter() - started
        BUFFER.observe(POOL_ACQUIRE_SECONDS, took)
        if (ctx := observability.current()) is not None:
            ctx.pool_wait_seconds += took


async def provide_session(state: State) -> Session:
    """Lend a Session for one request. Its connection goes back to the pool as soon as
    the handler returns (observability's after_request hook) or, if the handler
    raised, when the response is sent; a yield-dependency would cost more per request."""
    session = Session(state.db)
    if (ctx := observability.current()) is not None:
        ctx.session = session
    return session


# What a handler declares to get database access: `conn: ConnectionDep`.
ConnectionDep: TypeAlias = NamedDependency[Session]
