"""The /api/posts routes and GET /api/users/{id}/posts against the HTTP contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import DB, PASSWORD, Client, assert_problem, body_of, parse_ts

POST_KEYS = {
    "id",
    "author_id",
    "title",
    "content",
    "published",
    "created_at",
    "updated_at",
    "author",
}
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def assert_post_shape(post: dict[str, Any]) -> None:
    assert set(post) == POST_KEYS, post
    assert UUID_TEXT.match(post["id"]), post["id"]
    assert set(post["author"]) == {"id", "name"}
    assert post["author"]["id"] == post["author_id"]
    assert isinstance(post["published"], bool)
    parse_ts(post["created_at"])
    parse_ts(post["updated_at"])


def create_user(client: Client, email: str, name: str = "Author") -> dict[str, Any]:
    return body_of(
        client.post("/api/users", json={"email": email, "name": name, "password": PASSWORD}), 201
    )


def create_post(
    client: Client,
    author_id: str,
    title: str = "A title",
    *,
    content: str = "Some content",
    published: bool | None = True,
) -> dict[str, Any]:
    """A post by `author_id`, published unless told (`None`: the server's default, a draft)."""
    data: dict[str, object] = {"author_id": author_id, "title": title, "content": content}
    if published is not None:
        data["published"] = published
    return body_of(client.post("/api/posts", json=data), 201)


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def post_count(db: DB) -> object:
    row = db.execute("SELECT count(*) FROM posts").fetchone()
    assert row is not None
    return row[0]


# --- POST /api/posts ---------------------------------------------------------------------


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


# --- GET /api/posts/{id} -----------------------------------------------------------------


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


# --- PATCH /api/posts/{id} ---------------------------------------------------------------


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


# --- DELETE and restore ------------------------------------------------------------------


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


# --- GET /api/posts ----------------------------------------------------------------------


def test_list_posts_on_an_empty_database_is_an_empty_last_page(client: Client) -> None:
    assert body_of(client.get("/api/posts"), 200) == {"items": [], "next_cursor": None}


def test_list_posts_returns_every_authors_posts_newest_first(client: Client) -> None:
    ada = create_user(client, "ada@example.com", name="Ada")
    bob = create_user(client, "bob@example.com", name="Bob")
    made = [
        create_post(client, ada["id"], "a1"),
        create_post(client, bob["id"], "b1", published=True),
        create_post(client, ada["id"], "a2", published=True),
    ]
    page = body_of(client.get("/api/posts"), 200)
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    assert page["items"] == list(reversed(made))
    for item in page["items"]:
        assert_post_shape(item)


def test_list_posts_author_id_filter_returns_only_that_authors_posts(client: Client) -> None:
    ada = create_user(client, "ada@example.com")
    bob = create_user(client, "bob@example.com")
    a1 = create_post(client, ada["id"], "a1")
    create_post(client, bob["id"], "b1")
    a2 = create_post(client, ada["id"], "a2", published=True)
    create_post(client, bob["id"], "b2")
    page = body_of(client.get("/api/posts", params={"author_id": ada["id"]}), 200)
    assert page == {"items": [a2, a1], "next_cursor": None}


def test_list_posts_author_id_filter_for_unknown_author_is_an_empty_page(client: Client) -> None:
    author = create_user(client, "known@example.com")
    create_post(client, author["id"])
    page = body_of(client.get("/api/posts", params={"author_id": UNKNOWN_ID}), 200)
    assert page == {"items": [], "next_cursor": None}


def test_list_posts_author_id_filter_for_author_without_posts_is_an_empty_page(
    client: Client,
) -> None:
    busy = create_user(client, "busy@example.com")
    idle = create_user(client, "idle@example.com")
    create_post(client, busy["id"])
    page = body_of(client.get("/api/posts", params={"author_id": idle["id"]}), 200)
    assert page == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("flag", [True, False])
def test_list_posts_published_filter_returns_only_posts_with_that_flag(
    client: Client, flag: bool
) -> None:
    author = create_user(client, "flags@example.com")
    posts = [create_post(client, author["id"], f"p{i}", published=i % 3 == 0) for i in range(6)]
    page = body_of(client.get("/api/posts", params={"published": str(flag).lower()}), 200)
    # v2: drafts are never listed here, so `published=false` is an empty page.
    expected = [p for p in reversed(posts) if p["published"] is flag and flag]
    assert page == {"items": expected, "next_cursor": None}


def test_list_posts_author_id_and_published_filters_combine(client: Client) -> None:
    ada = create_user(client, "ada@example.com")
    bob = create_user(client, "bob@example.com")
    create_post(client, ada["id"], "ada draft", published=False)
    ada_pub = create_post(client, ada["id"], "ada published", published=True)
    create_post(client, bob["id"], "bob published", published=True)
    create_post(client, bob["id"], "bob draft", published=False)
    page = body_of(
        client.get("/api/posts", params={"author_id": ada["id"], "published": "true"}), 200
    )
    assert page == {"items": [ada_pub], "next_cursor": None}
    page = body_of(
        client.get("/api/posts", params={"author_id": bob["id"], "published": "false"}), 200
    )
    assert page["items"] == []  # v2: drafts are listed only under /api/users/{id}/posts
    page = body_of(client.get(f"/api/users/{bob['id']}/posts", params={"published": "false"}), 200)
    assert [p["title"] for p in page["items"]] == ["bob draft"]


# --- GET /api/users/{id}/posts -----------------------------------------------------------


def test_list_user_posts_returns_only_that_users_posts_newest_first(client: Client) -> None:
    ada = create_user(client, "ada@example.com", name="Ada")
    bob = create_user(client, "bob@example.com")
    a1 = create_post(client, ada["id"], "a1", published=True)
    create_post(client, bob["id"], "b1")
    a2 = create_post(client, ada["id"], "a2")
    page = body_of(client.get(f"/api/users/{ada['id']}/posts"), 200)
    assert page == {"items": [a2, a1], "next_cursor": None}
    for item in page["items"]:
        assert_post_shape(item)
        assert item["author"] == {"id": ada["id"], "name": "Ada"}


def test_list_user_posts_for_user_without_posts_is_an_empty_page(client: Client) -> None:
    idle = create_user(client, "idle@example.com")
    busy = create_user(client, "busy@example.com")
    create_post(client, busy["id"])
    page = body_of(client.get(f"/api/users/{idle['id']}/posts"), 200)
    assert page == {"items": [], "next_cursor": None}


def test_list_user_posts_for_user_whose_posts_are_all_deleted_is_an_empty_page(
    client: Client,
) -> None:
    author = create_user(client, "purged@example.com")
    post = create_post(client, author["id"])
    assert client.delete(f"/api/posts/{post['id']}").status_code == 204
    page = body_of(client.get(f"/api/users/{author['id']}/posts"), 200)
    assert page == {"items": [], "next_cursor": None}


def test_list_user_posts_for_unknown_user_is_404(client: Client) -> None:
    author = create_user(client, "real@example.com")
    create_post(client, author["id"])
    assert_problem(client.get(f"/api/users/{UNKNOWN_ID}/posts"), 404)


def test_list_user_posts_for_soft_deleted_user_is_404(client: Client) -> None:
    author = create_user(client, "left@example.com")
    create_post(client, author["id"])
    assert client.delete(f"/api/users/{author['id']}").status_code == 204
    assert_problem(client.get(f"/api/users/{author['id']}/posts"), 404)


def test_list_user_posts_for_soft_deleted_user_without_posts_is_404(client: Client) -> None:
    author = create_user(client, "leftempty@example.com")
    assert client.delete(f"/api/users/{author['id']}").status_code == 204
    assert_problem(client.get(f"/api/users/{author['id']}/posts"), 404)


# --- 404s --------------------------------------------------------------------------------

POST_ID_ROUTES = [
    ("GET", "/api/posts/{id}", None),
    ("PATCH", "/api/posts/{id}", {"title": "X"}),
    ("DELETE", "/api/posts/{id}", None),
    ("POST", "/api/posts/{id}/restore", None),
]


@pytest.mark.parametrize(("method", "path", "body"), POST_ID_ROUTES)
def test_unknown_post_id_is_404_problem_on_every_post_id_route(
    client: Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    author = create_user(client, "exists@example.com")
    create_post(client, author["id"])
    assert_problem(client.request(method, path.format(id=UNKNOWN_ID), json=body), 404)


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
