"""Keyset pagination: each row once, newest first by (created_at, id), stable under inserts."""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import DB, PASSWORD, Client, assert_problem, body_of, parse_ts, without_admin

DEFAULT_LIMIT = 20
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


def assert_full_walk(pages: list[list[dict[str, Any]]], expected: list[str], limit: int) -> None:
    """All rows once, in order; every page but the last full; no trailing empty page."""
    items = [item for page in pages for item in page]
    got = [item["id"] for item in items]
    duplicates = [i for i, n in Counter(got).items() if n > 1]
    assert not duplicates, duplicates
    assert set(got) == set(expected), (set(expected) - set(got), set(got) - set(expected))
    assert got == expected
    assert [sort_key(i) for i in items] == sorted((sort_key(i) for i in items), reverse=True)
    assert len(pages) == max(1, math.ceil(len(expected) / limit))
    assert all(len(page) == limit for page in pages[:-1])


# --- a shared data set -------------------------------------------------------------------


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
# The `client` fixture signs in as an admin: one more live user, older than all others.
ADMIN_ROWS = 1
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


# --- walking every page ------------------------------------------------------------------


@pytest.mark.parametrize("name", LISTINGS)
def test_walking_all_pages_returns_every_visible_row_once_newest_first(
    client: Client, db: DB, name: str
) -> None:
    lst = listing(name, seed(client, db), db)
    assert len(lst.expected) > 7  # several pages at the smaller sizes
    for limit in (1, 2, 7, None, 100):
        pages = walk(client, lst.path, lst.params, limit)
        assert_full_walk(pages, lst.expected, limit or DEFAULT_LIMIT)


def test_limit_defaults_to_20(client: Client, db: DB) -> None:
    insert_users(db, created_ats(45))
    page = body_of(client.get("/api/users"), 200)
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None


def test_walking_users_with_more_rows_than_the_largest_page(client: Client, db: DB) -> None:
    insert_users(db, created_ats(230, tie=3))
    expected = ids_of(db, LIVE_USERS)
    for limit in (None, 1, 100):
        pages = walk(client, "/api/users", {}, limit)
        assert_full_walk(pages, expected, limit or DEFAULT_LIMIT)
        if limit == 100:
            assert [len(p) for p in pages] == [100, 100, 30 + ADMIN_ROWS]


def test_limit_100_returns_100_posts_in_one_page(client: Client, db: DB) -> None:
    author = body_of(
        client.post(
            "/api/users", json={"email": "a@example.com", "name": "A", "password": PASSWORD}
        ),
        201,
    )
    insert_posts(db, author["id"], created_ats(100), published=True)
    page = body_of(client.get("/api/posts", params={"limit": "100"}), 200)
    assert len(page["items"]) == 100
    assert page["next_cursor"] is None


def test_last_page_has_null_cursor_when_rows_fill_pages_exactly(client: Client, db: DB) -> None:
    insert_users(db, created_ats(40 - ADMIN_ROWS))
    for limit in (1, 5, 20):
        pages = walk(client, "/api/users", {}, limit)
        assert len(pages) == 40 // limit
        assert all(len(p) == limit for p in pages)


def test_single_partial_page_has_null_cursor(client: Client) -> None:
    for i in range(3):
        client.post(
            "/api/users", json={"email": f"u{i}@example.com", "name": "U", "password": PASSWORD}
        )
    page = body_of(client.get("/api/users", params={"limit": "5"}), 200)
    assert len(page["items"]) == 3 + ADMIN_ROWS
    assert page["next_cursor"] is None


def test_rows_with_identical_created_at_are_ordered_by_id_descending(
    client: Client, db: DB
) -> None:
    ids = insert_users(db, [BASE] * 12)
    pages = walk(client, "/api/users", {}, 5)
    got = [item["id"] for page in pages for item in without_admin(page)]
    assert got == sorted(ids, key=uuid.UUID, reverse=True)
    assert [len(p) for p in pages] == [5, 5, 2 + ADMIN_ROWS]


def test_posts_with_identical_created_at_are_ordered_by_id_descending_on_every_post_list(
    client: Client, db: DB
) -> None:
    author = body_of(
        client.post(
            "/api/users", json={"email": "t@example.com", "name": "T", "password": PASSWORD}
        ),
        201,
    )
    ids = insert_posts(db, author["id"], [BASE] * 9, published=True)
    expected = sorted(ids, key=uuid.UUID, reverse=True)
    for path, params in [
        ("/api/posts", {}),
        ("/api/posts", {"published": "true"}),
        ("/api/posts", {"author_id": author["id"]}),
        (f"/api/users/{author['id']}/posts", {}),
    ]:
        pages = walk(client, path, params, 2)
        assert [item["id"] for page in pages for item in page] == expected, path


def test_users_made_over_http_page_newest_first(client: Client) -> None:
    made = [
        body_of(
            client.post(
                "/api/users", json={"email": f"h{i}@example.com", "name": "H", "password": PASSWORD}
            ),
            201,
        )
        for i in range(5)
    ]
    pages = walk(client, "/api/users", {}, 2)
    assert [item for page in pages for item in without_admin(page)] == list(reversed(made))


def test_email_filter_is_one_page_with_null_cursor(client: Client, db: DB) -> None:
    insert_users(db, created_ats(25))
    page = body_of(
        client.get("/api/users", params={"email": "BULK-7@example.com", "limit": "1"}), 200
    )
    assert [u["email"] for u in page["items"]] == ["bulk-7@example.com"]
    assert page["next_cursor"] is None


# --- inserts while paging ----------------------------------------------------------------


def insert_during_walk(client: Client, db: DB, name: str, s: Seed, tied_with: datetime) -> None:
    """New rows: one newest over HTTP, one tied with the page's last row, one oldest of all."""
    oldest = BASE - timedelta(days=365)
    if name == "users":
        n = uuid.uuid4().hex[:8]
        body_of(
            client.post(
                "/api/users",
                json={"email": f"new{n}@example.com", "name": "N", "password": PASSWORD},
            ),
            201,
        )
        insert_users(db, [tied_with, tied_with, oldest], prefix=f"mid{n}")
        return
    author = s.bob if "published=true" in name and "author_id" in name else s.ada
    for published in (True, False):
        data = {"author_id": author, "title": "new", "content": "", "published": published}
        body_of(client.post("/api/posts", json=data), 201)
        insert_posts(db, author, [tied_with, tied_with, oldest], published=published)


@pytest.mark.parametrize("name", LISTINGS)
def test_rows_inserted_between_page_fetches_never_repeat_or_skip_existing_rows(
    client: Client, db: DB, name: str
) -> None:
    s = seed(client, db)
    for limit in (1, 4):
        lst = listing(name, s, db)  # the rows that exist at the start of this walk
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            query = {**lst.params, "limit": str(limit)}
            if cursor is not None:
                query["cursor"] = cursor
            page = body_of(client.get(lst.path, params=query), 200)
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Insert during the first pages only: rows tied with the cursor can land on the
            # next page, and feeding ties from those would never let a limit=1 walk finish.
            if len(seen) <= 12:
                last = parse_ts(page["items"][-1]["created_at"])
                insert_during_walk(client, db, name, s, last)
        assert cursor is None
        got = [item["id"] for item in seen]
        duplicates = [i for i, n in Counter(got).items() if n > 1]
        assert not duplicates, (limit, duplicates)
        existing = set(lst.expected)
        assert [i for i in got if i in existing] == lst.expected, limit
        # The walk never goes backwards, whatever was inserted meanwhile.
        keys = [sort_key(i) for i in seen]
        assert keys == sorted(keys, reverse=True), limit


def test_rows_deleted_between_page_fetches_do_not_disturb_the_rest(client: Client, db: DB) -> None:
    insert_users(db, created_ats(20, tie=2))
    expected = ids_of(db, LIVE_USERS)
    first = body_of(client.get("/api/users", params={"limit": "5"}), 200)
    # Delete the cursor row itself and a row on the next page.
    for victim in (first["items"][-1]["id"], expected[6]):
        assert client.delete(f"/api/users/{victim}").status_code == 204
    rest = walk(client, "/api/users", {"cursor": first["next_cursor"]}, 5)
    got = [i["id"] for i in first["items"]] + [i["id"] for p in rest for i in p]
    assert got == [i for i in expected if i != expected[6]]


# --- cursor and limit are checked --------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CORRUPT_CURSORS = [
    "not a cursor!",
    "%%%",
    "A",
    _b64(b"garbage"),
    _b64(b"{}"),
    _b64(b"[1, 2]"),
    _b64(b'["2025-01-01T00:00:00Z"]'),
    _b64(b'["yesterday", "00000000-0000-4000-8000-000000000000"]'),
    _b64(b'["2025-01-01T00:00:00Z", "not-a-uuid"]'),
    _b64(b'["2025-01-01T00:00:00", "00000000-0000-4000-8000-000000000000"]'),
]
PAGED_PATHS = ["/api/users", "/api/posts", "/api/users/{id}/posts"]


@pytest.mark.parametrize("path", PAGED_PATHS)
def test_forged_or_corrupt_cursor_is_400(client: Client, path: str) -> None:
    user = body_of(
        client.post(
            "/api/users", json={"email": "c@example.com", "name": "C", "password": PASSWORD}
        ),
        201,
    )
    for cursor in CORRUPT_CURSORS:
        response = client.get(path.format(id=user["id"]), params={"cursor": cursor})
        assert_problem(response, 400)


@pytest.mark.parametrize("path", PAGED_PATHS)
def test_limit_outside_1_to_100_or_not_an_integer_is_400(client: Client, path: str) -> None:
    user = body_of(
        client.post(
            "/api/users", json={"email": "l@example.com", "name": "L", "password": PASSWORD}
        ),
        201,
    )
    for limit in ("0", "101", "-1", "ten", "1.5"):
        response = client.get(path.format(id=user["id"]), params={"limit": limit})
        assert_problem(response, 400)


def test_cursor_is_base64url(client: Client, db: DB) -> None:
    insert_users(db, created_ats(3))
    page = body_of(client.get("/api/users", params={"limit": "1"}), 200)
    cursor = page["next_cursor"]
    assert isinstance(cursor, str) and BASE64URL.match(cursor)
    base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
