"""create_post requests that arrive together go to PostgreSQL as one INSERT and one commit
(service/posts/writes.py), and each still gets its own post, its own error and its own
response. Posts written in one transaction share `created_at` (PostgreSQL's now() is the
transaction's start): that is how these tests see, in the database, which were gathered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings, load_settings
from service.db import failures
from service.errors import UnprocessableError
from service.posts.repository import NewPost
from service.posts.schemas import Post
from service.posts.writes import PostWrites
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
    wait_until,
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


def in_one_batch(client: Client, news: list[NewPost]) -> list[Post | BaseException]:
    """The worker's PostWrites given `news` in one turn of its event loop: one batch for
    certain (the HTTP tests above depend on threads arriving within the window)."""
    writes: PostWrites = client.app.state.post_writes

    async def submit() -> list[Post | BaseException]:
        return await asyncio.gather(*(writes.create(n) for n in news), return_exceptions=True)

    before, _ = batch_sizes(client)
    results: list[Post | BaseException] = client.blocking_portal.call(submit)
    assert batch_sizes(client)[0] - before == 1  # one statement for all of them
    return results


def new(author: str, title: str) -> NewPost:
    return NewPost(uuid.UUID(author), title, "", True)


def test_a_deleted_author_in_a_batch_gets_422_and_the_others_their_posts(
    wide: Client, db: DB
) -> None:
    live = create_user(wide, "live@example.com")["id"]
    gone = create_user(wide, "gone@example.com")["id"]
    assert wide.delete(f"/api/users/{gone}").status_code == 204
    news = [new(live, "live 0"), new(gone, "for a deleted author"), new(live, "live 1")]
    results = in_one_batch(wide, news)
    assert isinstance(results[0], Post) and isinstance(results[2], Post)
    assert isinstance(results[1], UnprocessableError)
    assert gone in str(results[1])
    assert stored(db, gone) == []
    assert [r[0] for r in stored(db, live)] == ["live 0", "live 1"]
    # Over HTTP, the same 422 problem.
    answer = wide.post("/api/posts", json={"author_id": gone, "title": "t", "content": ""})
    assert gone in assert_problem(answer, 422)["detail"]


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
    results = in_one_batch(wide, [new(author, t) for t in titles])
    assert [type(r).__name__ for r in results] == [
        "Post",
        "InvalidParameterValueError",
        "Post",
        "Post",
    ]
    assert [r[0] for r in stored(db, author)] == ["kept 0", "kept 1", "kept 2"]
    # Over HTTP: a 400 that shows nothing of the database's message.
    answer = wide.post("/api/posts", json={"author_id": author, "title": "refused", "content": ""})
    assert "trigger" not in assert_problem(answer, 400)["detail"]


def test_an_author_being_changed_holds_up_only_its_own_post(wide: Client, db_url: str) -> None:
    busy = create_user(wide, "busy@example.com")["id"]
    free = create_user(wide, "free@example.com")["id"]
    news = [new(free, "free 0"), new(busy, "waits"), new(free, "free 1")]
    writes: PostWrites = wide.app.state.post_writes
    tasks: list[asyncio.Task[Post]] = []

    async def submit() -> bool:
        """True when the free author's requests are answered while the busy one's waits."""
        tasks.extend(asyncio.ensure_future(writes.create(n)) for n in news)
        done, _ = await asyncio.wait([tasks[0], tasks[2]], timeout=10)
        return len(done) == 2 and not tasks[1].done()

    async def finish() -> list[Post]:
        return list(await asyncio.wait_for(asyncio.gather(*tasks), 10))

    with psycopg.connect(db_url) as holder, psycopg.connect(db_url, autocommit=True) as db:
        # A change to the busy author in progress: its row is locked until we commit.
        holder.execute("UPDATE users SET name = 'Busy' WHERE id = %s", (busy,))
        before, _ = batch_sizes(wide)
        assert wide.blocking_portal.call(submit)
        assert batch_sizes(wide)[0] - before == 1  # the three went as one batch
        assert [r[0] for r in stored(db, free)] == ["free 0", "free 1"]
        assert stored(db, busy) == []
        holder.commit()
        posts = wide.blocking_portal.call(finish)
    assert [p.title for p in posts] == ["free 0", "waits", "free 1"]
    assert posts[1].author.name == "Busy"


def test_a_connection_lost_mid_batch_fails_every_post_of_it_and_writes_none(
    wide: Client, db: DB, db_url: str
) -> None:
    # A slow trigger keeps the batch's statement running while its backend is terminated:
    # the outcome of such a write is unknown, so it is not replayed (503 for each).
    db.execute(
        """
        CREATE FUNCTION slow_post() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_sleep(0.5);
            RETURN NEW;
        END $$;
        CREATE TRIGGER slow_post BEFORE INSERT ON posts
            FOR EACH ROW EXECUTE FUNCTION slow_post();
        """
    )
    author = create_user(wide, "cut@example.com")["id"]
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]

    def batch_backend() -> int | None:
        row = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND query LIKE '%%insert_posts%%' AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
        return None if row is None else int(str(row[0]))

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(in_one_batch, wide, [new(author, f"cut {i}") for i in range(3)])
        wait_until(lambda: batch_backend() is not None, timeout=10, what="the batch running")
        db.execute("SELECT pg_terminate_backend(%s, 5000)", (batch_backend(),))
        results = pending.result(timeout=10)
    assert all(isinstance(r, Exception) and failures.is_unavailable(r) for r in results), results
    assert stored(db, author) == []


def test_a_user_cannot_slip_a_post_for_another_into_a_batch(wide: Client, db: DB) -> None:
    attacker = create_user(wide, "attacker@example.com")["id"]
    victim = create_user(wide, "victim@example.com")["id"]
    token = bearer(mint_token(attacker))
    calls = [post(wide, {"title": f"own {i}"}, **token) for i in range(3)]
    calls.append(post(wide, {"author_id": victim, "title": "in your name"}, **token))
    answers = together(calls)
    assert [a.status_code for a in answers] == [201, 201, 201, 403]
    assert stored(db, victim) == []
    assert [r[0] for r in stored(db, attacker)] == ["own 0", "own 1", "own 2"]


def test_a_batch_after_the_pools_connections_were_terminated_runs_on_fresh_ones(
    wide: Client, db: DB, db_url: str
) -> None:
    author = create_user(wide, "survivor@example.com")["id"]
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    terminated = db.execute(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name = 'rawpost'",
        (name,),
    ).fetchone()
    assert terminated is not None and int(str(terminated[0])) >= 1
    results = in_one_batch(wide, [new(author, f"after {i}") for i in range(4)])
    assert all(isinstance(r, Post) for r in results), results
    assert [r[0] for r in stored(db, author)] == [f"after {i}" for i in range(4)]


def test_with_coalescing_off_each_post_commits_alone(
    settings: Settings, admin_token: str, db: DB
) -> None:
    with TestClient(app=create_app(window_settings(settings, 0))) as client:
        client.headers.update(bearer(admin_token))
        author = create_user(client, "alone@example.com")["id"]
        answers = together([post(client, {"author_id": author, "title": f"{i}"}) for i in range(4)])
        assert [a.status_code for a in answers] == [201] * 4
    assert len({r[1] for r in stored(db, author)}) == 4
