"""service.db.failures: every database failure classified once, by asyncpg's classes."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions as pg
import pytest

from service.db import failures
from service.db.failures import Kind
from service.errors import (
    BadRequestError,
    ConflictError,
    DomainError,
    UnavailableError,
    UnprocessableError,
    from_database,
)


def _pg(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("message from the server")


@pytest.mark.parametrize(
    ("error", "kind", "domain"),
    [
        (_pg(pg.UniqueViolationError), Kind.CONFLICT, ConflictError),
        (_pg(pg.ForeignKeyViolationError), Kind.UNPROCESSABLE, UnprocessableError),
        (_pg(pg.CharacterNotInRepertoireError), Kind.BAD_VALUE, BadRequestError),  # 22021
        (_pg(pg.UndefinedTableError), Kind.SCHEMA_BEHIND, UnavailableError),
        (_pg(pg.UndefinedColumnError), Kind.SCHEMA_BEHIND, UnavailableError),
        (_pg(pg.SerializationError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.DeadlockDetectedError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.TooManyConnectionsError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.CannotConnectNowError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.AdminShutdownError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.ConnectionDoesNotExistError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.QueryCanceledError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.LockNotAvailableError), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.InvalidCatalogNameError), Kind.UNAVAILABLE, UnavailableError),
        (asyncpg.InterfaceError("connection is closed"), Kind.UNAVAILABLE, UnavailableError),
        (ConnectionResetError(), Kind.UNAVAILABLE, UnavailableError),
        (TimeoutError(), Kind.UNAVAILABLE, UnavailableError),
        (_pg(pg.SyntaxOrAccessError), Kind.BUG, DomainError),
        (ValueError("a bug"), Kind.BUG, DomainError),
    ],
)
def test_each_failure_has_one_kind_and_one_domain_error(
    error: BaseException, kind: Kind, domain: type[DomainError]
) -> None:
    assert failures.classify(error) is kind
    mapped = from_database(error)
    assert type(mapped) is domain
    assert "message from the server" not in mapped.detail  # the driver's text never leaks


def test_a_statement_is_retried_only_when_it_certainly_did_not_run_or_the_connection_broke() -> (
    None
):
    assert failures.transient_class(_pg(pg.SerializationError)) == "40"
    assert failures.transient_class(_pg(pg.TooManyConnectionsError)) == "53"
    assert failures.transient_class(_pg(pg.ConnectionFailureError)) == "08"
    assert failures.transient_class(asyncpg.InterfaceError("closed")) == "conn"
    assert failures.not_executed(_pg(pg.DeadlockDetectedError))
    assert not failures.not_executed(_pg(pg.AdminShutdownError))  # it may have run
    # A timeout has spent its time; a client error or a bug is not transient.
    for error in (TimeoutError(), _pg(pg.QueryCanceledError), _pg(pg.UniqueViolationError)):
        assert failures.transient_class(error) is None


def test_a_group_of_failures_is_unavailable_only_if_every_member_is() -> None:
    outage = ExceptionGroup("x", [TimeoutError(), _pg(pg.UndefinedTableError)])
    assert failures.is_unavailable(outage)
    mixed = ExceptionGroup("x", [TimeoutError(), ValueError("a bug")])
    assert failures.classify(mixed) is Kind.BUG
