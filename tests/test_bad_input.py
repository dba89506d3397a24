"""Bad input gets a 4xx RFC 9457 problem document and changes no stored row.

Every case here must leave the database untouched, and each proves it with a snapshot
of every row before and after. That makes one database and one app per module safe to
share, which keeps a few hundred cases fast; cases that store rows use the per-test
`client` and `db` fixtures instead.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx
import msgspec
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from psycopg import sql

from service.app import create_app
from service.config import load_settings
from tests.helpers import PASSWORD, TEST_ENV, bearer, insert_admin, mint_token, scratch_database

Client: TypeAlias = TestClient[Litestar]
Db: TypeAlias = psycopg.Connection[tuple[object, ...]]
Rows: TypeAlias = dict[str, list[tuple[object, ...]]]

MIB = 1024 * 1024
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


@pytest.fixture(scope="module")
def shared_db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A migrated database for this module, dropped at its end."""
    with scratch_database(pg_admin_url, "rawpost_badinput", template=template_db) as url:
        yield url


@pytest.fixture(scope="module")
def shared_db(shared_db_url: str) -> Iterator[Db]:
    with psycopg.connect(shared_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def shared_client(shared_db_url: str) -> Iterator[Client]:
    settings = load_settings(
        environ=TEST_ENV,
        overrides={"database_url": shared_db_url, "pool_min_size": 1, "startup_timeout": 5},
    )
    with TestClient(app=create_app(settings)) as client:
        # Signed in as an admin, who may do anything: every bad input meets the validation
        # of a request that would otherwise be allowed.
        client.headers.update(bearer(mint_token(insert_admin(shared_db_url))))
        yield client


@pytest.fixture(scope="module")
def seed(shared_client: Client) -> Seed:
    user = shared_client.post(
        "/api/users", json={"email": "seed@example.com", "name": "Seed", "password": PASSWORD}
    )
    assert user.status_code == 201, user.text
    post = shared_client.post(
        "/api/posts",
        json={
            "author_id": user.json()["id"],
            "title": "Seed",
            "content": "seed",
            "published": True,
        },
    )
    assert post.status_code == 201, post.text
    return Seed(user_id=user.json()["id"], post_id=post.json()["id"])


# --- helpers -----------------------------------------------------------------------------


def snapshot(db: Db) -> Rows:
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
def changes_nothing(db: Db) -> Iterator[None]:
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


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- the routes --------------------------------------------------------------------------

BODY_ROUTES: dict[str, tuple[str, str]] = {
    "create_user": ("POST", "/api/users"),
    "update_user": ("PATCH", "/api/users/{user_id}"),
    "create_post": ("POST", "/api/posts"),
    "update_post": ("PATCH", "/api/posts/{post_id}"),
}

# Every field each body route accepts; the required ones are the create routes' fields
# without a default.
FIELDS: dict[str, tuple[str, ...]] = {
    "create_user": ("email", "name", "password"),
    "update_user": ("email", "name"),
    "create_post": ("author_id", "title", "content", "published"),
    "update_post": ("title", "content", "published"),
}
# v2: a post's author_id is optional (left out, the post is the caller's).
REQUIRED: dict[str, tuple[str, ...]] = {
    "create_user": ("email", "name", "password"),
    "create_post": ("title", "content"),
}
STRING_FIELDS: dict[str, tuple[str, ...]] = {
    "create_user": ("email", "name", "password"),
    "update_user": ("email", "name"),
    "create_post": ("author_id", "title", "content"),
    "update_post": ("title", "content"),
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


# --- malformed and non-object bodies -----------------------------------------------------

MALFORMED: dict[str, bytes] = {
    "unclosed_object": b'{"name": "x"',
    "bare_word": b"hello",
    "trailing_comma": b'{"name": "x",}',
    "single_quotes": b"{'name': 'x'}",
    "trailing_garbage": b'{"name": "x"} extra',
    "empty_body": b"",
    "invalid_utf8": b'{"name": "\xff\xfe"}',
    "lone_surrogate_escape": b'{"name": "\\ud800"}',
    "nested_100000_deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_body_is_400_problem_and_changes_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, payload: bytes
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, payload), 400)


NOT_AN_OBJECT: dict[str, object] = {
    "empty_array": [],
    "array_of_valid_object": [
        {"email": "fresh@example.com", "name": "Fresh", "password": PASSWORD}
    ],
    "integer": 42,
    "string": "text",
    "boolean": True,
    "null": None,
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("payload", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_json_array_or_scalar_body_is_400_problem_and_changes_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, payload: object
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(payload)), 400)


# --- field-level validation --------------------------------------------------------------

WRONG_TYPES: dict[str, dict[str, object]] = {
    "string": {"integer": 42, "array": ["a@b.io"], "object": {"v": "x"}, "boolean": True},
    "author_id": {"integer": 42, "array": [], "object": {}, "boolean": False},
    "published": {"string_true": "true", "integer_1": 1, "array": [True], "object": {}},
}


def _wrong_type_cases() -> Iterator[Any]:
    for route, fields in FIELDS.items():
        for field in fields:
            kind = field if field in ("author_id", "published") else "string"
            for name, value in WRONG_TYPES[kind].items():
                yield pytest.param(route, field, value, id=f"{route}-{field}-{name}")


@pytest.mark.parametrize(("route", "field", "value"), list(_wrong_type_cases()))
def test_wrong_type_is_400_naming_the_field(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, field: str, value: object
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: value}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


UNKNOWN_FIELDS = ("nickname", "id", "created_at", "deleted_at", "Email")


def _unknown_field_cases() -> Iterator[Any]:
    for route in BODY_ROUTES:
        for field in UNKNOWN_FIELDS:
            yield pytest.param(route, field, id=f"{route}-{field}")
    # Settable at creation only: a PATCH must not quietly move a post to another author.
    yield pytest.param("update_post", "author_id", id="update_post-author_id")
    yield pytest.param("update_user", "posts", id="update_user-posts")
    yield pytest.param("create_post", "author", id="create_post-author")


@pytest.mark.parametrize(("route", "unknown"), list(_unknown_field_cases()))
def test_unknown_field_is_400_naming_it_never_ignored(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, unknown: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), unknown: seed.user_id}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=unknown)


def test_unknown_field_alone_in_patch_is_400_not_an_empty_update(
    shared_client: Client, shared_db: Db, seed: Seed
) -> None:
    with changes_nothing(shared_db):
        response = send(
            shared_client, "PATCH", f"/api/users/{seed.user_id}", encode({"nickname": "x"})
        )
        assert_problem(response, 400, field="nickname")


def test_nul_character_in_a_json_key_is_400_unknown_field(
    shared_client: Client, shared_db: Db, seed: Seed
) -> None:
    body = encode({"email": "fresh@example.com", "name": "Fresh", "na\u0000me": "x"})
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, "POST", "/api/users", body), 400, field="na\u0000me")


def _missing_field_cases() -> Iterator[Any]:
    for route, fields in REQUIRED.items():
        for field in fields:
            yield pytest.param(route, field, id=f"{route}-{field}")


@pytest.mark.parametrize(("route", "field"), list(_missing_field_cases()))
def test_missing_required_field_is_400_naming_it(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, field: str
) -> None:
    method, path = route_of(route, seed)
    body = {k: v for k, v in valid_body(route, seed).items() if k != field}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


@pytest.mark.parametrize("route", ["create_user", "create_post"])
def test_empty_object_on_create_is_400(
    shared_client: Client, shared_db: Db, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, b"{}"), 400)


@pytest.mark.parametrize("route", ["update_user", "update_post"])
def test_empty_patch_body_is_400_and_changes_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, b"{}"), 400)


def _every_field() -> Iterator[Any]:
    for route, fields in FIELDS.items():
        for field in fields:
            yield pytest.param(route, field, id=f"{route}-{field}")


@pytest.mark.parametrize(("route", "field"), list(_every_field()))
def test_null_value_is_400_naming_the_field(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, field: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: None}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


OUT_OF_CONSTRAINTS: dict[str, dict[str, str]] = {
    "email": {
        "empty": "",
        "too_short": "a@",
        "too_long_255": "a" * 64 + "@" + "d" * 186 + ".com",
        "no_at_sign": "not-an-email",
        "two_at_signs": "a@b@example.com",
        "nothing_before_at": "@example.com",
        "nothing_after_at": "ada@",
        "space_inside": "ada lovelace@example.com",
    },
    "name": {
        "empty": "",
        "blank_spaces": "     ",
        "blank_whitespace_mix": " \t\n\r ",
        "101_chars": "n" * 101,
        "101_chars_after_trimming": "  " + "n" * 101 + "  ",
    },
    "title": {"empty": "", "201_chars": "t" * 201},
    "content": {"100001_chars": "c" * 100_001},
    "password": {"empty": "", "11_chars": "p" * 11, "129_chars": "p" * 129},
}


def _constraint_cases() -> Iterator[Any]:
    for route, fields in STRING_FIELDS.items():
        for field in fields:
            for name, value in OUT_OF_CONSTRAINTS.get(field, {}).items():
                yield pytest.param(route, field, value, id=f"{route}-{field}-{name}")


@pytest.mark.parametrize(("route", "field", "value"), list(_constraint_cases()))
def test_value_outside_its_constraints_is_400_naming_the_field(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, field: str, value: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: value}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


def test_values_at_their_limits_are_accepted(client: Client, db: Db) -> None:
    """The bounds the 400 cases probe sit exactly where the contract puts them."""
    email = "a" * 64 + "@" + "d" * 185 + ".com"
    assert len(email) == 254
    user = client.post(
        "/api/users", json={"email": email, "name": "  " + "n" * 100 + "\t", "password": PASSWORD}
    )
    assert user.status_code == 201, user.text
    assert user.json()["name"] == "n" * 100
    short = client.post("/api/users", json={"email": "a@b", "name": "N", "password": PASSWORD})
    assert short.status_code == 201, short.text
    post = client.post(
        "/api/posts",
        json={"author_id": user.json()["id"], "title": "t" * 200, "content": "c" * 100_000},
    )
    assert post.status_code == 201, post.text
    empty = client.post(
        "/api/posts", json={"author_id": user.json()["id"], "title": "t", "content": ""}
    )
    assert empty.status_code == 201, empty.text
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (2,)


# --- NUL characters ----------------------------------------------------------------------

NUL_VALUES: dict[str, dict[str, str]] = {
    "email": {"only_nul": "\u0000", "in_local_part": "a\u0000a@example.com"},
    "name": {"only_nul": "\u0000", "inside": "Ada\u0000Lovelace", "at_end": "Ada\u0000"},
    "title": {"only_nul": "\u0000", "inside": "Ti\u0000tle", "at_end": "Title\u0000"},
    "content": {"only_nul": "\u0000", "inside": "con\u0000tent", "at_end": "content\u0000"},
    "author_id": {"only_nul": "\u0000", "after_uuid": "{user_id}\u0000"},
    "password": {"inside": "twelve chars\u0000 and more", "at_end": "correct horse\u0000"},
}


def _nul_cases() -> Iterator[Any]:
    for route, fields in STRING_FIELDS.items():
        for field in fields:
            for name, value in NUL_VALUES[field].items():
                yield pytest.param(route, field, value, id=f"{route}-{field}-{name}")


@pytest.mark.parametrize(("route", "field", "value"), list(_nul_cases()))
def test_nul_character_in_any_string_field_is_400_and_stores_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, field: str, value: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: value.format(user_id=seed.user_id)}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


NUL_IN_URL: dict[str, str] = {
    "user_path": "/api/users/%00",
    "post_path": "/api/posts/%00",
    "user_path_after_uuid": "/api/users/{user_id}%00",
    "email_filter": "/api/users?email=a%00a@example.com",
    "users_cursor": "/api/users?cursor=%00",
    "posts_cursor": "/api/posts?cursor=abc%00def",
    "user_posts_cursor": "/api/users/{user_id}/posts?cursor=%00",
    "author_id_filter": "/api/posts?author_id=%00",
    "limit": "/api/posts?limit=1%00",
    "published": "/api/posts?published=true%00",
}


@pytest.mark.parametrize("url", NUL_IN_URL.values(), ids=NUL_IN_URL.keys())
def test_nul_character_in_path_or_query_is_400(
    shared_client: Client, shared_db: Db, seed: Seed, url: str
) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(url.format(user_id=seed.user_id)), 400)


# --- ids in paths and filters ------------------------------------------------------------

ID_ROUTES: dict[str, tuple[str, str, str]] = {
    "get_user": ("GET", "/api/users/{}", "user_id"),
    "update_user": ("PATCH", "/api/users/{}", "user_id"),
    "delete_user": ("DELETE", "/api/users/{}", "user_id"),
    "restore_user": ("POST", "/api/users/{}/restore", "user_id"),
    "list_user_posts": ("GET", "/api/users/{}/posts", "user_id"),
    "get_post": ("GET", "/api/posts/{}", "post_id"),
    "update_post": ("PATCH", "/api/posts/{}", "post_id"),
    "delete_post": ("DELETE", "/api/posts/{}", "post_id"),
    "restore_post": ("POST", "/api/posts/{}/restore", "post_id"),
}
BAD_UUIDS: dict[str, str] = {
    "word": "not-a-uuid",
    "integer": "123",
    "non_hex_digit": "0000000g-0000-4000-8000-000000000000",
    "one_digit_too_many": "00000000-0000-4000-8000-0000000000000",
    "one_digit_short": "00000000-0000-4000-8000-00000000000",
    "null_word": "null",
    "space": "%20",
}


def _bad_path_id_cases() -> Iterator[Any]:
    for name, route in ID_ROUTES.items():
        for bad_name, bad in BAD_UUIDS.items():
            yield pytest.param(*route, bad, id=f"{name}-{bad_name}")


@pytest.mark.parametrize(("method", "template", "param", "bad_id"), list(_bad_path_id_cases()))
def test_invalid_uuid_in_path_is_400_naming_the_parameter_not_404(
    shared_client: Client,
    shared_db: Db,
    method: str,
    template: str,
    param: str,
    bad_id: str,
) -> None:
    path = template.format(bad_id)
    # A valid body for the PATCH routes, so the id is the only thing wrong.
    body = None
    if method == "PATCH":
        body = encode({"name": "Renamed"} if param == "user_id" else {"title": "Renamed"})
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, body), 400, field=param)


BAD_AUTHOR_IDS: dict[str, str] = {
    "word": "nope",
    "empty": "",
    "integer_text": "123",
    "uuid_plus_digit": "00000000-0000-4000-8000-0000000000000",
    "non_hex_digit": "0000000g-0000-4000-8000-000000000000",
}


@pytest.mark.parametrize("bad", BAD_AUTHOR_IDS.values(), ids=BAD_AUTHOR_IDS.keys())
def test_invalid_author_id_in_query_is_400_naming_it(
    shared_client: Client, shared_db: Db, bad: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(f"/api/posts?author_id={quote(bad)}")
        assert_problem(response, 400, field="author_id")


@pytest.mark.parametrize("bad", BAD_AUTHOR_IDS.values(), ids=BAD_AUTHOR_IDS.keys())
def test_invalid_author_id_in_body_is_400_naming_it_not_422(
    shared_client: Client, shared_db: Db, seed: Seed, bad: str
) -> None:
    body = {**valid_body("create_post", seed), "author_id": bad}
    with changes_nothing(shared_db):
        response = send(shared_client, "POST", "/api/posts", encode(body))
        assert_problem(response, 400, field="author_id")


def test_unknown_but_valid_uuid_is_404_problem(shared_client: Client, shared_db: Db) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(f"/api/users/{uuid.uuid4()}"), 404)
        assert_problem(shared_client.get(f"/api/posts/{uuid.uuid4()}"), 404)


# --- list parameters ---------------------------------------------------------------------

LIST_ROUTES: dict[str, str] = {
    "users": "/api/users",
    "users_by_email": "/api/users?email=seed@example.com",
    "posts": "/api/posts",
    "posts_by_author": "/api/posts?author_id={user_id}",
    "user_posts": "/api/users/{user_id}/posts",
}

_SOME_ID = "9a4f6c1e-3b8d-4f2a-9c7e-5d1b2a3c4e5f"
FORGED_CURSORS: dict[str, str] = {
    "random_text": "not a cursor at all",
    "random_token": "zzz",
    "not_base64_chars": "!!!!",
    "too_long": "A" * 500,
    "only_padding": "====",
    "base64_of_binary_garbage": b64(b"\x00\xff\xfe garbage \x80\x81"),
    "base64_of_text": b64(b"hello world"),
    "base64_of_json_object": b64(
        json.dumps({"created_at": "2026-01-01T00:00:00Z", "id": _SOME_ID}).encode()
    ),
    "base64_of_json_null": b64(b"null"),
    "base64_of_json_string": b64(b'"2026-01-01T00:00:00Z"'),
    "base64_of_empty_array": b64(b"[]"),
    "base64_of_numbers": b64(b"[1, 2]"),
    "base64_of_one_element": b64(b'["2026-01-01T00:00:00Z"]'),
    "base64_of_three_elements": b64(json.dumps(["2026-01-01T00:00:00Z", _SOME_ID, 1]).encode()),
    "base64_with_bad_timestamp": b64(json.dumps(["yesterday", _SOME_ID]).encode()),
    "base64_with_bad_uuid": b64(b'["2026-01-01T00:00:00Z", "not-a-uuid"]'),
    "base64_with_swapped_fields": b64(json.dumps([_SOME_ID, "2026-01-01T00:00:00Z"]).encode()),
    "base64_with_naive_timestamp": b64(json.dumps(["2026-01-01T00:00:00", _SOME_ID]).encode()),
    "base64_with_nul_in_timestamp": b64(
        json.dumps(["2026-01-01T00:00:00Z\u0000", _SOME_ID]).encode()
    ),
}


def _cursor_cases() -> Iterator[Any]:
    for route_name, route in LIST_ROUTES.items():
        for cursor_name, cursor in FORGED_CURSORS.items():
            yield pytest.param(route, cursor, id=f"{route_name}-{cursor_name}")


def _with_query(route: str, seed: Seed, **params: str) -> str:
    path = route.format(user_id=seed.user_id)
    joiner = "&" if "?" in path else "?"
    return path + joiner + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


@pytest.mark.parametrize(("route", "cursor"), list(_cursor_cases()))
def test_forged_or_corrupt_cursor_is_400_never_500(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, cursor: str
) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(_with_query(route, seed, cursor=cursor)), 400)


# Well-formed cursors with timestamps at the edge of what PostgreSQL and Python can hold:
# a page (200) or a 400 are both fine; a 500 is not.
EXTREME_CURSORS: dict[str, str] = {
    "year_1_east_of_utc": b64(json.dumps(["0001-01-01T00:00:00+14:00", _SOME_ID]).encode()),
    "year_9999_west_of_utc": b64(json.dumps(["9999-12-31T23:59:59-14:00", _SOME_ID]).encode()),
    "far_future": b64(json.dumps(["9999-12-31T23:59:59Z", _SOME_ID]).encode()),
}


@pytest.mark.parametrize("cursor", EXTREME_CURSORS.values(), ids=EXTREME_CURSORS.keys())
@pytest.mark.parametrize("route", LIST_ROUTES.values(), ids=LIST_ROUTES.keys())
def test_well_formed_cursor_with_extreme_timestamp_is_never_500(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, cursor: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(_with_query(route, seed, cursor=cursor))
        if response.status_code != 200:
            assert_problem(response, 400)


BAD_LIMITS = ("0", "101", "-1", "abc", "1.5", "100000000000000000000", "0x10", "true")


@pytest.mark.parametrize("limit", BAD_LIMITS)
@pytest.mark.parametrize("route", LIST_ROUTES.values(), ids=LIST_ROUTES.keys())
def test_limit_outside_1_to_100_or_not_an_integer_is_400_naming_limit(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, limit: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(_with_query(route, seed, limit=limit))
        assert_problem(response, 400, field="limit")


@pytest.mark.parametrize("value", ["maybe", "yes please", "2"])
@pytest.mark.parametrize("route", ["/api/posts", "/api/users/{user_id}/posts"])
def test_published_that_is_not_a_boolean_is_400_naming_published(
    shared_client: Client, shared_db: Db, seed: Seed, route: str, value: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(_with_query(route, seed, published=value))
        assert_problem(response, 400, field="published")


def test_include_other_than_posts_is_400_naming_include(
    shared_client: Client, shared_db: Db, seed: Seed
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(f"/api/users/{seed.user_id}?include=comments")
        assert_problem(response, 400, field="include")


# --- body size ---------------------------------------------------------------------------


def _oversized(route: str, seed: Seed, size: int) -> bytes:
    """A well-formed body of the route's shape, padded with JSON whitespace to `size`."""
    body = encode(valid_body(route, seed))
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_body_over_1_mib_is_413_problem_and_stores_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        response = send(shared_client, method, path, _oversized(route, seed, MIB + 1))
        assert_problem(response, 413)


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_body_over_1_mib_without_content_length_is_413_problem(
    shared_client: Client, shared_db: Db, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    payload = _oversized(route, seed, MIB + 1)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    with changes_nothing(shared_db):
        response = shared_client.request(
            method, path, content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)


def test_configured_body_limit_is_enforced_at_its_exact_size(db_url: str, db: Db) -> None:
    """body_limit=1000: a 1001-byte body is a 413; a 1000-byte one is served."""
    settings = load_settings(
        environ=TEST_ENV, overrides={"database_url": db_url, "body_limit": 1000}
    )
    with TestClient(app=create_app(settings)) as small:
        body = encode({"email": "limit@example.com", "name": "Limit", "password": PASSWORD})
        over = body[:-1] + b" " * (1001 - len(body)) + b"}"
        at_limit = body[:-1] + b" " * (1000 - len(body)) + b"}"
        assert (len(over), len(at_limit)) == (1001, 1000)
        with changes_nothing(db):
            assert_problem(send(small, "POST", "/api/users", over), 413)
            chunked = small.post(
                "/api/users",
                content=iter([over[:500], over[500:]]),
                headers={"content-type": "application/json"},
            )
            assert_problem(chunked, 413)
        created = send(small, "POST", "/api/users", at_limit)
        assert created.status_code == 201, created.text
        assert db.execute("SELECT count(*) FROM users WHERE role = 'user'").fetchone() == (1,)


# --- routing -----------------------------------------------------------------------------

UNKNOWN_ROUTES = (
    "/nope",
    "/api",
    "/api/user",
    "/api/users/{user_id}/comments",
    "/api/posts/{post_id}/restore/again",
    "/health",
    "/api/users/{user_id}/posts/{post_id}",
)


@pytest.mark.parametrize("path", UNKNOWN_ROUTES)
def test_unknown_route_is_404_problem(
    shared_client: Client, shared_db: Db, seed: Seed, path: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(path.format(user_id=seed.user_id, post_id=seed.post_id))
        assert_problem(response, 404)


WRONG_METHODS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("PUT", "/api/users", frozenset({"GET", "POST"})),
    ("DELETE", "/api/users", frozenset({"GET", "POST"})),
    ("PATCH", "/api/posts", frozenset({"GET", "POST"})),
    ("PUT", "/api/users/{user_id}", frozenset({"GET", "PATCH", "DELETE"})),
    ("POST", "/api/posts/{post_id}", frozenset({"GET", "PATCH", "DELETE"})),
    ("GET", "/api/users/{user_id}/restore", frozenset({"POST"})),
    ("DELETE", "/api/users/{user_id}/posts", frozenset({"GET"})),
    ("POST", "/health/live", frozenset({"GET"})),
    ("DELETE", "/metrics", frozenset({"GET"})),
)


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p, _ in WRONG_METHODS],
    ids=[f"{m} {p}" for m, p, _ in WRONG_METHODS],
)
def test_wrong_method_is_405_problem_and_changes_nothing(
    shared_client: Client, shared_db: Db, seed: Seed, method: str, path: str
) -> None:
    url = path.format(user_id=seed.user_id, post_id=seed.post_id)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, url), 405)


@pytest.mark.parametrize(
    ("method", "path", "allowed"), WRONG_METHODS, ids=[f"{m} {p}" for m, p, _ in WRONG_METHODS]
)
def test_wrong_method_405_lists_the_allowed_methods_in_allow_header(
    shared_client: Client, seed: Seed, method: str, path: str, allowed: frozenset[str]
) -> None:
    """RFC 9110 15.5.6: a 405 response MUST carry Allow."""
    url = path.format(user_id=seed.user_id, post_id=seed.post_id)
    response = send(shared_client, method, url)
    assert response.status_code == 405
    listed = {m.strip().upper() for m in response.headers.get("allow", "").split(",") if m.strip()}
    assert allowed <= listed, f"Allow: {response.headers.get('allow')!r}"
    assert method not in listed
