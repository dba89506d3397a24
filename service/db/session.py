"""The Session a request handler gets as `conn`: statements on one pooled connection,
retried after transient failures, and the dependency that lends and returns it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import asyncpg
import backoff
from litestar.datastructures import State
from litestar.di import NamedDependency

from service import observability
from service.config import Settings
from service.db import failures
from service.db.pool import Connection, Database
from service.db.statements import Executor, Statements, Timed, run
from service.errors import UnavailableError
from service.metrics import BUFFER, POOL_ACQUIRE_SECONDS, RETRIES, TRANSIENT_FAILURES
from service.sql import Query

T = TypeVar("T")
log = logging.getLogger("rawpost.db")


class _Retry(Exception):
    """Internal: a transient failure that is safe to run again."""

    def __init__(self, cause: BaseException, sqlstate_class: str) -> None:
        super().__init__(str(cause))
        self.cause, self.sqlstate_class = cause, sqlstate_class


class Session(Statements):
    """What a handler gets as `conn`: one pooled connection, acquired on first use and
    given back by `provide_connection` when the handler returns.

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

    async def _run(self, method: str, query: Query, args: tuple[Any, ...]) -> Any:
        readonly = query.readonly

        async def attempt() -> Any:
            conn = await self._connection_or_retry()
            try:
                return await run(conn, method, query, args, self._db.settings.slow_query_ms)
            except Exception as exc:
                sqlstate_class = failures.transient_class(exc)
                if sqlstate_class is None:
                    raise
                TRANSIENT_FAILURES.labels(sqlstate_class).inc()
                await self._discard()
                if readonly or failures.not_executed(exc):
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
                result = await work(Timed(conn, slow_ms))
            except Exception as exc:
                sqlstate_class = failures.transient_class(exc)
                if sqlstate_class is None:
                    await _rollback_quietly(tx)
                    raise
                TRANSIENT_FAILURES.labels(sqlstate_class).inc()
                await self._discard()
                raise _Retry(exc, sqlstate_class) from exc  # nothing was committed
            try:
                await tx.commit()
            except Exception as exc:
                if failures.transient_class(exc) is not None:
                    await self._discard()
                raise
            return result

        return await _with_retries(self._db.settings, attempt)


async def _rollback_quietly(tx: Any) -> None:
    try:
        await tx.rollback()
    except Exception as exc:  # the connection is probably gone; the pool will notice
        log.warning("rollback failed: %s", type(exc).__name__)


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
        if failures.is_unavailable(exc):
            raise UnavailableError("the database is unreachable; retry shortly") from exc
        raise
    finally:
        db.waiting -= 1
        took = time.perf_counter() - started
        BUFFER.observe(POOL_ACQUIRE_SECONDS, took)
        if (ctx := observability.current()) is not None:
            ctx.pool_wait_seconds += took


async def provide_connection(state: State) -> AsyncGenerator[Session, None]:
    """Lend a Session for one request; its connection (if it took one) goes back to the
    pool when the handler returns or raises."""
    session = Session(state.db)
    try:
        yield session
    finally:
        await session.close()


# What a handler declares to get database access: `conn: ConnectionDep`.
ConnectionDep: TypeAlias = NamedDependency[Session]
