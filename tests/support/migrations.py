"""What the `rawpost migrate` tests share: the fixture migration folders, an `echo` that keeps
its lines, the schema fingerprint, and a database at the original deployment's schema."""

from __future__ import annotations

from pathlib import Path

import psycopg

from service import migrate
from service.migrate import bookkeeping

FIXTURES = Path(__file__).parents[1] / "migrate_fixture"


class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def schema_fingerprint(url: str) -> str:
    with psycopg.connect(url) as conn:
        return bookkeeping.fingerprint(conn)


def at_baseline_with_users(empty_db_url: str) -> str:
    """The original deployment: the baseline users table only, with 2,000 rows."""
    with migrate.backend_for(empty_db_url) as backend:
        backend.apply_migrations(backend.to_apply(migrate.load()[:1]))
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, name) SELECT 'u' || g || '@x.io', 'User ' || g"
            " FROM generate_series(1, 2000) AS g"
        )
    return empty_db_url
