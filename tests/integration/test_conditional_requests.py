"""Conditional requests: an ETag on every single-resource answer (one per representation,
so per caller where the body differs), 304 on If-None-Match, 412 on a stale If-Match
(and nothing changed), `*`, and 428 when RAWPOST_REQUIRE_IF_MATCH is on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import (
    DB,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    mint_token,
)


class Actor:
    def __init__(self, user: dict[str, Any]) -> None:
        self.id: str = user["id"]
        self.headers = bearer(mint_token(self.id))


@pytest.fixture
def ada(api: Client) -> Actor:
    return Actor(create_user(api, "ada@example.com", "Ada"))


@pytest.fixture
def bob(api: Client) -> Actor:
    return Actor(create_user(api, "bob@example.com", "Bob"))


def _post(api: Client, author: Actor, *, published: bool = True) -> dict[str, Any]:
    body = {"title": "T", "content": "C", "published": published}
    return body_of(api.post("/api/posts", json=body, headers=author.headers), 201)


def _row(db: DB, table: str, id_: str) -> tuple[object, ...]:
    row = db.execute(f"SELECT * FROM {table} WHERE id = %s", (id_,)).fetchone()
    assert row is not None
    return row


def test_every_single_resource_answer_carries_an_etag_that_moves_with_each_write(
    api: Client, ada: Actor
) -> None:
    created = api.post("/api/posts", json={"title": "T", "content": "C"}, headers=ada.headers)
    post = body_of(created, 201)
    url = f"/api/posts/{post['id']}"
    read = api.get(url, headers=ada.headers)
    assert read.headers["etag"] == created.headers["etag"]
    changed = api.patch(url, json={"title": "U"}, headers=ada.headers)
    assert body_of(changed, 200)["title"] == "U"
    assert changed.headers["etag"] not in (created.headers["etag"], None)
    assert api.get(url, headers=ada.headers).headers["etag"] == changed.headers["etag"]
    # The same body again is another write: updated_at, and so the tag, move on.
    again = api.patch(url, json={"title": "U"}, headers=ada.headers)
    assert again.headers["etag"] != changed.headers["etag"]
    assert api.delete(url, headers=ada.headers).status_code == 204
    restored = api.post(f"{url}/restore", headers=ada.headers)
    assert body_of(restored, 200)["id"] == post["id"]
    assert restored.headers["etag"] not in (again.headers["etag"], None)
    for user_url in (f"/api/users/{ada.id}", "/api/users/me", f"/api/users/{ada.id}?include=posts"):
        assert api.get(user_url, headers=ada.headers).headers["etag"], user_url


def test_each_representation_has_its_own_tag(api: Client, ada: Actor, bob: Actor) -> None:
    user_url = f"/api/users/{ada.id}"
    own = api.get(user_url, headers=ada.headers)
    other = api.get(user_url, headers=bob.headers)
    anonymous = api.get(user_url)
    assert "email" in own.json() and "email" not in other.json()
    assert own.headers["etag"] != other.headers["etag"]
    assert other.headers["etag"] == anonymous.headers["etag"]  # the same body
    with_posts = api.get(f"{user_url}?include=posts")
    assert with_posts.headers["etag"] != anonymous.headers["etag"]
    # A post's author renamed: the post reads differently, so its tag changes too.
    post = _post(api, ada)
    before = api.get(f"/api/posts/{post['id']}").headers["etag"]
    body_of(api.patch(user_url, json={"name": "Ada L"}, headers=ada.headers), 200)
    after = api.get(f"/api/posts/{post['id']}")
    assert after.json()["author"]["name"] == "Ada L"
    assert after.headers["etag"] != before


def test_if_none_match_with_the_current_tag_is_304_with_no_body(api: Client, ada: Actor) -> None:
    post = _post(api, ada)
    url = f"/api/posts/{post['id']}"
    tag = api.get(url).headers["etag"]
    for header in (tag, f"W/{tag}", f'"stale", {tag}', "*"):
        same = api.get(url, headers={"If-None-Match": header})
        assert same.status_code == 304, header
        assert same.content == b""
        assert same.headers["etag"] == tag
    body_of(api.patch(url, json={"content": "new"}, headers=ada.headers), 200)
    fresh = api.get(url, headers={"If-None-Match": tag})
    assert body_of(fresh, 200)["content"] == "new"
    # The owner's tag is not the anonymous one: no 304 across representations.
    own = api.get(f"/api/users/{ada.id}", headers=ada.headers).headers["etag"]
    assert api.get(f"/api/users/{ada.id}", headers={"If-None-Match": own}).status_code == 200


@pytest.mark.parametrize("kind", ["post", "user"])
def test_a_stale_if_match_is_412_and_changes_nothing(
    api: Client, db: DB, ada: Actor, kind: str
) -> None:
    if kind == "post":
        table, id_ = "posts", _post(api, ada)["id"]
        url, change = f"/api/posts/{id_}", {"title": "mine"}
    else:
        table, id_ = "users", ada.id
        url, change = f"/api/users/{ada.id}", {"name": "Ada B"}
    read = api.get(url, headers=ada.headers).headers["etag"]
    body_of(api.patch(url, json=change, headers=ada.headers), 200)  # someone else's write
    current = api.get(url, headers=ada.headers).headers["etag"]
    before = _row(db, table, id_)
    for stale in (read, f"W/{current}", '"not-a-tag"', "garbage", '"zzzz-0"'):
        headers = {**ada.headers, "If-Match": stale}
        problem = assert_problem(api.patch(url, json=change, headers=headers), 412)
        assert "If-Match" in problem["detail"]
        assert_problem(api.delete(url, headers=headers), 412)
    assert _row(db, table, id_) == before
    # The current tag (alone, or among others) and `*` go through.
    both = {**ada.headers, "If-Match": f"{read}, {current}"}
    changed = api.patch(url, json=change, headers=both)
    body_of(changed, 200)
    star = {**ada.headers, "If-Match": "*"}
    body_of(api.patch(url, json=change, headers=star), 200)
    last = api.get(url, headers=ada.headers).headers["etag"]
    assert api.delete(url, headers={**ada.headers, "If-Match": last}).status_code == 204


def test_restore_checks_if_match_against_the_deleted_row(
    api: Client, db: DB, ada: Actor, admin_token: str
) -> None:
    admin = bearer(admin_token)
    post = _post(api, ada)
    url = f"/api/posts/{post['id']}"
    tag = api.get(url).headers["etag"]
    assert api.delete(url, headers=ada.headers).status_code == 204
    before = _row(db, "posts", post["id"])
    assert_problem(api.post(f"{url}/restore", headers={**ada.headers, "If-Match": '"1-x"'}), 412)
    assert _row(db, "posts", post["id"]) == before
    body_of(api.post(f"{url}/restore", headers={**ada.headers, "If-Match": tag}), 200)

    user_url = f"/api/users/{ada.id}"
    user_tag = api.get(user_url, headers=admin).headers["etag"]
    assert api.delete(user_url, headers=admin).status_code == 204
    assert_problem(api.post(f"{user_url}/restore", headers={**admin, "If-Match": '"1-x"'}), 412)
    body_of(api.post(f"{user_url}/restore", headers={**admin, "If-Match": user_tag}), 200)


def test_a_tag_gives_no_rights_another_callers_write_is_still_refused(
    api: Client, db: DB, ada: Actor, bob: Actor
) -> None:
    published, draft = _post(api, ada), _post(api, ada, published=False)
    for post, status in ((published, 403), (draft, 404)):
        url = f"/api/posts/{post['id']}"
        tag = api.get(url, headers=ada.headers).headers["etag"]
        before = _row(db, "posts", post["id"])
        attack = {**bob.headers, "If-Match": tag}
        assert_problem(api.patch(url, json={"title": "bob's"}, headers=attack), status)
        assert_problem(api.delete(url, headers=attack), status)
        assert _row(db, "posts", post["id"]) == before
    user_url = f"/api/users/{ada.id}"
    tag = api.get(user_url, headers=ada.headers).headers["etag"]
    before = _row(db, "users", ada.id)
    attack = {**bob.headers, "If-Match": tag}
    assert_problem(api.patch(user_url, json={"name": "bob's"}, headers=attack), 403)
    assert_problem(api.delete(user_url, headers=attack), 403)
    assert _row(db, "users", ada.id) == before


@pytest.fixture
def strict(settings: Settings) -> Iterator[Client]:
    """The app with RAWPOST_REQUIRE_IF_MATCH on."""
    changed = msgspec.structs.replace(settings, require_if_match=True)
    with TestClient(app=create_app(changed)) as client:
        yield client


def test_with_if_match_required_a_write_without_it_is_428_and_changes_nothing(
    strict: Client, db: DB
) -> None:
    ada = Actor(create_user(strict, "strict@example.com", "Ada"))
    post = _post(strict, ada)  # creating needs no If-Match
    url = f"/api/posts/{post['id']}"
    before = _row(db, "posts", post["id"])
    problem = assert_problem(strict.patch(url, json={"title": "x"}, headers=ada.headers), 428)
    assert "If-Match" in problem["detail"]
    assert_problem(strict.delete(url, headers=ada.headers), 428)
    assert_problem(strict.post(f"{url}/restore", headers=ada.headers), 428)
    assert_problem(
        strict.patch(f"/api/users/{ada.id}", json={"name": "x"}, headers=ada.headers), 428
    )
    assert _row(db, "posts", post["id"]) == before
    tag = strict.get(url).headers["etag"]
    body_of(strict.patch(url, json={"title": "x"}, headers={**ada.headers, "If-Match": tag}), 200)


def test_the_openapi_document_declares_the_headers_and_statuses(api: Client) -> None:
    document = api.get("/schema/openapi.json").json()
    paths = document["paths"]
    for path, method in (
        ("/api/posts/{post_id}", "get"),
        ("/api/users/{user_id}", "get"),
        ("/api/users/me", "get"),
    ):
        operation = paths[path][method]
        assert "If-None-Match" in {p["name"] for p in operation["parameters"]}, path
        assert "304" in operation["responses"], path
        assert "ETag" in operation["responses"]["200"]["headers"], path
    for path, method in (
        ("/api/posts/{post_id}", "patch"),
        ("/api/posts/{post_id}", "delete"),
        ("/api/posts/{post_id}/restore", "post"),
        ("/api/users/{user_id}", "patch"),
        ("/api/users/{user_id}", "delete"),
        ("/api/users/{user_id}/restore", "post"),
    ):
        operation = paths[path][method]
        assert "If-Match" in {p["name"] for p in operation["parameters"]}, (path, method)
        assert {"412", "428"} <= set(operation["responses"]), (path, method)
