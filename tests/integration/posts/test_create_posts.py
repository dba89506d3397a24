"""POST /api/posts and GET /api/posts/{id}: the stored post with its author, and 404s for
unknown, soft-deleted and non-post ids."""

from __future__ import annotations

import pytest

from tests.helpers import (
    DB,
    UNKNOWN_ID,
    Client,
    assert_problem,
    body_of,
    create_post,
    create_user,
    parse_ts,
)
from tests.integration.posts.shapes import POST_ID_ROUTES, POST_KEYS, assert_post_shape


def post_count(db: DB) -> object:
    row = db.execute("SELECT count(*) FROM posts").fetchone()
    assert row is not None
    return row[0]


def test_create_post_returns_201_with_location_and_embedded_author(client: Client) -> None:
    author = create_user(client, "writer@example.com", name="Writer")
    response = client.post(
        "/api/posts",
        json={"author_id": author["id"], "title": "Hello", "content": "World", "published": True},
    )
    post = body_of(response, 201)
    assert_post_shape(post)
    assert post["author_id"] == author["id"]
    assert post["author"] == {"id": author["id"], "name": "Writer"}
    assert (post["title"], post["content"], post["published"]) == ("Hello", "World", True)
    assert parse_ts(post["updated_at"]) >= parse_ts(post["created_at"])
    location = response.headers["location"]
    assert location.endswith(f"/api/posts/{post['id']}")
    assert body_of(client.get(location), 200) == post


def test_create_post_published_defaults_to_false(client: Client, db: DB) -> None:
    author = create_user(client, "draft@example.com")
    post = create_post(client, author["id"], published=None)
    assert post["published"] is False
    row = db.execute("SELECT published FROM posts WHERE id = %s", (post["id"],)).fetchone()
    assert row == (False,)


def test_create_post_accepts_empty_content(client: Client) -> None:
    author = create_user(client, "empty@example.com")
    post = create_post(client, author["id"], content="")
    assert post["content"] == ""
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200)["content"] == ""


def test_create_post_stores_title_and_content_exactly(client: Client, db: DB) -> None:
    author = create_user(client, "exact@example.com")
    title = "  Ünïcødé ✓ title  "
    content = "line one\nline two\t\"quoted\" 'single' \\ back"
    post = create_post(client, author["id"], title=title, content=content)
    assert (post["title"], post["content"]) == (title, content)
    row = db.execute("SELECT title, content FROM posts WHERE id = %s", (post["id"],)).fetchone()
    assert row == (title, content)


def test_create_post_for_unknown_author_is_422_and_stores_nothing(client: Client, db: DB) -> None:
    create_user(client, "someone@example.com")
    response = client.post(
        "/api/posts", json={"author_id": UNKNOWN_ID, "title": "Orphan", "content": "x"}
    )
    assert_problem(response, 422)
    assert post_count(db) == 0


def test_create_post_for_soft_deleted_author_is_422_and_stores_nothing(
    client: Client, db: DB
) -> None:
    author = create_user(client, "ghost@example.com")
    assert client.delete(f"/api/users/{author['id']}").status_code == 204
    response = client.post(
        "/api/posts", json={"author_id": author["id"], "title": "Boo", "content": "x"}
    )
    assert_problem(response, 422)
    assert post_count(db) == 0


def test_create_post_for_restored_author_succeeds(client: Client) -> None:
    author = create_user(client, "again@example.com", name="Again")
    assert client.delete(f"/api/users/{author['id']}").status_code == 204
    assert client.post(f"/api/users/{author['id']}/restore").status_code == 200
    post = create_post(client, author["id"])
    assert post["author"] == {"id": author["id"], "name": "Again"}


def test_get_post_returns_it_with_its_author(client: Client) -> None:
    author = create_user(client, "reader@example.com", name="Reader")
    post = create_post(client, author["id"], published=True)
    got = body_of(client.get(f"/api/posts/{post['id']}"), 200)
    assert_post_shape(got)
    assert got == post


def test_post_author_shows_the_authors_current_name(client: Client) -> None:
    author = create_user(client, "rename@example.com", name="Old Name")
    post = create_post(client, author["id"])
    client.patch(f"/api/users/{author['id']}", json={"name": "New Name"})
    got = body_of(client.get(f"/api/posts/{post['id']}"), 200)
    assert got["author"] == {"id": author["id"], "name": "New Name"}
    listed = body_of(client.get("/api/posts"), 200)["items"]
    assert listed[0]["author"] == {"id": author["id"], "name": "New Name"}


def test_post_timestamps_match_stored_values_in_utc(client: Client, db: DB) -> None:
    author = create_user(client, "ts@example.com")
    post = create_post(client, author["id"])
    row = db.execute(
        "SELECT created_at, updated_at FROM posts WHERE id = %s", (post["id"],)
    ).fetchone()
    assert row is not None
    assert parse_ts(post["created_at"]) == row[0]
    assert parse_ts(post["updated_at"]) == row[1]


@pytest.mark.parametrize(("method", "path", "body"), POST_ID_ROUTES)
def test_unknown_post_id_is_404_problem_on_every_post_id_route(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    author = create_user(client, "exists@example.com")
    create_post(client, author["id"])
    assert_problem(client.request(method, path.format(id=UNKNOWN_ID), json=body), 404)


def test_a_user_id_is_not_a_post_id(client: Client) -> None:
    author = create_user(client, "mixup@example.com")
    create_post(client, author["id"])
    assert_problem(client.get(f"/api/posts/{author['id']}"), 404)


def test_post_responses_never_show_deleted_at(client: Client) -> None:
    author = create_user(client, "wire@example.com")
    post = create_post(client, author["id"])
    bodies = [
        post,
        body_of(client.get(f"/api/posts/{post['id']}"), 200),
        body_of(client.patch(f"/api/posts/{post['id']}", json={"title": "t"}), 200),
        body_of(client.post(f"/api/posts/{post['id']}/restore"), 200),
    ]
    assert client.delete(f"/api/posts/{post['id']}").status_code == 204
    bodies.append(body_of(client.post(f"/api/posts/{post['id']}/restore"), 200))
    bodies.append(body_of(client.get("/api/posts"), 200)["items"][0])
    bodies.append(body_of(client.get(f"/api/users/{author['id']}/posts"), 200)["items"][0])
    for body in bodies:
        assert set(body) == POST_KEYS
        assert "deleted_at" not in body["author"]
