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
from litestar.types import Scope

from service import observability
from service.config import Settings
from service.db import failures
from service.db.pool import Connection, Database, Pool
from service.db.replicas import (
    COMMITTED_POSITION,
    Replica,
    Replicas,
    reads_from_replica,
    requested_position,
)
from service.db.statements import Executor, Statements, Timed, run
from service.errors import UnavailableError
from service.metrics import BUFFER, POOL_ACQUIRE_SECONDS, RETRIES, TRANSIENT_FAILURES
from service.sql import Query

T = TypeVar("T")
# A standby that fails a read with one of these gets no reads until its poller reaches it.
_STANDBY_GONE: tuple[type[BaseException], ...] = (
    *failures.CONNECTION_LOST,
    asyncpg.CannotConnectNowError,
)
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

    With read replicas, `provide_connection` lets the reads of a read-only GET go to a
    standby (`read_from_replicas`): the first read chooses one (service.db.replicas) and
    the Session keeps it; a read that fails there with a connection loss or a recovery
    conflict runs again on the primary at once, and so does everything after it, as do
    a write, a transaction and every statement after `use_primary()`.
    """

    __slots__ = ("_after", "_conn", "_db", "_replica", "_replicas", "_wrote")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None
        self._replicas: Replicas | None = None  # set: reads may run on one of these
        self._after = 0  # ... once it has replayed the primary's WAL up to here
        self._replica: Replica | None = None  # the standby self._conn belongs to
        self._wrote = False  # a write committed through this Session

    def read_from_replicas(self, replicas: Replicas, after: int = 0) -> None:
        """Let this Session's reads run on a standby that has replayed the primary's WAL
        up to `after` (a Consistency-Token; 0: any point within the lag bound)."""
        self._replicas, self._after = replicas, after

    def use_primary(self) -> None:
        """Run every statement of this Session from now on on the primary. Call it
        before the first statement: a read already run on a standby stays as it was."""
        self._replicas = None

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

    def _pool(self) -> Pool:
        """The pool self._conn came from."""
        replica = self._replica
        if replica is not None and replica.pool is not None:
            return replica.pool
        return self._db.pool

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        pool = self._pool()
        self._left_replica()
        # asyncpg may already have given a lost connection back to the pool ("released").
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()  # the pool opens a fresh one in its place
            await pool.release(conn)

    def _left_replica(self) -> None:
        if (replica := self._replica) is not None:
            replica.in_use -= 1
            self._replica = None

    async def close(self) -> int | None:
        """Give the connection back. Returns, if this Session wrote and read replicas are
        on, the primary's WAL position after the write (its Consistency-Token)."""
        position = await self._wal_position() if self._wrote and self._db.replicas else None
        await self._release()
        return position

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        db = self._db
        replica = self._replica
        pool, born = (
            (replica.pool, replica.born) if replica and replica.pool else (db.pool, db.born)
        )
        self._left_replica()
        try:
            pid = conn.get_server_pid()
            if time.monotonic() - born.get(pid, time.monotonic()) > db.settings.pool_max_lifetime:
                born.pop(pid, None)
                await conn.close(timeout=db.settings.acquire_timeout)  # recycled by the pool
            else:
                await pool.release(conn, timeout=db.settings.acquire_timeout)
        except Exception as exc:
            # The pool terminates a connection it cannot reset; the request's own
            # outcome stands, so a clean-up failure must not turn it into a 500.
            log.warning("pooled connection discarded on release: %s", type(exc).__name__)

    async def _wal_position(self) -> int | None:
        """The primary's WAL position now, after the COMMIT: any connection to it tells
        the same, so the Session's own if it holds one, else a pooled one."""
        settings = self._db.settings
        try:
            if self._conn is not None and self._replica is None:
                return int(await self._conn.fetchval(COMMITTED_POSITION))
            async with self._db.pool.acquire(timeout=settings.acquire_timeout) as conn:
                return int(await conn.fetchval(COMMITTED_POSITION))
        except Exception as exc:
            # The write stands; without a token the client's next read may be stale.
            log.warning("no Consistency-Token: WAL position unreadable (%s)", type(exc).__name__)
            return None

    async def _leave_replica(self) -> None:
        """From here on, the primary: give the standby's connection back."""
        self._replicas = None
        if self._replica is not None:
            await self._release()

    async def _run(self, method: str, query: Query, args: tuple[Any, ...]) -> Any:
        readonly = query.readonly
        if self._replicas is not None and readonly:
            ran, result = await self._run_on_replica(method, query, args)
            if ran:
                return result
        elif self._replica is not None or self._replicas is not None:
            await self._leave_replica()  # a write, or use_primary() after a replica read

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

        result = await _with_retries(self._db.settings, attempt)
        if not readonly:
            self._wrote = True
        return result

    async def _run_on_replica(
        self, method: str, query: Query, args: tuple[Any, ...]
    ) -> tuple[bool, Any]:
        """(True, result) from a standby; (False, None): run it on the primary instead."""
        replicas = self._replicas
        assert replicas is not None
        settings = self._db.settings
        if self._conn is None:
            replica = await replicas.choose(self._after)
            if replica is None:
                self._replicas = None  # counted by choose()
                return False, None
            try:
                self._conn = await _acquire_replica(replica, settings)
            except Exception as exc:
                if not isinstance(exc, TimeoutError):  # a busy pool is no outage
                    replicas.failed(replica, exc)
                replicas.fallback("error")
                self._replicas = None
                return False, None
            replica.in_use += 1
            self._replica = replica
            replica.reads.inc()
        try:
            return True, await run(self._conn, method, query, args, settings.slow_query_ms)
        except Exception as exc:
            # A lost connection, a standby starting or shutting down, a query cancelled
            # by a recovery conflict (40001), a schema the standby has not replayed yet,
            # a standby that stopped answering (RAWPOST_COMMAND_TIMEOUT): the primary
            # answers instead, at once.
            sqlstate_class = failures.transient_class(exc)
            hung = isinstance(exc, TimeoutError)
            if sqlstate_class is not None:
                TRANSIENT_FAILURES.labels(sqlstate_class).inc()
            elif not hung and failures.classify(exc) is not failures.Kind.SCHEMA_BEHIND:
                raise
            replica = self._replica
            await self._discard()
            if replica is not None and (hung or isinstance(exc, _STANDBY_GONE)):
                replicas.failed(replica, exc)
            replicas.fallback("error")
            self._replicas = None
            log.info("read re-run on the primary after a failure on a replica (%s)", exc)
            return False, None

    async def transaction(self, work: Callable[[Executor], Awaitable[T]]) -> T:
        """Run `work` in one transaction, retried whole if it fails transiently before
        COMMIT; a failure during COMMIT leaves the outcome unknown and is not retried.
        Always on the primary."""
        if self._replica is not None or self._replicas is not None:
            await self._leave_replica()
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

        result = await _with_retries(self._db.settings, attempt)
        self._wrote = True
        return result


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
        _count_wait(started)


def _count_wait(started: float) -> None:
    """A wait for a pooled connection, in the metrics and the request's access line."""
    took = time.perf_counter() - started
    BUFFER.observe(POOL_ACQUIRE_SECONDS, took)
    if (ctx := observability.current()) is not None:
        ctx.pool_wait_seconds += took


async def _acquire_replica(replica: Replica, settings: Settings) -> Connection:
    """A connection of the standby's pool; counted like the primary's."""
    assert replica.pool is not None
    started = time.perf_counter()
    replica.waiting += 1
    try:
        return await replica.pool.acquire(timeout=settings.acquire_timeout)
    finally:
        replica.waiting -= 1
        _count_wait(started)


async def provide_connection(state: State, scope: Scope) -> AsyncGenerator[Session, None]:
    """Lend a Session for one request; its connection (if it took one) goes back to the
    pool when the handler returns or raises. With read replicas, a read-only GET's
    Session may read from one, and a write's position goes into the request context (the
    Consistency-Token header)."""
    db: Database = state.db
    session = Session(db)
    if (replicas := db.replicas) is not None and reads_from_replica(scope):
        session.read_from_replicas(
            replicas, requested_position(scope, db.settings.consistency_cookie)
        )
    try:
        yield session
    finally:
        position = await session.close()
        if position is not None and (ctx := observability.current()) is not None:
            ctx.consistency_lsn = position


# What a handler declares to get database access: `conn: ConnectionDep`.
ConnectionDep: TypeAlias = NamedDependency[Session]
