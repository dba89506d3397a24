"""One SQL statement per request path, whatever the page size (no N+1)."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from service.config import Settings
from service.db.pool import create_pool
from service.sql import QUERIES


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The statements each route runs on the database path: the read cache off (it
    would answer the warm-up's repeat from memory)."""
    return msgspec.structs.replace(settings, cache=False)


def _seed(db: psycopg.Connection[tuple[object, ...]], users: int, posts_each: int) -> str:
    row = db.execute(
        """
        WITH u AS (
            INSERT INTO users (email, name)
            SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, %s) AS g
            RETURNING id
        )
        INSERT INTO posts (author_id, title, content, published, created_at)
        SELECT u.id, 'title', 'content', true, now() - (g || ' minutes')::interval
        FROM u, generate_series(1, %s) AS g
        RETURNING author_id
        """,
        (users, posts_each),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _statements_for(client: TestClient, caplog: pytest.LogCaptureFixture, url: str) -> list[str]:  # type: ignore[type-arg]
    client.get(url)  # warm up: first use of a statement may prepare it
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="rawpost.sql"):
        response = client.get(url)
    assert response.status_code == 200, response.text
    return [getattr(r, "query", "?") for r in caplog.records if r.name == "rawpost.sql"]


def _named(statements: list[str]) -> list[str]:
    # "<internal>" is asyncpg's connection reset when the pool takes the connection back.
    return [s for s in statements if s != "<internal>"]


@pytest.mark.parametrize(
    "path",
    ["/api/posts?limit={n}", "/api/users?limit={n}", "/api/users/{author}/posts?limit={n}"],
)
def test_list_routes_run_one_statement_whatever_the_page_size(
    client: TestClient,  # type: ignore[type-arg]
    db: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    author = _seed(db, users=30, posts_each=40)
    seen = {
        n: _statements_for(client, caplog, path.format(n=n, author=author)) for n in (1, 20, 100)
    }
    assert seen[1] == seen[20] == seen[100], seen
    assert len(_named(seen[100])) == 1, seen


def test_include_posts_and_single_post_run_one_statement(
    client: TestClient,  # type: ignore[type-arg]
    db: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    author = _seed(db, users=1, posts_each=40)
    row = db.execute("SELECT id FROM posts LIMIT 1").fetchone()
    assert row is not None
    with_posts = _statements_for(client, caplog, f"/api/users/{author}?include=posts")
    assert _named(with_posts) == ["users/get_user_with_posts"]
    assert _named(_statements_for(client, caplog, f"/api/posts/{row[0]}")) == ["posts/get_post"]


def test_pooled_connections_reuse_one_generic_plan_per_statement(settings: Settings) -> None:
    """Prepared once, planned once: no per-run planning of `LIMIT $n` pages."""

    async def plans() -> tuple[int, int]:
        pool = await create_pool(settings, {})
        try:
            async with pool.acquire() as conn:
                sql = QUERIES["posts/list_posts"].sql
                for limit in (2, 21, 101, 21, 2, 101, 21):
                    await conn.fetch(sql, None, None, None, limit)
                row = await conn.fetchrow(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE statement = $1",
                    sql,
                )
                assert row is not None
                return int(row["generic_plans"]), int(row["custom_plans"])
        finally:
            await pool.close()

    generic, custom = asyncio.run(plans())
    assert (generic, custom) == (7, 0)
