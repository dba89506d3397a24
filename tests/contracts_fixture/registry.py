"""The SQL registry of the contracts fixture (tests/contracts_fixture/sql)."""

from __future__ import annotations

from pathlib import Path

from service.sql import Query, load_queries
from service.sql import query as service_query

SQL_DIR = Path(__file__).parent / "sql"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
QUERIES = load_queries(SQL_DIR)


def query(name: str, digest: str | None = None) -> Query:
    return service_query(name, digest, registry=QUERIES)
