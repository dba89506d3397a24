"""One statement on one connection: the Executor interface generated functions call,
and the timing, metrics and log line around every statement.

Generated functions pass the statement's `Query` (sql/<domain>/<name>.sql as loaded),
so logs and metrics name its file, and retries know whether it only reads.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import asyncpg
import asyncpg.pool

from service import observability
from service.metrics import BUFFER, QUERY_SECONDS
from service.sql import Query

if TYPE_CHECKING:
    Connection: TypeAlias = (
        asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection[asyncpg.Record]
    )
else:
    Connection = asyncpg.pool.PoolConnectionProxy | asyncpg.Connection

sql_log = logging.getLogger("rawpost.sql")


class Executor(Protocol):
    """What generated query functions run on: a Session, or Timed over one connection."""

    async def fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: Query, *args: Any) -> Any: ...
    async def execute(self, query: Query, *args: Any) -> str: ...


class Statements:
    """asyncpg's four statement methods, each sent through the subclass's `_run`."""

    __slots__ = ()

    async def _run(self, method: str, query: Query, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    async def fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", query, args)
        return rows

    async def fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def fetchval(self, query: Query, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: Query, *args: Any) -> str:
        status: str = await self._run("execute", query, args)
        return status


class Timed(Statements):
    """An Executor over one connection the caller holds (a transaction's, a background
    task's, an operator command's): each statement timed, counted and logged."""

    __slots__ = ("_conn", "_quiet", "_slow_ms")

    def __init__(
        self, conn: Connection, slow_ms: float = float("inf"), *, quiet: bool = False
    ) -> None:
        # quiet: no DEBUG line per statement (a poller's, many a second); slow ones still.
        self._conn, self._slow_ms, self._quiet = conn, slow_ms, quiet

    async def _run(self, method: str, query: Query, args: tuple[Any, ...]) -> Any:
        return await run(self._conn, method, query, args, self._slow_ms, quiet=self._quiet)


async def run(
    conn: Connection,
    method: str,
    query: Query,
    args: tuple[Any, ...],
    slow_ms: float,
    *,
    quiet: bool = False,
) -> Any:
    """conn.<method>(query's SQL, *args), timed into the query histogram and the log."""
    started = time.perf_counter()
    try:
        result = await getattr(conn, method)(query.sql, *args)
    finally:
        _observe(query.name, started)
    rows = result if method != "execute" else _tag_rows(result)
    _log(query.name, started, rows, slow_ms, quiet)
    return result


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


def _log(name: str, started: float, result: Any, slow_ms: float, quiet: bool) -> None:
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
    elif not quiet and sql_log.isEnabledFor(logging.DEBUG):
        # Parameter values are never logged.
        sql_log.debug(
            "query %s took %.2f ms (%d rows)",
            name,
            took_ms,
            rows,
            extra={"query": name, "duration_ms": round(took_ms, 2), "rows": rows},
        )
