"""create_post requests that arrive together go to PostgreSQL as one INSERT and one commit
(service/posts/writes.py), and each still gets its own post, its own error and its own
response. Posts written in one transaction share `created_at` (PostgreSQL's now() is the
transaction's start): that is how these tests see, in the database, which were gathered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings, load_settings
from tests.helpers import (
    DB,
    SCRAPER,
    TEST_ENV,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    mint_token,
)


def window_settings(settings: Settings, window_ms: float) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={
            "database_url": settings.database_url,
            "pool_min_size": 1,
            "write_coalesce_ms": window_ms,
        },
    )


@pytest.fixture
def wide(settings: Settings, admin_token: str) -> Iterator[Client]:
    """The app with the widest window (100 ms), so that requests sent together are gathered."""
    with TestClient(app=create_app(window_settings(settings, 100))) as client:
        client.headers.update(bearer(admin_token))
        yield client


def together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Send every request at once (one thread each) and return the answers in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def post(client: Client, body: dict[str, Any], **headers: str) -> Callable[[], httpx.Response]:
    body = {"content": "", **body}
    return lambda: client.post("/api/posts", json=body, headers=headers)


def batch_sizes(client: Client) -> tuple[float, float]:
    """(batches, posts) from rawpost_write_batch_size, counted in this test process."""
    text = client.get("/metrics", headers=SCRAPER).text
    figures = {"count": 0.0, "sum": 0.0}
    for suffix in figures:
        prefix = f'rawpost_write_batch_size_{suffix}{{query="posts/insert_posts"}} '
        for line in text.splitlines():
            if line.startswith(prefix):
                figures[suffix] = float(line.rpartition(" ")[2])
    return figures["count"], figures["sum"]


def stored(db: DB, author_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT title, created_at FROM posts WHERE author_id = %s ORDER BY title", (author_id,)
    ).fetchall()


def test_posts_sent_together_share_one_commit_and_each_gets_its_own(wide: Client, db: DB) -> None:
    author = create_user(wide, "many@example.com")["id"]
    batches_before, sent_before = batch_sizes(wide)
    titles = [f"post {i}" for i in range(8)]
    answers = together([post(wide, {"author_id": author, "title": t}) for t in titles])
    posts = [body_of(a, 201) for a in answers]
    assert [p["title"] for p in posts] == titles  # each request its own post
    assert len({p["id"] for p in posts}) == 8
    for answer, p in zip(answers, posts, strict=True):
        assert answer.headers["location"] == f"/api/posts/{p['id']}"
        assert p["author"]["id"] == author
    rows = stored(db, author)
    assert [r[0] for r in rows] == titles
    # Gathered: far fewer commits than posts (one, unless a thread started late; one each
    # with coalescing off, the last test).
    commits = len({r[1] for r in rows})
    batches, sent = batch_sizes(wide)
    assert sent - sent_before == 8
    assert commits == batches - batches_before <= 4


def test_a_deleted_author_in_a_batch_gets_422_and_the_others_their_posts(
    wide: Client, db: DB
) -> None:
    live = create_user(wide, "live@example.com")["id"]
    gone = create_user(wide, "gone@example.com")["id"]
    assert wide.delete(f"/api/users/{gone}").status_code == 204
    calls = [post(wide, {"author_id": live, "title": f"live {i}"}) for i in range(3)]
    calls.insert(1, post(wide, {"author_id": gone, "title": "for a deleted author"}))
    answers = together(calls)
    assert [a.status_code for a in answers] == [201, 422, 201, 201]
    assert gone in assert_problem(answers[1], 422)["detail"]
    assert stored(db, gone) == []
    assert [r[0] for r in stored(db, live)] == ["live 0", "live 1", "live 2"]


def test_a_post_the_database_refuses_fails_alone(wide: Client, db: DB) -> None:
    # A rule of the database's own (a trigger) refuses one post of the batch: the whole
    # statement fails, so each post is written again alone and only that one is refused.
    db.execute(
        """
        CREATE FUNCTION refuse_post() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.title = 'refused' THEN
                RAISE EXCEPTION 'refused by a trigger' USING ERRCODE = '22023';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_post BEFORE INSERT ON posts
            FOR EACH ROW EXECUTE FUNCTION refuse_post();
        """
    )
    author = create_user(wide, "mixed@example.com")["id"]
    titles = ["kept 0", "refused", "kept 1", "kept 2"]
    answers = together([post(wide, {"author_id": author, "title": t}) for t in titles])
    assert [a.status_code for a in answers] == [201, 400, 201, 201]
    problem = assert_problem(answers[1], 400)
    assert "trigger" not in problem["detail"]  # no database text leaks
    assert [r[0] for r in stored(db, author)] == ["kept 0", "kept 1", "kept 2"]


def test_a_user_cannot_slip_a_post_for_another_into_a_batch(
    wide: Client, db: DB, db_url: str
) -> None:
    attacker = create_user(wide, "attacker@example.com")["id"]
    victim = create_user(wide, "victim@example.com")["id"]
    token = bearer(mint_token(attacker))
    calls = [post(wide, {"title": f"own {i}"}, **token) for i in range(3)]
    calls.append(post(wide, {"author_id": victim, "title": "in your name"}, **token))
    answers = together(calls)
    assert [a.status_code for a in answers] == [201, 201, 201, 403]
    assert stored(db, victim) == []
    assert [r[0] for r in stored(db, attacker)] == ["own 0", "own 1", "own 2"]


def test_a_batch_survives_terminated_connections(wide: Client, db: DB, db_url: str) -> None:
    author = create_user(wide, "survivor@example.com")["id"]
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    terminated = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name = 'rawpost'",
        (name,),
    ).fetchone()
    assert terminated is not None and int(str(terminated[0])) >= 1
    titles = [f"after {i}" for i in range(4)]
    answers = together([post(wide, {"author_id": author, "title": t}) for t in titles])
    assert [a.status_code for a in answers] == [201] * 4
    assert [r[0] for r in stored(db, author)] == titles


def test_with_coalescing_off_each_post_commits_alone(
    settings: Settings, admin_token: str, db: DB
) -> None:
    with TestClient(app=create_app(window_settings(settings, 0))) as client:
        client.headers.update(bearer(admin_token))
        author = create_user(client, "alone@example.com")["id"]
        answers = together([post(client, {"author_id": author, "title": f"{i}"}) for i in range(4)])
        assert [a.status_code for a in answers] == [201] * 4
    assert len({r[1] for r in stored(db, author)}) == 4
