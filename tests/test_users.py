"""The /api/users routes against the HTTP contract: success paths, 404s, 409s, timestamps."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import (
    DB,
    PASSWORD,
    RFC3339_UTC,
    Client,
    assert_problem,
    body_of,
    parse_ts,
    without_admin,
)

USER_KEYS = {"id", "email", "name", "created_at", "updated_at"}
POST_KEYS = {"id", "author_id", "title", "content", "published", "created_at", "updated_at"}
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def assert_wire_shape(value: object) -> None:
    """Everywhere in a body: no `deleted_at`, every timestamp RFC 3339 UTC ending in `Z`."""
    if isinstance(value, dict):
        assert "deleted_at" not in value, value
        for key, item in value.items():
            if key in ("created_at", "updated_at"):
                assert isinstance(item, str) and RFC3339_UTC.match(item), (key, item)
            assert_wire_shape(item)
    elif isinstance(value, list):
        for item in value:
            assert_wire_shape(item)


def assert_user_shape(user: dict[str, Any]) -> None:
    assert set(user) == USER_KEYS, user
    assert UUID_TEXT.match(user["id"]), user["id"]
    assert_wire_shape(user)


def create_user(client: Client, email: str, name: str = "Someone") -> dict[str, Any]:
    return body_of(
        client.post("/api/users", json={"email": email, "name": name, "password": PASSWORD}), 201
    )


def create_post(client: Client, author_id: str, title: str = "A title") -> dict[str, Any]:
    response = client.post(
        "/api/posts", json={"author_id": author_id, "title": title, "content": "text"}
    )
    return body_of(response, 201)


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


# --- POST /api/users ---------------------------------------------------------------------


def test_create_user_returns_201_with_location_header_and_the_user(client: Client) -> None:
    response = client.post(
        "/api/users", json={"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    )
    user = body_of(response, 201)
    assert_user_shape(user)
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada"
    assert parse_ts(user["updated_at"]) >= parse_ts(user["created_at"])
    location = response.headers["location"]
    assert location.endswith(f"/api/users/{user['id']}")
    assert body_of(client.get(location), 200) == user


def test_create_user_sets_created_at_to_the_current_time(client: Client) -> None:
    before = datetime.now(UTC)
    user = create_user(client, "now@example.com")
    after = datetime.now(UTC)
    created = parse_ts(user["created_at"])
    assert before - timedelta(seconds=5) <= created <= after + timedelta(seconds=5)


def test_create_user_trims_surrounding_whitespace_from_name(client: Client, db: DB) -> None:
    user = create_user(client, "trim@example.com", name="  \t Grace Hopper \n ")
    assert user["name"] == "Grace Hopper"
    row = db.execute("SELECT name FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == ("Grace Hopper",)


def test_create_user_stores_email_exactly_as_given(client: Client, db: DB) -> None:
    user = create_user(client, "Ada.Lovelace@Example.COM")
    assert user["email"] == "Ada.Lovelace@Example.COM"
    row = db.execute("SELECT email FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == ("Ada.Lovelace@Example.COM",)
    assert body_of(client.get(f"/api/users/{user['id']}"), 200)["email"] == (
        "Ada.Lovelace@Example.COM"
    )


def test_create_user_with_email_of_a_live_user_in_other_case_is_409(client: Client, db: DB) -> None:
    create_user(client, "Ada@X.io")
    problem = assert_problem(
        client.post(
            "/api/users", json={"email": "ada@x.io", "name": "Other", "password": PASSWORD}
        ),
        409,
    )
    assert "errors" not in problem
    assert db.execute("SELECT count(*) FROM users WHERE role = 'user'").fetchone() == (1,)


def test_create_user_with_identical_email_of_a_live_user_is_409(client: Client) -> None:
    create_user(client, "same@example.com")
    assert_problem(
        client.post(
            "/api/users", json={"email": "same@example.com", "name": "Other", "password": PASSWORD}
        ),
        409,
    )


def test_create_user_may_reuse_the_email_of_a_soft_deleted_user(client: Client) -> None:
    old = create_user(client, "Reuse@Example.com", name="Old")
    assert client.delete(f"/api/users/{old['id']}").status_code == 204
    new = create_user(client, "reuse@example.com", name="New")
    assert new["id"] != old["id"]
    assert new["email"] == "reuse@example.com"


# --- GET /api/users/{id} -----------------------------------------------------------------


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


# --- GET /api/users ----------------------------------------------------------------------


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


# --- PATCH /api/users/{id} ---------------------------------------------------------------


def test_patch_user_name_moves_updated_at_and_keeps_created_at(client: Client) -> None:
    user = create_user(client, "patch@example.com", name="Before")
    patched = body_of(client.patch(f"/api/users/{user['id']}", json={"name": "After"}), 200)
    assert_user_shape(patched)
    assert patched["name"] == "After"
    assert patched["email"] == user["email"]
    assert patched["id"] == user["id"]
    assert patched["created_at"] == user["created_at"]
    assert parse_ts(patched["updated_at"]) > parse_ts(user["updated_at"])
    assert body_of(client.get(f"/api/users/{user['id']}"), 200) == patched


def test_patch_user_moves_updated_at_to_now_for_an_old_row(client: Client, db: DB) -> None:
    old = datetime(2020, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)
    row = db.execute(
        "INSERT INTO users (email, name, created_at, updated_at) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        ("old@example.com", "Old", old, old),
    ).fetchone()
    assert row is not None
    user_id = str(row[0])
    before = body_of(client.get(f"/api/users/{user_id}"), 200)
    assert before["created_at"] == before["updated_at"] == "2020-01-02T03:04:05.678900Z"
    patched = body_of(client.patch(f"/api/users/{user_id}", json={"email": "new@example.com"}), 200)
    assert patched["created_at"] == "2020-01-02T03:04:05.678900Z"
    assert parse_ts(patched["updated_at"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_patch_user_trims_name(client: Client) -> None:
    user = create_user(client, "trimpatch@example.com")
    patched = body_of(client.patch(f"/api/users/{user['id']}", json={"name": "  Trim Me  "}), 200)
    assert patched["name"] == "Trim Me"


def test_patch_user_email_only_keeps_name_and_stores_email_as_given(client: Client, db: DB) -> None:
    user = create_user(client, "first@example.com", name="Keep")
    patched = body_of(
        client.patch(f"/api/users/{user['id']}", json={"email": "Second@Example.ORG"}), 200
    )
    assert patched["email"] == "Second@Example.ORG"
    assert patched["name"] == "Keep"
    row = db.execute("SELECT email, name FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == ("Second@Example.ORG", "Keep")


def test_patch_user_both_fields_at_once(client: Client) -> None:
    user = create_user(client, "both@example.com", name="Both")
    patched = body_of(
        client.patch(
            f"/api/users/{user['id']}",
            json={"email": "b2@example.com", "name": "B2", "password": PASSWORD},
        ),
        200,
    )
    assert (patched["email"], patched["name"]) == ("b2@example.com", "B2")


def test_patch_user_to_email_of_another_live_user_in_any_case_is_409(client: Client) -> None:
    create_user(client, "taken@example.com")
    user = create_user(client, "mine@example.com", name="Mine")
    for email in ("taken@example.com", "TAKEN@Example.com"):
        assert_problem(client.patch(f"/api/users/{user['id']}", json={"email": email}), 409)
    assert body_of(client.get(f"/api/users/{user['id']}"), 200) == user


def test_patch_user_to_own_email_in_other_case_succeeds(client: Client) -> None:
    user = create_user(client, "self@example.com")
    patched = body_of(
        client.patch(f"/api/users/{user['id']}", json={"email": "SELF@example.com"}), 200
    )
    assert patched["email"] == "SELF@example.com"


def test_patch_user_to_email_of_a_soft_deleted_user_succeeds(client: Client) -> None:
    gone = create_user(client, "free@example.com")
    assert client.delete(f"/api/users/{gone['id']}").status_code == 204
    user = create_user(client, "wants@example.com")
    patched = body_of(
        client.patch(f"/api/users/{user['id']}", json={"email": "Free@example.com"}), 200
    )
    assert patched["email"] == "Free@example.com"


# --- DELETE /api/users/{id} and restore --------------------------------------------------


def test_delete_user_returns_204_without_body_and_hides_the_user(client: Client) -> None:
    user = create_user(client, "del@example.com")
    response = client.delete(f"/api/users/{user['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"/api/users/{user['id']}"), 404)
    assert without_admin(body_of(client.get("/api/users"), 200)["items"]) == []


def test_restore_deleted_user_returns_200_and_it_is_readable_again(client: Client) -> None:
    user = create_user(client, "back@example.com", name="Back")
    assert client.delete(f"/api/users/{user['id']}").status_code == 204
    restored = body_of(client.post(f"/api/users/{user['id']}/restore"), 200)
    assert_user_shape(restored)
    for key in ("id", "email", "name", "created_at"):
        assert restored[key] == user[key]
    assert parse_ts(restored["updated_at"]) >= parse_ts(user["updated_at"])
    assert body_of(client.get(f"/api/users/{user['id']}"), 200) == restored
    assert without_admin(body_of(client.get("/api/users"), 200)["items"]) == [restored]


def test_restore_live_user_returns_it_unchanged(client: Client, db: DB) -> None:
    user = create_user(client, "live@example.com", name="Live")
    restored = body_of(client.post(f"/api/users/{user['id']}/restore"), 200)
    assert restored == user
    assert body_of(client.get(f"/api/users/{user['id']}"), 200) == user
    row = db.execute("SELECT deleted_at FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == (None,)


def test_restore_user_is_409_when_its_email_is_now_taken_in_any_case(client: Client) -> None:
    old = create_user(client, "Clash@Example.com", name="Old")
    assert client.delete(f"/api/users/{old['id']}").status_code == 204
    create_user(client, "clash@example.com", name="New")
    problem = assert_problem(client.post(f"/api/users/{old['id']}/restore"), 409)
    assert "errors" not in problem
    # The failed restore leaves the user deleted.
    assert_problem(client.get(f"/api/users/{old['id']}"), 404)


def test_restore_user_succeeds_once_the_conflicting_user_is_deleted(client: Client) -> None:
    old = create_user(client, "cycle@example.com", name="Old")
    assert client.delete(f"/api/users/{old['id']}").status_code == 204
    new = create_user(client, "cycle@example.com", name="New")
    assert_problem(client.post(f"/api/users/{old['id']}/restore"), 409)
    assert client.delete(f"/api/users/{new['id']}").status_code == 204
    restored = body_of(client.post(f"/api/users/{old['id']}/restore"), 200)
    assert restored["name"] == "Old"


# --- 404s, timestamps, no deleted_at -----------------------------------------------------

USER_ID_ROUTES = [
    ("GET", "/api/users/{id}", None),
    ("GET", "/api/users/{id}?include=posts", None),
    ("PATCH", "/api/users/{id}", {"name": "X"}),
    ("DELETE", "/api/users/{id}", None),
    ("POST", "/api/users/{id}/restore", None),
    ("GET", "/api/users/{id}/posts", None),
]


@pytest.mark.parametrize(("method", "path", "body"), USER_ID_ROUTES)
def test_unknown_user_id_is_404_problem_on_every_user_id_route(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    create_user(client, "exists@example.com")
    response = client.request(method, path.format(id=UNKNOWN_ID), json=body)
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [r for r in USER_ID_ROUTES if not r[1].endswith("/restore")],
)
def test_soft_deleted_user_id_is_404_problem_on_every_user_id_route_but_restore(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    user = create_user(client, "deleted@example.com")
    assert client.delete(f"/api/users/{user['id']}").status_code == 204
    response = client.request(method, path.format(id=user["id"]), json=body)
    assert_problem(response, 404)


def test_user_responses_use_utc_z_timestamps_and_never_show_deleted_at(
    client: Client,
) -> None:
    created = client.post(
        "/api/users", json={"email": "wire@example.com", "name": "Wire", "password": PASSWORD}
    )
    user = body_of(created, 201)
    user_id = user["id"]
    create_post(client, user_id)
    bodies: list[object] = [user]
    bodies.append(body_of(client.get(f"/api/users/{user_id}"), 200))
    bodies.append(body_of(client.get(f"/api/users/{user_id}?include=posts"), 200))
    bodies.append(body_of(client.get("/api/users"), 200))
    bodies.append(body_of(client.get("/api/users", params={"email": "wire@example.com"}), 200))
    bodies.append(body_of(client.patch(f"/api/users/{user_id}", json={"name": "W2"}), 200))
    bodies.append(body_of(client.get(f"/api/users/{user_id}/posts"), 200))
    assert client.delete(f"/api/users/{user_id}").status_code == 204
    bodies.append(body_of(client.post(f"/api/users/{user_id}/restore"), 200))
    bodies.append(body_of(client.post(f"/api/users/{user_id}/restore"), 200))
    for body in bodies:
        assert_wire_shape(body)
    assert bodies[2]["posts"]  # type: ignore[index]


def test_user_timestamps_match_the_stored_values_in_utc(client: Client, db: DB) -> None:
    user = create_user(client, "stored@example.com")
    row = db.execute(
        "SELECT created_at, updated_at FROM users WHERE id = %s", (user["id"],)
    ).fetchone()
    assert row is not None
    assert parse_ts(user["created_at"]) == row[0]
    assert parse_ts(user["updated_at"]) == row[1]


def test_an_email_with_a_trailing_newline_is_400_and_cannot_duplicate_a_live_one(
    client: Client, db: DB
) -> None:
    body_of(
        client.post("/api/users", json={"email": "a@b.io", "name": "Ada", "password": PASSWORD}),
        201,
    )
    for email in ("a@b.io\n", "a@b.io\r", "a@b.io\t", "a\u2028@b.io"):
        response = client.post(
            "/api/users", json={"email": email, "name": "Ada", "password": PASSWORD}
        )
        assert response.status_code == 400, email
    user = body_of(client.get("/api/users?email=a@b.io"), 200)["items"][0]
    patched = client.patch(f"/api/users/{user['id']}", json={"email": "c@d.io\n"})
    assert patched.status_code == 400
    row = db.execute("SELECT count(*) FROM users WHERE role = 'user'").fetchone()
    assert row == (1,)
