"""Bad ids in paths and filters, bad cursors, limits, flags and includes, and NUL characters
in a URL get a 400 (or 404) problem naming the parameter, never a 500."""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import DB, Client, body_of
from tests.integration.bad_input.requests import (
    Seed,
    assert_problem,
    changes_nothing,
    encode,
    send,
    valid_body,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


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
    shared_client: Client, shared_db: DB, seed: Seed, url: str
) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(url.format(user_id=seed.user_id)), 400)


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
    shared_db: DB,
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
    shared_client: Client, shared_db: DB, bad: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(f"/api/posts?author_id={quote(bad)}")
        assert_problem(response, 400, field="author_id")


@pytest.mark.parametrize("bad", BAD_AUTHOR_IDS.values(), ids=BAD_AUTHOR_IDS.keys())
def test_invalid_author_id_in_body_is_400_naming_it_not_422(
    shared_client: Client, shared_db: DB, seed: Seed, bad: str
) -> None:
    body = {**valid_body("create_post", seed), "author_id": bad}
    with changes_nothing(shared_db):
        response = send(shared_client, "POST", "/api/posts", encode(body))
        assert_problem(response, 400, field="author_id")


def test_unknown_but_valid_uuid_is_404_problem(shared_client: Client, shared_db: DB) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(f"/api/users/{uuid.uuid4()}"), 404)
        assert_problem(shared_client.get(f"/api/posts/{uuid.uuid4()}"), 404)


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
    # A cursor is exactly 32 base64url characters (24 bytes): one short, one long, padded,
    # or in standard base64's alphabet is a 400.
    "31_characters": "A" * 31,
    "33_characters": "A" * 33,
    "padded": "A" * 32 + "=",
    "standard_base64_alphabet": "+/" * 16,
    "with_a_space": "A" * 16 + " " + "A" * 15,
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, cursor: str
) -> None:
    with changes_nothing(shared_db):
        assert_problem(shared_client.get(_with_query(route, seed, cursor=cursor)), 400)


# Well-formed cursors with timestamps at the edge of what PostgreSQL and Python can hold:
# a page (200) or a 400 are both fine; a 500 is not.
EXTREME_CURSORS: dict[str, str] = {
    # created_at as signed microseconds since 1970: the smallest, zero and the largest.
    "before_year_1": b64(struct.pack(">q16s", -(2**63), uuid.UUID(_SOME_ID).bytes)),
    "epoch": b64(struct.pack(">q16s", 0, uuid.UUID(_SOME_ID).bytes)),
    "after_year_9999": b64(struct.pack(">q16s", 2**63 - 1, uuid.UUID(_SOME_ID).bytes)),
}


@pytest.mark.parametrize("cursor", EXTREME_CURSORS.values(), ids=EXTREME_CURSORS.keys())
@pytest.mark.parametrize("route", LIST_ROUTES.values(), ids=LIST_ROUTES.keys())
def test_every_well_shaped_cursor_is_a_position_even_at_extreme_timestamps(
    shared_client: Client, shared_db: DB, seed: Seed, route: str, cursor: str
) -> None:
    # The OpenAPI document's pattern admits these, so the service must too (rawpost fuzz).
    with changes_nothing(shared_db):
        page = body_of(shared_client.get(_with_query(route, seed, cursor=cursor)), 200)
        assert isinstance(page["items"], list)


BAD_LIMITS = ("0", "101", "-1", "abc", "1.5", "100000000000000000000", "0x10", "true")


@pytest.mark.parametrize("limit", BAD_LIMITS)
@pytest.mark.parametrize("route", LIST_ROUTES.values(), ids=LIST_ROUTES.keys())
def test_limit_outside_1_to_100_or_not_an_integer_is_400_naming_limit(
    shared_client: Client, shared_db: DB, seed: Seed, route: str, limit: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(_with_query(route, seed, limit=limit))
        assert_problem(response, 400, field="limit")


@pytest.mark.parametrize("value", ["maybe", "yes please", "2"])
@pytest.mark.parametrize("route", ["/api/posts", "/api/users/{user_id}/posts"])
def test_published_that_is_not_a_boolean_is_400_naming_published(
    shared_client: Client, shared_db: DB, seed: Seed, route: str, value: str
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(_with_query(route, seed, published=value))
        assert_problem(response, 400, field="published")


def test_include_other_than_posts_is_400_naming_include(
    shared_client: Client, shared_db: DB, seed: Seed
) -> None:
    with changes_nothing(shared_db):
        response = shared_client.get(f"/api/users/{seed.user_id}?include=comments")
        assert_problem(response, 400, field="include")
