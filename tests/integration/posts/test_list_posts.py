"""GET /api/posts (with its author and published filters) and GET /api/users/{id}/posts:
newest first, empty pages, 404 for unknown or soft-deleted users."""

from __future__ import annotations

import pytest

from tests.helpers import UNKNOWN_ID, Client, assert_problem, body_of, create_post, create_user
from tests.integration.posts.shapes import assert_post_shape


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
