"""Who may do what (contract v2): for every rule, user B (or an anonymous client) tries it
on user A's data, gets the contract's status, and the database shows nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    DB,
    PASSWORD,
    UNKNOWN_ID,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    sign_in,
)


class Actor:
    """A signed-up user with a token, acting through the shared anonymous client."""

    def __init__(self, api: Client, email: str) -> None:
        self.user = create_user(api, email, email.split("@")[0])
        self.id: str = self.user["id"]
        self.headers = bearer(sign_in(api, email)["access_token"])

    def post(self, api: Client, *, published: bool, title: str = "a post") -> dict[str, Any]:
        body = {"title": title, "content": "text", "published": published}
        return body_of(api.post("/api/posts", json=body, headers=self.headers), 201)


@pytest.fixture
def ada(api: Client) -> Actor:
    return Actor(api, "ada@example.com")


@pytest.fixture
def bob(api: Client) -> Actor:
    return Actor(api, "bob@example.com")


def snapshot(db: DB) -> list[tuple[object, ...]]:
    users = db.execute(
        "SELECT id, email, name, role, password_hash, updated_at, deleted_at FROM users ORDER BY id"
    ).fetchall()
    posts = db.execute(
        "SELECT id, author_id, title, content, published, updated_at, deleted_at"
        " FROM posts ORDER BY id"
    ).fetchall()
    return [*users, *posts]


def item_ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


# --- emails -------------------------------------------------------------------------------


def test_an_email_is_shown_only_to_its_user_and_admins(
    api: Client, ada: Actor, bob: Actor, admin_token: str
) -> None:
    url = f"/api/users/{ada.id}"
    assert "email" not in body_of(api.get(url), 200)
    assert "email" not in body_of(api.get(url, headers=bob.headers), 200)
    assert body_of(api.get(url, headers=ada.headers), 200)["email"] == "ada@example.com"
    assert body_of(api.get(url, headers=bearer(admin_token)), 200)["email"] == "ada@example.com"
    assert "email" not in body_of(api.get(url + "?include=posts", headers=bob.headers), 200)
    listed = {u["id"]: u for u in body_of(api.get("/api/users", headers=bob.headers), 200)["items"]}
    assert "email" not in listed[ada.id] and listed[bob.id]["email"] == "bob@example.com"
    anonymous = body_of(api.get("/api/users"), 200)["items"]
    assert all("email" not in u for u in anonymous)


def test_looking_users_up_by_email_is_for_admins_only(
    api: Client, ada: Actor, bob: Actor, admin_token: str
) -> None:
    params = {"email": "ada@example.com"}
    assert_problem(api.get("/api/users", params=params), 401)
    assert_problem(api.get("/api/users", params=params, headers=bob.headers), 403)
    assert_problem(api.get("/api/users", params=params, headers=ada.headers), 403)
    page = body_of(api.get("/api/users", params=params, headers=bearer(admin_token)), 200)
    assert item_ids(page) == {ada.id}


# --- drafts -------------------------------------------------------------------------------


def test_a_draft_is_visible_only_to_its_author_and_admins_on_every_read_path(
    api: Client, ada: Actor, bob: Actor, admin_token: str
) -> None:
    draft = ada.post(api, published=False, title="secret draft")
    public = ada.post(api, published=True, title="public")
    admin = bearer(admin_token)
    for headers in ({}, bob.headers):
        assert_problem(api.get(f"/api/posts/{draft['id']}", headers=headers), 404)
        assert item_ids(body_of(api.get("/api/posts", headers=headers), 200)) == {public["id"]}
        mine = body_of(api.get(f"/api/users/{ada.id}/posts", headers=headers), 200)
        assert item_ids(mine) == {public["id"]}
        embedded = body_of(api.get(f"/api/users/{ada.id}?include=posts", headers=headers), 200)
        assert [p["id"] for p in embedded["posts"]] == [public["id"]]
        filtered = api.get(f"/api/users/{ada.id}/posts?published=false", headers=headers)
        assert body_of(filtered, 200)["items"] == []
    for headers in (ada.headers, admin):
        assert body_of(api.get(f"/api/posts/{draft['id']}", headers=headers), 200) == draft
        mine = body_of(api.get(f"/api/users/{ada.id}/posts", headers=headers), 200)
        assert item_ids(mine) == {draft["id"], public["id"]}
        embedded = body_of(api.get(f"/api/users/{ada.id}?include=posts", headers=headers), 200)
        assert {p["id"] for p in embedded["posts"]} == {draft["id"], public["id"]}
        # /api/posts lists published posts only, for every caller.
        assert item_ids(body_of(api.get("/api/posts", headers=headers), 200)) == {public["id"]}
        by_author = api.get("/api/posts", params={"author_id": ada.id}, headers=headers)
        assert item_ids(body_of(by_author, 200)) == {public["id"]}


# --- writes on posts ------------------------------------------------------------------------


def test_another_user_cannot_change_delete_or_restore_a_post(
    api: Client, db: DB, ada: Actor, bob: Actor
) -> None:
    public = ada.post(api, published=True)
    draft = ada.post(api, published=False)
    gone = ada.post(api, published=True)
    assert api.delete(f"/api/posts/{gone['id']}", headers=ada.headers).status_code == 204
    gone_draft = ada.post(api, published=False)
    assert api.delete(f"/api/posts/{gone_draft['id']}", headers=ada.headers).status_code == 204
    before = snapshot(db)
    for post, status in ((public, 403), (draft, 404)):
        url = f"/api/posts/{post['id']}"
        assert_problem(api.patch(url, json={"title": "pwned"}, headers=bob.headers), status)
        assert_problem(api.delete(url, headers=bob.headers), status)
        assert_problem(api.patch(url, json={"title": "pwned"}), 401)
        assert_problem(api.delete(url), 401)
    # A deleted post is visible to nobody but its author and admins: 404, never 403.
    assert_problem(api.post(f"/api/posts/{gone['id']}/restore", headers=bob.headers), 404)
    assert_problem(api.post(f"/api/posts/{gone_draft['id']}/restore", headers=bob.headers), 404)
    assert_problem(api.post(f"/api/posts/{gone['id']}/restore"), 401)
    assert snapshot(db) == before


def test_the_author_and_an_admin_change_delete_and_restore_a_post(
    api: Client, ada: Actor, admin_token: str
) -> None:
    admin = bearer(admin_token)
    for headers in (ada.headers, admin):
        post = ada.post(api, published=False)
        url = f"/api/posts/{post['id']}"
        assert (
            body_of(api.patch(url, json={"title": "edited"}, headers=headers), 200)["title"]
            == "edited"
        )
        assert api.delete(url, headers=headers).status_code == 204
        assert body_of(api.post(url + "/restore", headers=headers), 200)["id"] == post["id"]


def test_a_post_cannot_be_restored_while_its_author_is_deleted(
    api: Client, ada: Actor, admin_token: str
) -> None:
    post = ada.post(api, published=True)
    admin = bearer(admin_token)
    assert api.delete(f"/api/users/{ada.id}", headers=admin).status_code == 204
    assert_problem(api.post(f"/api/posts/{post['id']}/restore", headers=admin), 404)


def test_creating_a_post_for_another_author_is_for_admins_only(
    api: Client, db: DB, ada: Actor, bob: Actor, admin_token: str
) -> None:
    body = {"title": "t", "content": "c", "author_id": ada.id}
    before = snapshot(db)
    assert_problem(api.post("/api/posts", json=body, headers=bob.headers), 403)
    assert_problem(api.post("/api/posts", json=body), 401)
    assert snapshot(db) == before
    own = body_of(
        api.post("/api/posts", json={"title": "t", "content": "c"}, headers=bob.headers), 201
    )
    assert own["author_id"] == bob.id
    explicit = body_of(
        api.post("/api/posts", json={**body, "author_id": bob.id}, headers=bob.headers), 201
    )
    assert explicit["author_id"] == bob.id
    by_admin = body_of(api.post("/api/posts", json=body, headers=bearer(admin_token)), 201)
    assert by_admin["author_id"] == ada.id
    unknown = {**body, "author_id": "00000000-0000-4000-8000-000000000000"}
    assert_problem(api.post("/api/posts", json=unknown, headers=bearer(admin_token)), 422)


def test_idempotency_keys_are_per_caller(api: Client, db: DB, ada: Actor, bob: Actor) -> None:
    key = {"Idempotency-Key": "shared-key-1"}
    body = {"title": "mine", "content": "c", "published": False}
    first = body_of(api.post("/api/posts", json=body, headers={**ada.headers, **key}), 201)
    other = body_of(api.post("/api/posts", json=body, headers={**bob.headers, **key}), 201)
    assert other["id"] != first["id"] and other["author_id"] == bob.id


# --- writes on users ----------------------------------------------------------------------


def test_another_user_cannot_change_or_delete_a_user_whatever_the_id(
    api: Client, db: DB, ada: Actor, bob: Actor
) -> None:
    before = snapshot(db)
    for target in (ada.id, "00000000-0000-4000-8000-000000000000"):
        url = f"/api/users/{target}"
        assert_problem(api.patch(url, json={"name": "pwned"}, headers=bob.headers), 403)
        assert_problem(api.patch(url, json={"password": "x" * 20}, headers=bob.headers), 403)
        assert_problem(api.delete(url, headers=bob.headers), 403)
    assert snapshot(db) == before
    assert_problem(api.patch("/api/users/not-a-uuid", json={"name": "x"}, headers=bob.headers), 400)


def test_restoring_a_user_is_for_admins_only(
    api: Client, db: DB, ada: Actor, bob: Actor, admin_token: str
) -> None:
    assert api.delete(f"/api/users/{ada.id}", headers=ada.headers).status_code == 204
    before = snapshot(db)
    for target in (ada.id, bob.id, "00000000-0000-4000-8000-000000000000"):
        assert_problem(api.post(f"/api/users/{target}/restore", headers=bob.headers), 403)
    assert_problem(api.post(f"/api/users/{ada.id}/restore", headers=ada.headers), 401)
    assert snapshot(db) == before
    restored = body_of(api.post(f"/api/users/{ada.id}/restore", headers=bearer(admin_token)), 200)
    assert restored["email"] == "ada@example.com"


def test_the_user_itself_and_an_admin_change_and_delete_a_user(
    api: Client, ada: Actor, bob: Actor, admin_token: str
) -> None:
    changed = body_of(
        api.patch(f"/api/users/{ada.id}", json={"name": "Ada L"}, headers=ada.headers), 200
    )
    assert changed["name"] == "Ada L" and changed["email"] == "ada@example.com"
    admin = bearer(admin_token)
    body_of(api.patch(f"/api/users/{bob.id}", json={"name": "Bob B"}, headers=admin), 200)
    assert api.delete(f"/api/users/{bob.id}", headers=admin).status_code == 204
    assert_problem(api.get(f"/api/users/{bob.id}"), 404)


# --- headers for the caches between rawpost and its clients -------------------------------


def test_answers_to_a_token_are_never_stored_and_every_api_answer_varies_by_it(
    api: Client, ada: Actor
) -> None:
    signed = api.get(f"/api/users/{ada.id}", headers=ada.headers)
    assert signed.headers["cache-control"] == "no-store"
    assert signed.headers["vary"] == "Authorization"
    assert signed.headers["x-content-type-options"] == "nosniff"
    anonymous = api.get(f"/api/users/{ada.id}")
    assert anonymous.headers["vary"] == "Authorization"
    # Anyone's answer: a shared cache may keep it, and must revalidate it (its ETag).
    assert anonymous.headers["cache-control"] == "no-cache"
    assert anonymous.headers["etag"]
    assert anonymous.headers["x-content-type-options"] == "nosniff"
    refused = api.get("/api/users/me")  # errors too
    assert refused.headers["vary"] == "Authorization"
    # An error is about its own request: never shared, even without a token.
    assert refused.headers["cache-control"] == "no-store"
    missing = api.get(f"/api/users/{UNKNOWN_ID}")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
    assert refused.headers["x-content-type-options"] == "nosniff"
    sign_in = {"email": "ada@example.com", "password": PASSWORD}
    token = api.post("/api/auth/token", json=sign_in)
    assert token.headers.get_list("cache-control") == ["no-store"]  # not doubled
    assert api.get("/health/live").headers["x-content-type-options"] == "nosniff"
