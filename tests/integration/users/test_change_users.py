"""PATCH, DELETE and restore of users: timestamps move, emails stay unique in any case, soft-
deleted users are 404 but restorable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import (
    DB,
    PASSWORD,
    Client,
    assert_problem,
    body_of,
    create_user,
    parse_ts,
    without_admin,
)
from tests.integration.users.shapes import USER_ID_ROUTES, assert_user_shape


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
