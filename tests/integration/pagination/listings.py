"""A shared data set for the pagination tests: rows with chosen created_at values, and
every listing with the ids it must return in order."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import DB, PASSWORD, Client, body_of, parse_ts

BASE64URL = re.compile(r"^[A-Za-z0-9_-]+=*$")

BASE = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def sort_key(item: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    return parse_ts(item["created_at"]), uuid.UUID(item["id"])


def created_ats(count: int, *, start: datetime = BASE, tie: int = 1) -> list[datetime]:
    """`count` timestamps going back in time; each run of `tie` rows shares one value.

    The first few runs differ by a single microsecond so a cursor that loses precision
    skips or repeats rows.
    """
    out = []
    for i in range(count):
        step = i // tie
        offset = timedelta(microseconds=step) if step < 6 else timedelta(seconds=step)
        out.append(start - offset)
    return out


def insert_users(db: DB, stamps: list[datetime], *, prefix: str = "bulk") -> list[str]:
    rows = db.execute(
        """
        INSERT INTO users (email, name, created_at, updated_at)
        SELECT %s || '-' || t.n || '@example.com', 'User ' || t.n, t.at, t.at
        FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS t(at, n)
        RETURNING id
        """,
        (prefix, stamps),
    ).fetchall()
    return [str(row[0]) for row in rows]


def insert_posts(
    db: DB, author_id: str, stamps: list[datetime], *, published: bool | None = None
) -> list[str]:
    """Posts with explicit created_at; published alternates unless given."""
    rows = db.execute(
        """
        INSERT INTO posts (author_id, title, content, published, created_at, updated_at)
        SELECT %s, 'post ' || t.n, '', COALESCE(%s, t.n %% 2 = 0), t.at, t.at
        FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS t(at, n)
        RETURNING id
        """,
        (author_id, published, stamps),
    ).fetchall()
    return [str(row[0]) for row in rows]


def ids_of(db: DB, query: str, *params: object) -> list[str]:
    return [str(row[0]) for row in db.execute(query, params).fetchall()]


def walk(
    client: Client, path: str, params: dict[str, str], limit: int | None
) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = dict(params)
        if limit is not None:
            query["limit"] = str(limit)
        if cursor is not None:
            query["cursor"] = cursor
        page = body_of(client.get(path, params=query), 200)
        assert set(page) == {"items", "next_cursor"}
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and BASE64URL.match(cursor), cursor
        assert len(pages) < 1000, "pagination does not terminate"


@dataclass
class Seed:
    ada: str
    bob: str


def seed(client: Client, db: DB) -> Seed:
    """Users and posts with ties, microsecond steps, deleted rows, and rows made over HTTP."""
    insert_users(db, created_ats(30, tie=4))
    gone = insert_users(
        db, created_ats(5, tie=2, start=BASE - timedelta(microseconds=2)), prefix="x"
    )
    db.execute("UPDATE users SET deleted_at = now() WHERE id = ANY(%s::uuid[])", (gone,))

    ada = body_of(
        client.post(
            "/api/users", json={"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
        ),
        201,
    )
    bob = body_of(
        client.post(
            "/api/users", json={"email": "bob@example.com", "name": "Bob", "password": PASSWORD}
        ),
        201,
    )

    ada_posts = insert_posts(db, ada["id"], created_ats(33, tie=3))
    insert_posts(db, bob["id"], created_ats(20, tie=5, start=BASE - timedelta(microseconds=1)))
    insert_posts(db, gone[0], created_ats(8, tie=2))  # invisible: author deleted
    db.execute("UPDATE posts SET deleted_at = now() WHERE id = ANY(%s::uuid[])", (ada_posts[::7],))
    for i in range(3):
        data = {"author_id": ada["id"], "title": f"http {i}", "content": "", "published": i == 1}
        body_of(client.post("/api/posts", json=data), 201)
        data["author_id"] = bob["id"]
        body_of(client.post("/api/posts", json=data), 201)
    return Seed(ada=ada["id"], bob=bob["id"])


VISIBLE_POSTS = """
    SELECT p.id FROM posts AS p JOIN users AS u ON u.id = p.author_id
    WHERE p.deleted_at IS NULL AND u.deleted_at IS NULL {extra}
    ORDER BY p.created_at DESC, p.id DESC
"""

LIVE_USERS = "SELECT id FROM users WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC"


@dataclass
class Listing:
    path: str
    params: dict[str, str]
    expected: list[str]


def listing(name: str, s: Seed, db: DB) -> Listing:
    if name == "users":
        return Listing("/api/users", {}, ids_of(db, LIVE_USERS))
    # v2: /api/posts lists published posts only, whoever asks (the client is an admin).
    if name == "posts":
        sql = VISIBLE_POSTS.format(extra="AND p.published")
        return Listing("/api/posts", {}, ids_of(db, sql))
    if name == "posts?published=true":
        sql = VISIBLE_POSTS.format(extra="AND p.published")
        return Listing("/api/posts", {"published": "true"}, ids_of(db, sql))
    if name == "users/{id}/posts?published=false":
        # Drafts are listed only here (to their author and admins; the client is an admin).
        sql = VISIBLE_POSTS.format(extra="AND p.author_id = %s AND NOT p.published")
        return Listing(f"/api/users/{s.ada}/posts", {"published": "false"}, ids_of(db, sql, s.ada))
    if name == "posts?author_id":
        sql = VISIBLE_POSTS.format(extra="AND p.author_id = %s AND p.published")
        return Listing("/api/posts", {"author_id": s.ada}, ids_of(db, sql, s.ada))
    if name == "posts?author_id&published=true":
        sql = VISIBLE_POSTS.format(extra="AND p.author_id = %s AND p.published")
        params = {"author_id": s.bob, "published": "true"}
        return Listing("/api/posts", params, ids_of(db, sql, s.bob))
    if name == "users/{id}/posts":
        sql = VISIBLE_POSTS.format(extra="AND p.author_id = %s")
        return Listing(f"/api/users/{s.ada}/posts", {}, ids_of(db, sql, s.ada))
    raise AssertionError(name)


LISTINGS = [
    "users",
    "posts",
    "posts?published=true",
    "users/{id}/posts?published=false",
    "posts?author_id",
    "posts?author_id&published=true",
    "users/{id}/posts",
]
