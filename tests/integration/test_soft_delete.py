"""Soft delete: deleted rows (and a deleted user's posts) vanish from every read, keep their
data in the database, and come back on restore."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import pytest

from tests.helpers import (
    DB,
    Client,
    assert_problem,
    body_of,
    create_post,
    create_user,
    without_admin,
)


def delete(client: Client, path: str) -> None:
    response = client.delete(path)
    assert response.status_code == 204, response.text


def restore(client: Client, path: str) -> dict[str, Any]:
    return body_of(client.post(f"{path}/restore"), 200)


def page_ids(client: Client, path: str, params: dict[str, str] | None = None) -> set[str]:
    page = body_of(client.get(path, params={"limit": "100", **(params or {})}), 200)
    assert page["next_cursor"] is None
    return {item["id"] for item in without_admin(page["items"])}


# --- every read a post can appear in ------------------------------------------------------
# Each returns the ids among `post_ids` that the read shows for posts by `author_id`.

Read: TypeAlias = Callable[[Client, str, list[str]], set[str]]


def read_posts_list(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    return page_ids(client, "/api/posts") & set(post_ids)


def read_posts_list_published(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    return page_ids(client, "/api/posts", {"published": "true"}) & set(post_ids)


def read_posts_list_by_author(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    return page_ids(client, "/api/posts", {"author_id": author_id}) & set(post_ids)


def read_post_by_id(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    found = set()
    for post_id in post_ids:
        response = client.get(f"/api/posts/{post_id}")
        if response.status_code == 200:
            assert response.json()["id"] == post_id
            found.add(post_id)
        else:
            assert_problem(response, 404)
    return found


def read_user_posts(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    response = client.get(f"/api/users/{author_id}/posts", params={"limit": "100"})
    if response.status_code == 404:
        assert_problem(response, 404)
        return set()
    return {item["id"] for item in body_of(response, 200)["items"]} & set(post_ids)


def read_include_posts(client: Client, author_id: str, post_ids: list[str]) -> set[str]:
    response = client.get(f"/api/users/{author_id}", params={"include": "posts"})
    if response.status_code == 404:
        assert_problem(response, 404)
        return set()
    return {item["id"] for item in body_of(response, 200)["posts"]} & set(post_ids)


READS: dict[str, Read] = {
    "GET /api/posts": read_posts_list,
    "GET /api/posts?published=true": read_posts_list_published,
    "GET /api/posts?author_id": read_posts_list_by_author,
    "GET /api/posts/{id}": read_post_by_id,
    "GET /api/users/{id}/posts": read_user_posts,
    "GET /api/users/{id}?include=posts": read_include_posts,
}


# --- a deleted user's posts ---------------------------------------------------------------


@pytest.mark.parametrize("read_name", list(READS))
def test_deleted_users_posts_vanish_from_read_and_return_on_restore(
    client: Client, read_name: str
) -> None:
    read = READS[read_name]
    victim = create_user(client, "victim@example.com")
    bystander = create_user(client, "bystander@example.com")
    victim_posts = [create_post(client, victim["id"], f"v{i}")["id"] for i in range(3)]
    other_posts = [create_post(client, bystander["id"], f"o{i}")["id"] for i in range(2)]

    assert read(client, victim["id"], victim_posts) == set(victim_posts)
    delete(client, f"/api/users/{victim['id']}")
    assert read(client, victim["id"], victim_posts) == set()
    # Someone else's posts are untouched.
    assert read(client, bystander["id"], other_posts) == set(other_posts)

    restore(client, f"/api/users/{victim['id']}")
    assert read(client, victim["id"], victim_posts) == set(victim_posts)


def test_deleted_users_posts_come_back_unchanged_on_restore(client: Client) -> None:
    user = create_user(client, "same@example.com", name="Same")
    posts = [create_post(client, user["id"], f"p{i}") for i in range(3)]
    delete(client, f"/api/users/{user['id']}")
    restore(client, f"/api/users/{user['id']}")
    for post in posts:
        assert body_of(client.get(f"/api/posts/{post['id']}"), 200) == post


def test_post_deleted_before_its_user_stays_deleted_after_the_user_is_restored(
    client: Client,
) -> None:
    user = create_user(client, "mixed@example.com")
    kept = create_post(client, user["id"], "kept")
    dropped = create_post(client, user["id"], "dropped")
    delete(client, f"/api/posts/{dropped['id']}")
    delete(client, f"/api/users/{user['id']}")
    restore(client, f"/api/users/{user['id']}")
    assert page_ids(client, "/api/posts") == {kept["id"]}
    assert_problem(client.get(f"/api/posts/{dropped['id']}"), 404)
    assert page_ids(client, f"/api/users/{user['id']}/posts") == {kept["id"]}


def test_posts_of_a_deleted_user_cannot_be_changed_deleted_or_restored(
    client: Client, db: DB
) -> None:
    user = create_user(client, "frozen@example.com")
    post = create_post(client, user["id"], "frozen")
    delete(client, f"/api/users/{user['id']}")
    assert_problem(client.patch(f"/api/posts/{post['id']}", json={"title": "x"}), 404)
    assert_problem(client.delete(f"/api/posts/{post['id']}"), 404)
    assert_problem(client.post(f"/api/posts/{post['id']}/restore"), 404)
    row = db.execute("SELECT title, deleted_at FROM posts WHERE id = %s", (post["id"],)).fetchone()
    assert row == ("frozen", None)


def test_new_user_reusing_a_deleted_users_email_does_not_inherit_its_posts(
    client: Client,
) -> None:
    old = create_user(client, "reuse@example.com")
    old_post = create_post(client, old["id"], "old")
    delete(client, f"/api/users/{old['id']}")
    new = create_user(client, "reuse@example.com")
    assert body_of(client.get(f"/api/users/{new['id']}?include=posts"), 200)["posts"] == []
    assert page_ids(client, f"/api/users/{new['id']}/posts") == set()
    assert_problem(client.get(f"/api/posts/{old_post['id']}"), 404)


# --- a deleted post -----------------------------------------------------------------------


@pytest.mark.parametrize("read_name", list(READS))
def test_deleted_post_vanishes_from_read_and_returns_on_restore(
    client: Client, read_name: str
) -> None:
    read = READS[read_name]
    user = create_user(client, "poster@example.com")
    posts = [create_post(client, user["id"], f"p{i}")["id"] for i in range(3)]
    target = posts[1]

    assert read(client, user["id"], posts) == set(posts)
    delete(client, f"/api/posts/{target}")
    assert read(client, user["id"], posts) == set(posts) - {target}
    restore(client, f"/api/posts/{target}")
    assert read(client, user["id"], posts) == set(posts)


def test_deleted_post_comes_back_with_its_data_on_restore(client: Client) -> None:
    user = create_user(client, "data@example.com", name="Data")
    post = create_post(client, user["id"], "keep my data", published=False)
    delete(client, f"/api/posts/{post['id']}")
    restored = restore(client, f"/api/posts/{post['id']}")
    for key in ("id", "author_id", "title", "content", "published", "created_at", "author"):
        assert restored[key] == post[key], key


# --- deleted users ------------------------------------------------------------------------


def test_deleted_user_vanishes_from_users_list_and_email_filter_and_returns_on_restore(
    client: Client,
) -> None:
    user = create_user(client, "listed@example.com")
    other = create_user(client, "other@example.com")
    delete(client, f"/api/users/{user['id']}")
    assert page_ids(client, "/api/users") == {other["id"]}
    assert page_ids(client, "/api/users", {"email": "listed@example.com"}) == set()
    assert_problem(client.get(f"/api/users/{user['id']}"), 404)
    restore(client, f"/api/users/{user['id']}")
    assert page_ids(client, "/api/users") == {user["id"], other["id"]}
    assert page_ids(client, "/api/users", {"email": "LISTED@example.com"}) == {user["id"]}
    assert body_of(client.get(f"/api/users/{user['id']}"), 200)["id"] == user["id"]


def test_deleted_user_cannot_be_patched(client: Client, db: DB) -> None:
    user = create_user(client, "nopatch@example.com", name="Before")
    delete(client, f"/api/users/{user['id']}")
    assert_problem(client.patch(f"/api/users/{user['id']}", json={"name": "After"}), 404)
    row = db.execute("SELECT name FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == ("Before",)


# --- deleting twice -----------------------------------------------------------------------


def test_deleting_a_user_twice_gives_404_the_second_time(client: Client) -> None:
    user = create_user(client, "twice@example.com")
    delete(client, f"/api/users/{user['id']}")
    assert_problem(client.delete(f"/api/users/{user['id']}"), 404)


def test_deleting_a_post_twice_gives_404_the_second_time(client: Client) -> None:
    user = create_user(client, "twicepost@example.com")
    post = create_post(client, user["id"], "twice")
    delete(client, f"/api/posts/{post['id']}")
    assert_problem(client.delete(f"/api/posts/{post['id']}"), 404)


def test_delete_restore_delete_cycle_works_for_users_and_posts(client: Client) -> None:
    user = create_user(client, "cycle@example.com")
    post = create_post(client, user["id"], "cycle")
    for _ in range(2):
        delete(client, f"/api/posts/{post['id']}")
        restore(client, f"/api/posts/{post['id']}")
        delete(client, f"/api/users/{user['id']}")
        restore(client, f"/api/users/{user['id']}")
    assert body_of(client.get(f"/api/posts/{post['id']}"), 200)["id"] == post["id"]


# --- the data stays in the database -------------------------------------------------------


def test_deleted_user_keeps_its_row_and_data_in_the_database(client: Client, db: DB) -> None:
    user = create_user(client, "Kept@Example.com", name="Kept")
    post = create_post(client, user["id"], "kept post")
    before = db.execute(
        "SELECT email, name, created_at FROM users WHERE id = %s", (user["id"],)
    ).fetchone()
    delete(client, f"/api/users/{user['id']}")
    row = db.execute(
        "SELECT email, name, created_at, deleted_at FROM users WHERE id = %s", (user["id"],)
    ).fetchone()
    assert row is not None
    assert before is not None
    assert row[:3] == before
    assert row[0] == "Kept@Example.com"
    assert row[3] is not None
    # The user's posts are still stored, with their data.
    post_row = db.execute(
        "SELECT author_id::text, title FROM posts WHERE id = %s", (post["id"],)
    ).fetchone()
    assert post_row == (user["id"], "kept post")

    restore(client, f"/api/users/{user['id']}")
    row = db.execute("SELECT deleted_at FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == (None,)


def test_deleted_post_keeps_its_row_and_data_in_the_database(client: Client, db: DB) -> None:
    user = create_user(client, "postdata@example.com")
    post = create_post(client, user["id"], "stored title", published=True)
    query = (
        "SELECT author_id::text, title, content, published, created_at, deleted_at"
        " FROM posts WHERE id = %s"
    )
    before = db.execute(query, (post["id"],)).fetchone()
    assert before is not None
    assert before[5] is None
    delete(client, f"/api/posts/{post['id']}")
    after = db.execute(query, (post["id"],)).fetchone()
    assert after is not None
    assert after[:5] == before[:5]
    assert after[5] is not None

    restore(client, f"/api/posts/{post['id']}")
    row = db.execute("SELECT deleted_at FROM posts WHERE id = %s", (post["id"],)).fetchone()
    assert row == (None,)


def test_soft_delete_never_removes_rows(client: Client, db: DB) -> None:
    users = [create_user(client, f"n{i}@example.com") for i in range(3)]
    posts = [create_post(client, u["id"], "p") for u in users]
    delete(client, f"/api/posts/{posts[0]['id']}")
    delete(client, f"/api/users/{users[1]['id']}")
    delete(client, f"/api/users/{users[2]['id']}")
    assert db.execute("SELECT count(*) FROM users WHERE role = 'user'").fetchone() == (3,)
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (3,)
    assert page_ids(client, "/api/posts") == set()
    assert page_ids(client, "/api/users") == {users[0]["id"]}
