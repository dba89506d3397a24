"""The migration history on real data: the original serial-id schema upgrades and rolls back."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from service import migrate
from service.resources import MIGRATIONS_DIR
from tests.helpers import migrate_to

ROWS = 5000


@pytest.fixture
def legacy_db(empty_db_url: str) -> str:
    """A database at the original schema (0001 only), holding ROWS users."""
    migrate_to(empty_db_url, "0001.baseline-users")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO users (email, name, created_at)
            SELECT 'user' || g || '@Example.com', 'User ' || g || ' ☃',
                   timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute 1 ms'
            FROM generate_series(1, %s) AS g
            """,
            (ROWS,),
        )
        conn.execute("DELETE FROM users WHERE id % 97 = 0")  # gaps in the old ids
    return empty_db_url


def _rollback_to(url: str, target: str) -> None:
    backend = get_backend(migrate.yoyo_url(url))
    try:
        migrations: Any = read_migrations(str(MIGRATIONS_DIR))
        ids = [m.id for m in migrations]
        newer = migrations[ids.index(target) + 1 :]
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(newer))
    finally:
        backend.connection.close()


def _snapshot(url: str, id_column: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT {id_column}, email, name, created_at FROM users ORDER BY {id_column}"
        ).fetchall()


def test_upgrade_from_the_original_schema_keeps_every_row_and_old_id(legacy_db: str) -> None:
    before = _snapshot(legacy_db, "id")
    assert len(before) > ROWS * 0.98

    migrate.apply(legacy_db, echo=lambda _: None)

    assert _snapshot(legacy_db, "legacy_id") == before
    with psycopg.connect(legacy_db) as conn:
        distinct_ids = conn.execute("SELECT count(DISTINCT id) FROM users").fetchone()
        assert distinct_ids == (len(before),)
        untouched = conn.execute(
            "SELECT count(*) FROM users WHERE updated_at = created_at AND deleted_at IS NULL"
        ).fetchone()
        assert untouched == (len(before),)


def test_rollback_of_the_upgrade_restores_the_integer_keyed_table(legacy_db: str) -> None:
    before = _snapshot(legacy_db, "id")
    migrate.apply(legacy_db, echo=lambda _: None)
    with psycopg.connect(legacy_db, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, name) VALUES ('new@x.io', 'Added after')")

    _rollback_to(legacy_db, "0001.baseline-users")

    after = _snapshot(legacy_db, "id")
    assert after[: len(before)] == before
    assert [row[1] for row in after[len(before) :]] == ["new@x.io"]
    assert after[-1][0] > before[-1][0], "a row added after the upgrade gets a fresh integer id"
    with psycopg.connect(legacy_db, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'users' ORDER BY ordinal_position"
        ).fetchall()
        assert columns == [
            ("id", "integer"),
            ("email", "text"),
            ("name", "text"),
            ("created_at", "timestamp with time zone"),
        ]
        # The original sequence still hands out ids after the newest one.
        conn.execute("INSERT INTO users (email, name) VALUES ('later@x.io', 'Later')")
        newest = conn.execute("SELECT max(id) FROM users").fetchone()
        assert newest is not None and newest[0] > after[-1][0]


def test_every_migration_rolls_back_and_forward_again(legacy_db: str) -> None:
    migrate.apply(legacy_db, echo=lambda _: None)
    before = _snapshot(legacy_db, "legacy_id")
    _rollback_to(legacy_db, "0001.baseline-users")
    migrate.apply(legacy_db, echo=lambda _: None)
    assert _snapshot(legacy_db, "legacy_id") == before
    assert migrate.pending(legacy_db) == []
