"""Keyset cursors: rows inserted or deleted between page fetches never repeat or skip the
others; forged cursors and bad limits are 400; a cursor is base64url."""

from __future__ import annotations

import base64
import struct
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import DB, PASSWORD, Client, assert_problem, body_of, parse_ts
from tests.integration.pagination.listings import (
    BASE,
    BASE64URL,
    LISTINGS,
    LIVE_USERS,
    Seed,
    created_ats,
    ids_of,
    insert_posts,
    insert_users,
    listing,
    seed,
    sort_key,
    walk,
)


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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CORRUPT_CURSORS = [
    "not a cursor!",
    "%%%",
    "A",
    _b64(b"garbage"),
    _b64(b"{}"),
    _b64(b"[1, 2]"),
    "A" * 31,
    "A" * 33,
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


def test_a_made_up_cursor_of_the_right_shape_starts_the_page_after_its_position(
    client: Client, db: DB
) -> None:
    # 32 base64url characters: created_at in microseconds since 1970, then the id.
    insert_users(db, created_ats(3))
    everyone = body_of(client.get("/api/users", params={"limit": "100"}), 200)["items"]
    second = everyone[1]
    micros = (parse_ts(second["created_at"]) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    raw = struct.pack(">q16s", micros, uuid.UUID(second["id"]).bytes)
    cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert len(cursor) == 32
    page = body_of(client.get("/api/users", params={"cursor": cursor, "limit": "100"}), 200)
    assert [u["id"] for u in page["items"]] == [u["id"] for u in everyone[2:]]


def test_cursor_is_base64url(client: Client, db: DB) -> None:
    insert_users(db, created_ats(3))
    page = body_of(client.get("/api/users", params={"limit": "1"}), 200)
    cursor = page["next_cursor"]
    assert isinstance(cursor, str) and BASE64URL.match(cursor)
    base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
