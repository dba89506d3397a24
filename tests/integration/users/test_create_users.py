"""POST /api/users: the stored user, its email kept as given, conflicts by email in any case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers import (
    DB,
    PASSWORD,
    Client,
    assert_problem,
    body_of,
    create_post,
    create_user,
    parse_ts,
)
from tests.integration.users.shapes import assert_user_shape, assert_wire_shape


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
