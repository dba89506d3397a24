"""Malformed, non-object and oversized bodies, unknown routes and wrong methods get a 4xx
RFC 9457 problem document and change no stored row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import load_settings
from tests.helpers import DB, PASSWORD, TEST_ENV, Client
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

MIB = 1024 * 1024

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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, payload: bytes
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
    shared_client: Client, shared_db: DB, seed: Seed, route: str, payload: object
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        assert_problem(send(shared_client, method, path, encode(payload)), 400)


def _oversized(route: str, seed: Seed, size: int) -> bytes:
    """A well-formed body of the route's shape, padded with JSON whitespace to `size`."""
    body = encode(valid_body(route, seed))
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_body_over_1_mib_is_413_problem_and_stores_nothing(
    shared_client: Client, shared_db: DB, seed: Seed, route: str
) -> None:
    method, path = route_of(route, seed)
    with changes_nothing(shared_db):
        response = send(shared_client, method, path, _oversized(route, seed, MIB + 1))
        assert_problem(response, 413)


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_body_over_1_mib_without_content_length_is_413_problem(
    shared_client: Client, shared_db: DB, seed: Seed, route: str
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


def test_configured_body_limit_is_enforced_at_its_exact_size(db_url: str, db: DB) -> None:
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
    shared_client: Client, shared_db: DB, seed: Seed, path: str
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
    shared_client: Client, shared_db: DB, seed: Seed, method: str, path: str
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
