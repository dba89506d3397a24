"""PATCH, DELETE and restore of posts: other fields kept, timestamps moved, soft-deleted
posts 404 but restorable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import DB, Client, assert_problem, body_of, create_post, create_user, parse_ts
from tests.integration.posts.shapes import POST_ID_ROUTES, assert_post_shape


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def test_patch_post_title_keeps_other_fields_and_moves_updated_at(client: Client) -> None:
    author = create_user(client, "patcher@example.com", name="Patcher")
    post = create_post(client, author["id"], content="keep me", published=True)
    patched = body_of(client.patch(f"/api/posts/{post['id']}", json={"title": "New title"}), 200)
    assert_post_shape(patched)
    assert patched["title"] == "New title"
    for key in ("id", "author_id", "content", "published", "created_at", "author"):
        assert patched[key] == post[key], key
    assert parse_ts(patched["updated_at"]) > parse_ts(post["updated_at"])
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200) == patched


def test_patch_post_content_and_published_together(client: Client) -> None:
    author = create_user(client, "multi@example.com")
    post = create_post(client, author["id"], title="Same")
    patched = body_of(
        client.patch(f"/api/posts/{post['id']}", json={"content": "", "published": True}), 200
    )
    assert (patched["title"], patched["content"], patched["published"]) == ("Same", "", True)


def test_patch_post_can_unpublish(client: Client) -> None:
    author = create_user(client, "unpub@example.com")
    post = create_post(client, author["id"], published=True)
    patched = body_of(client.patch(f"/api/posts/{post['id']}", json={"published": False}), 200)
    assert patched["published"] is False
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200)["published"] is False


def test_patch_post_moves_updated_at_of_an_old_row_and_keeps_created_at(
    client: Client, db: DB
) -> None:
    author = create_user(client, "oldpost@example.com")
    old = datetime(2021, 6, 7, 8, 9, 10, tzinfo=UTC)
    row = db.execute(
        "INSERT INTO posts (author_id, title, content, created_at, updated_at)"
        " VALUES (%s, 'old', '', %s, %s) RETURNING id",
        (author["id"], old, old),
    ).fetchone()
    assert row is not None
    patched = body_of(client.patch(f"/api/posts/{row[0]}", json={"title": "fresh"}), 200)
    assert parse_ts(patched["created_at"]) == old
    assert parse_ts(patched["updated_at"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_delete_post_returns_204_without_body_and_hides_it(client: Client) -> None:
    author = create_user(client, "deleter@example.com")
    keep = create_post(client, author["id"], title="keep")
    gone = create_post(client, author["id"], title="gone")
    response = client.delete(f"/api/posts/{gone['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"/api/posts/{gone['id']}"), 404)
    assert ids(body_of(client.get("/api/posts"), 200)) == [keep["id"]]


def test_restore_deleted_post_returns_200_and_it_is_readable_again(client: Client) -> None:
    author = create_user(client, "restorer@example.com")
    post = create_post(client, author["id"], published=True)
    assert client.delete(f"/api/posts/{post['id']}").status_code == 204
    restored = body_of(client.post(f"/api/posts/{post['id']}/restore"), 200)
    assert_post_shape(restored)
    for key in ("id", "author_id", "title", "content", "published", "created_at", "author"):
        assert restored[key] == post[key], key
    assert parse_ts(restored["updated_at"]) >= parse_ts(post["updated_at"])
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200) == restored
    assert ids(body_of(client.get("/api/posts"), 200)) == [post["id"]]


def test_restore_live_post_returns_it_unchanged(client: Client) -> None:
    author = create_user(client, "livepost@example.com")
    post = create_post(client, author["id"])
    assert body_of(client.post(f"/api/posts/{post['id']}/restore"), 200) == post
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200) == post


@pytest.mark.parametrize(
    ("method", "path", "body"), [r for r in POST_ID_ROUTES if not r[1].endswith("/restore")]
)
def test_soft_deleted_post_id_is_404_problem_on_every_post_id_route_but_restore(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    author = create_user(client, "owner@example.com")
    post = create_post(client, author["id"])
    assert client.delete(f"/api/posts/{post['id']}").status_code == 204
    assert_problem(client.request(method, path.format(id=post["id"]), json=body), 404)
