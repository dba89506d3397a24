"""Every database failure classified once, by asyncpg's exception classes.

- retry: transient, and the statement certainly did not run (serialization failure,
  deadlock, too many connections, server starting up): anything may run again;
- lost: the connection broke mid-statement (server shut down or crashed, network): a
  read may run again, a write's outcome is unknown;
- unavailable: the database is away, overloaded or behind, not the client's fault (503),
  which includes the two above once their retries are spent;
- client: the request's values broke a rule (409, 422, 400);
- anything else is a bug (500).
"""

from __future__ import annotations

import asyncio
import enum

import asyncpg
import asyncpg.exceptions as pg

# Nothing was executed: even a write may run again.
NOT_EXECUTED: tuple[type[BaseException], ...] = (
    pg.SerializationError,  # 40001
    pg.DeadlockDetectedError,  # 40P01
    pg.TooManyConnectionsError,  # 53300
    pg.CannotConnectNowError,  # 57P03
)
# The connection is gone. InternalClientError: asyncpg's state machine on a connection
# the server just killed.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,  # class 08
    pg.AdminShutdownError,  # 57P01
    pg.CrashShutdownError,  # 57P02
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
)
# Away or overloaded for longer than the retries: a 503 with Retry-After.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    *NOT_EXECUTED,
    *CONNECTION_LOST,
    pg.QueryCanceledError,  # 57014: statement_timeout / command_timeout
    pg.LockNotAvailableError,  # 55P03: lock_timeout
    pg.InvalidCatalogNameError,  # 3D000: the database is not there (yet)
    asyncio.TimeoutError,
    TimeoutError,
)
# What a SQL file meets before its migration ran: the schema is behind the code.
SCHEMA_BEHIND: tuple[type[BaseException], ...] = (pg.UndefinedTableError, pg.UndefinedColumnError)


class Kind(enum.Enum):
    UNAVAILABLE = "unavailable"
    SCHEMA_BEHIND = "schema behind"
    CONFLICT = "conflict"  # unique violation
    UNPROCESSABLE = "unprocessable"  # foreign key violation
    BAD_VALUE = "bad value"  # class 22, e.g. a NUL byte in text
    BUG = "bug"


def classify(exc: BaseException) -> Kind:
    """What a failure means for the client."""
    if isinstance(exc, BaseExceptionGroup):
        kinds = {classify(e) for e in exc.exceptions}
        if len(kinds) == 1:
            return kinds.pop()
        return Kind.UNAVAILABLE if kinds <= {Kind.UNAVAILABLE, Kind.SCHEMA_BEHIND} else Kind.BUG
    if isinstance(exc, pg.UniqueViolationError):
        return Kind.CONFLICT
    if isinstance(exc, pg.ForeignKeyViolationError):
        return Kind.UNPROCESSABLE
    if isinstance(exc, pg.DataError):
        return Kind.BAD_VALUE
    if isinstance(exc, SCHEMA_BEHIND):
        return Kind.SCHEMA_BEHIND
    if isinstance(exc, UNAVAILABLE):
        return Kind.UNAVAILABLE
    return Kind.BUG


def is_unavailable(exc: BaseException) -> bool:
    """The database is away, overloaded or behind: the client may retry later."""
    return classify(exc) in (Kind.UNAVAILABLE, Kind.SCHEMA_BEHIND)


def transient_class(exc: BaseException) -> str | None:
    """For a failure worth retrying, its SQLSTATE class ('conn' for a driver-level loss);
    else None. A timeout is not retried: its time is spent."""
    if isinstance(exc, TimeoutError) or not isinstance(exc, NOT_EXECUTED + CONNECTION_LOST):
        return None
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2]
    return "conn"


def not_executed(exc: BaseException) -> bool:
    return isinstance(exc, NOT_EXECUTED)
