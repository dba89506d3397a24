"""Every SQL file prepares against the migrated schema, and a start lists every file that
does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from service import migrate
from service.app import verify_sql
from service.config import load_settings
from service.db.pool import create_pool
from service.sql import QUERIES, SqlFileError, load_queries
from tests.helpers import TEST_ENV


def test_every_sql_file_prepares_against_the_migrated_schema(db_url: str) -> None:
    async def prepare_all() -> dict[str, int]:
        conn = await asyncpg.connect(db_url)
        try:
            counts = {}
            for q in QUERIES.values():
                statement = await conn.prepare(q.sql)
                counts[q.name] = len(statement.get_parameters())
            return counts
        finally:
            await conn.close()

    counts = asyncio.run(prepare_all())
    assert counts == {q.name: len(q.params) for q in QUERIES.values()}


def test_start_fails_listing_every_sql_file_that_does_not_prepare(
    db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "get_nothing.sql").write_text("SELECT no_such_column FROM users")
    (tmp_path / "users" / "list_ghosts.sql").write_text("SELECT id FROM ghosts")
    (tmp_path / "users" / "get_user.sql").write_text("SELECT u.id FROM users AS u")
    broken = load_queries(tmp_path)
    settings = load_settings(environ=TEST_ENV, overrides={"database_url": db_url})

    async def start() -> None:
        pool = await create_pool(settings)
        try:
            await verify_sql(pool, tuple(migrate.migration_ids()), broken)
        finally:
            await pool.close()

    with pytest.raises(SqlFileError) as caught:
        asyncio.run(start())
    message = str(caught.value)
    assert f'{tmp_path / "users" / "get_nothing.sql"}: column "no_such_column"' in message
    assert f'{tmp_path / "users" / "list_ghosts.sql"}: relation "ghosts"' in message
    assert "get_user.sql" not in message
