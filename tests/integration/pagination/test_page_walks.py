"""Walking every page of every listing returns each visible row once, newest first, with
ties broken by id and a null cursor on the last page."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.helpers import DB, PASSWORD, Client, body_of, without_admin
from tests.integration.pagination.listings import (
    BASE,
    LISTINGS,
    LIVE_USERS,
    created_ats,
    ids_of,
    insert_posts,
    insert_users,
    listing,
    seed,
    sort_key,
    walk,
)

DEFAULT_LIMIT = 20


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


# The `client` fixture signs in as an admin: one more live user, older than all others.
ADMIN_ROWS = 1


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
