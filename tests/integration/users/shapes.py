"""What a user looks like on the wire, and the routes that take a user id."""

from __future__ import annotations

from typing import Any

from tests.helpers import RFC3339_UTC, UUID_TEXT

USER_KEYS = {"id", "email", "name", "created_at", "updated_at"}


def assert_wire_shape(value: object) -> None:
    """Everywhere in a body: no `deleted_at`, every timestamp RFC 3339 UTC ending in `Z`."""
    if isinstance(value, dict):
        assert "deleted_at" not in value, value
        for key, item in value.items():
            if key in ("created_at", "updated_at"):
                assert isinstance(item, str) and RFC3339_UTC.match(item), (key, item)
            assert_wire_shape(item)
    elif isinstance(value, list):
        for item in value:
            assert_wire_shape(item)


def assert_user_shape(user: dict[str, Any]) -> None:
    assert set(user) == USER_KEYS, user
    assert UUID_TEXT.match(user["id"]), user["id"]
    assert_wire_shape(user)


USER_ID_ROUTES = [
    ("GET", "/api/users/{id}", None),
    ("GET", "/api/users/{id}?include=posts", None),
    ("PATCH", "/api/users/{id}", {"name": "X"}),
    ("DELETE", "/api/users/{id}", None),
    ("POST", "/api/users/{id}/restore", None),
    ("GET", "/api/users/{id}/posts", None),
]
