"""What a post looks like on the wire, and the routes that take a post id."""

from __future__ import annotations

from typing import Any

from tests.helpers import UUID_TEXT, parse_ts

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


def assert_post_shape(post: dict[str, Any]) -> None:
    assert set(post) == POST_KEYS, post
    assert UUID_TEXT.match(post["id"]), post["id"]
    assert set(post["author"]) == {"id", "name"}
    assert post["author"]["id"] == post["author_id"]
    assert isinstance(post["published"], bool)
    parse_ts(post["created_at"])
    parse_ts(post["updated_at"])


POST_ID_ROUTES = [
    ("GET", "/api/posts/{id}", None),
    ("PATCH", "/api/posts/{id}", {"title": "X"}),
    ("DELETE", "/api/posts/{id}", None),
    ("POST", "/api/posts/{id}/restore", None),
]
