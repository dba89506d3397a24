"""The routes the bad-input tests attack, valid bodies for each, and the checks every bad
request must pass: a problem document, no leaked internals, no stored row changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import httpx
import msgspec
from psycopg import sql

from tests.helpers import DB, PASSWORD, Client

Rows: TypeAlias = dict[str, list[tuple[object, ...]]]

PROBLEM_JSON = "application/problem+json"


# Text that betrays SQL, the driver, a stack trace or a PostgreSQL message.
LEAKS = (
    "asyncpg",
    "psycopg",
    "traceback",
    'file "',
    "postgres",
    "sqlstate",
    "select ",
    "insert into",
    "update users",
    "update posts",
    "delete from",
    "returning ",
    "violates",
    "invalid byte sequence",
    "invalid input syntax",
    "syntax error at",
    "relation ",
    "_yoyo",
)


class Seed(msgspec.Struct, frozen=True):
    """The ids of the live rows every bad request tries (and fails) to touch."""

    user_id: str
    post_id: str


def snapshot(db: DB) -> Rows:
    """Every stored row and the row counts, in a stable order."""
    rows: Rows = {}
    for table in ("users", "posts"):
        rows[table] = db.execute(
            sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(table))
        ).fetchall()
        rows[f"{table}_count"] = db.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchall()
    return rows


@contextmanager
def changes_nothing(db: DB) -> Iterator[None]:
    before = snapshot(db)
    yield
    assert snapshot(db) == before, "a rejected request changed stored rows"


def assert_no_leak(response: httpx.Response) -> None:
    text = response.text.lower()
    for needle in LEAKS:
        assert needle not in text, f"response body leaks {needle!r}: {response.text[:500]}"


def assert_problem(
    response: httpx.Response, status: int, *, field: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 document with `status`; with `field`, a validation error naming it."""
    assert response.status_code == status, response.text[:500]
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, content_type
    assert_no_leak(response)
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("type"), str) and body["type"]
    assert isinstance(body.get("title"), str) and body["title"]
    assert body.get("status") == status
    assert isinstance(body.get("detail"), str) and body["detail"]
    if "errors" in body:
        assert isinstance(body["errors"], list) and body["errors"]
        for error in body["errors"]:
            assert isinstance(error, dict)
            assert isinstance(error.get("field"), str) and error["field"]
            assert isinstance(error.get("message"), str) and error["message"]
    if field is not None:
        named = [e["field"] for e in body.get("errors") or []]
        assert field in named, f"expected errors naming {field!r}, got {body}"
    return body


def send(client: Client, method: str, path: str, body: bytes | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"} if body is not None else {}
    return client.request(method, path, content=body, headers=headers)


BODY_ROUTES: dict[str, tuple[str, str]] = {
    "create_user": ("POST", "/api/users"),
    "update_user": ("PATCH", "/api/users/{user_id}"),
    "create_post": ("POST", "/api/posts"),
    "update_post": ("PATCH", "/api/posts/{post_id}"),
}


def valid_body(route: str, seed: Seed) -> dict[str, object]:
    """A body the route would accept; each case breaks exactly one thing in it."""
    bodies: dict[str, dict[str, object]] = {
        "create_user": {"email": "fresh@example.com", "name": "Fresh", "password": PASSWORD},
        "update_user": {"email": "renamed@example.com", "name": "Renamed"},
        "create_post": {
            "author_id": seed.user_id,
            "title": "Fresh",
            "content": "Body",
            "published": True,
        },
        "update_post": {"title": "Renamed", "content": "New body", "published": False},
    }
    return bodies[route]


def route_of(route: str, seed: Seed) -> tuple[str, str]:
    method, template = BODY_ROUTES[route]
    return method, template.format(user_id=seed.user_id, post_id=seed.post_id)


def encode(body: object) -> bytes:
    return json.dumps(body).encode()
