"""Bad fields in a body (wrong type, unknown, missing, null, out of range, NUL characters)
get a 400 problem naming the field and change no stored row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import DB, PASSWORD, Client
from tests.integration.bad_input.requests import (
    BODY_ROUTES,
    Seed,
    assert_problem,
    changes_nothing,
    encode,
    route_of,
    send,
    valid_body,
)

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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, field: str, value: object
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, unknown: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), unknown: seed.user_id}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=unknown)


def test_unknown_field_alone_in_patch_is_400_not_an_empty_update(
    shared_client: Client, shared_db: DB, seed: Seed
) -> None:
    with changes_nothing(shared_db):
        response = send(
            shared_client, "PATCH", f"/api/users/{seed.user_id}", encode({"nickname": "x"})
        )
        assert_problem(response, 400, field="nickname")


def test_nul_character_in_a_json_key_is_400_unknown_field(
    shared_client: Client, shared_db: DB, seed: Seed
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, field: str
) -> None:
    method, path = route_of(route, seed)
    body = {k: v for k, v in valid_body(route, seed).items() if k != field}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


@pytest.mark.parametrize("route", ["create_user", "create_post"])
def test_empty_object_on_create_is_400(
    shared_client: Client, shared_db: DB, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, b"{}"), 400)


@pytest.mark.parametrize("route", ["update_user", "update_post"])
def test_empty_patch_body_is_400_and_changes_nothing(
    shared_client: Client, shared_db: DB, seed: Seed, route: str
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, field: str
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, field: str, value: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: value}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)


def test_values_at_their_limits_are_accepted(client: Client, db: DB) -> None:
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, field: str, value: str
) -> None:
    method, path = route_of(route, seed)
    body = {**valid_body(route, seed), field: value.format(user_id=seed.user_id)}
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(body)), 400, field=field)
