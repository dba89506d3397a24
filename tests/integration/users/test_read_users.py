"""GET /api/users/{id} (with and without its posts) and GET /api/users (newest first, the email
filter); 404s for unknown ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import (
    DB,
    UNKNOWN_ID,
    Client,
    assert_problem,
    body_of,
    create_post,
    create_user,
    without_admin,
)
from tests.integration.users.shapes import (
    USER_ID_ROUTES,
    USER_KEYS,
    assert_user_shape,
    assert_wire_shape,
)

POST_KEYS = {"id", "author_id", "title", "content", "published", "created_at", "updated_at"}


def insert_posts(db: DB, author_id: str, created_ats: list[datetime]) -> list[str]:
    """Posts with explicit created_at values, straight into the database; ids in input order."""
    rows = db.execute(
        """
        INSERT INTO posts (author_id, title, content, published, created_at, updated_at)
        SELECT %s, 'post ' || t.n, 'body', t.n %% 2 = 0, t.at, t.at
        FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS t(at, n)
        ORDER BY t.n
        RETURNING id
        """,
        (author_id, created_ats),
    ).fetchall()
    return [str(row[0]) for row in rows]


def test_get_user_returns_the_live_user(client: Client) -> None:
    user = create_user(client, "get@example.com", name="Getter")
    got = body_of(client.get(f"/api/users/{user['id']}"), 200)
    assert_user_shape(got)
    assert got == user


def test_get_user_accepts_uppercase_uuid_and_answers_lowercase(client: Client) -> None:
    user = create_user(client, "upper@example.com")
    got = body_of(client.get(f"/api/users/{user['id'].upper()}"), 200)
    assert got["id"] == user["id"]


def test_get_user_without_include_has_no_posts_key(client: Client) -> None:
    user = create_user(client, "noposts@example.com")
    create_post(client, user["id"])
    got = body_of(client.get(f"/api/users/{user['id']}"), 200)
    assert "posts" not in got


def test_get_user_include_posts_embeds_the_20_newest_live_posts_newest_first(
    client: Client, db: DB
) -> None:
    user = create_user(client, "many@example.com", name="Prolific")
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    ids = insert_posts(db, user["id"], [base + timedelta(minutes=i) for i in range(25)])
    # The two newest posts are deleted: they must not take up slots in the 20.
    for post_id in ids[-2:]:
        assert client.delete(f"/api/posts/{post_id}").status_code == 204
    other = create_user(client, "other@example.com")
    insert_posts(db, other["id"], [base + timedelta(hours=1)])

    got = body_of(client.get(f"/api/users/{user['id']}", params={"include": "posts"}), 200)
    assert set(got) == USER_KEYS | {"posts"}
    assert {k: got[k] for k in USER_KEYS} == user
    expected = list(reversed(ids[:-2]))[:20]
    assert [p["id"] for p in got["posts"]] == expected
    for post in got["posts"]:
        assert set(post) == POST_KEYS | {"author"}
        assert post["author"] == {"id": user["id"], "name": "Prolific"}
        assert post["author_id"] == user["id"]
        assert post == body_of(client.get(f"/api/posts/{post['id']}"), 200)
    assert_wire_shape(got)


def test_get_user_include_posts_orders_posts_with_equal_created_at_by_id_descending(
    client: Client, db: DB
) -> None:
    user = create_user(client, "ties@example.com")
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    ids = insert_posts(db, user["id"], [at] * 6)
    got = body_of(client.get(f"/api/users/{user['id']}", params={"include": "posts"}), 200)
    assert [p["id"] for p in got["posts"]] == sorted(ids, key=uuid.UUID, reverse=True)


def test_get_user_include_posts_lists_posts_created_through_the_api(client: Client) -> None:
    user = create_user(client, "api@example.com", name="Api")
    first = create_post(client, user["id"], title="first")
    second = create_post(client, user["id"], title="second")
    got = body_of(client.get(f"/api/users/{user['id']}?include=posts"), 200)
    assert got["posts"] == [second, first]


def test_get_user_include_posts_is_an_empty_list_for_a_user_without_posts(
    client: Client,
) -> None:
    user = create_user(client, "empty@example.com")
    other = create_user(client, "busy@example.com")
    create_post(client, other["id"])
    got = body_of(client.get(f"/api/users/{user['id']}?include=posts"), 200)
    assert got["posts"] == []


def test_list_users_on_an_empty_database_is_an_empty_last_page(client: Client) -> None:
    page = body_of(client.get("/api/users"), 200)
    # The fixture's admin is the only user.
    assert {**page, "items": without_admin(page["items"])} == {"items": [], "next_cursor": None}


def test_list_users_returns_live_users_newest_first(client: Client) -> None:
    users = [create_user(client, f"list{i}@example.com", name=f"U{i}") for i in range(4)]
    deleted = create_user(client, "gone@example.com")
    assert client.delete(f"/api/users/{deleted['id']}").status_code == 204
    page = body_of(client.get("/api/users"), 200)
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    assert without_admin(page["items"]) == list(reversed(users))
    for item in page["items"]:
        assert_user_shape(item)


def test_list_users_email_filter_matches_exactly_ignoring_case(client: Client) -> None:
    ada = create_user(client, "Ada@X.io", name="Ada")
    create_user(client, "ada@x.io.uk")
    create_user(client, "xada@x.io")
    create_user(client, "ada@x.i")
    for query in ("ada@x.io", "ADA@X.IO", "Ada@X.io"):
        page = body_of(client.get("/api/users", params={"email": query}), 200)
        assert page == {"items": [ada], "next_cursor": None}, query


def test_list_users_email_filter_without_match_is_an_empty_page(client: Client) -> None:
    create_user(client, "someone@example.com")
    for query in ("nobody@example.com", "someone@example", "someone", "%@example.com"):
        page = body_of(client.get("/api/users", params={"email": query}), 200)
        assert page == {"items": [], "next_cursor": None}, query


def test_list_users_email_filter_handles_plus_sign_in_address(client: Client) -> None:
    user = create_user(client, "a+tag@example.com")
    page = body_of(client.get("/api/users", params={"email": "A+TAG@example.com"}), 200)
    assert page["items"] == [user]


def test_list_users_email_filter_ignores_soft_deleted_user(client: Client) -> None:
    old = create_user(client, "filter@example.com", name="Old")
    assert client.delete(f"/api/users/{old['id']}").status_code == 204
    page = body_of(client.get("/api/users", params={"email": "filter@example.com"}), 200)
    assert page["items"] == []
    new = create_user(client, "FILTER@example.com", name="New")
    page = body_of(client.get("/api/users", params={"email": "filter@example.com"}), 200)
    assert page["items"] == [new]


@pytest.mark.parametrize(("method", "path", "body"), USER_ID_ROUTES)
def test_unknown_user_id_is_404_problem_on_every_user_id_route(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    create_user(client, "exists@example.com")
    response = client.request(method, path.format(id=UNKNOWN_ID), json=body)
    assert_problem(response, 404)
