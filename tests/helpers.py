"""Assertions, aliases and scratch databases shared by the tests."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeAlias

import httpx
import jwt
import psycopg
from litestar import Litestar
from litestar.testing import TestClient
from yoyo import get_backend, read_migrations

from rawpost_devtools import free_port as free_port  # one definition, tests import it here
from service import migrate
from service.embedded import create_database, drop_database, with_database
from service.resources import MIGRATIONS_DIR

Client: TypeAlias = TestClient[Litestar]

# The signing secret every test app and test server uses (never an example value).
TEST_JWT_SECRET = "rawpost-tests-signing-secret-0123456789abcdef"
TEST_METRICS_TOKEN = "rawpost-tests-metrics-scraper-token"
TEST_ENV = {
    "RAWPOST_JWT_SECRET": TEST_JWT_SECRET,
    "RAWPOST_METRICS_TOKEN": TEST_METRICS_TOKEN,
    # No test trips a rate limit by accident; tests/*/test_rate_limits.py set their own.
    "RAWPOST_RATE_LIMIT": "off",
    "RAWPOST_LOGIN_RATE_LIMIT": "off",
    "RAWPOST_SIGNUP_RATE_LIMIT": "off",
}
# What a Prometheus scraper sends to GET /metrics.
SCRAPER = {"Authorization": f"Bearer {TEST_METRICS_TOKEN}"}
# A password every test user signs up with (12..128 characters).
PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "admin@rawpost.test"
DB: TypeAlias = psycopg.Connection[tuple[object, ...]]

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A well-formed id that no row has.
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def body_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON body, after checking the status."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


def parse_ts(value: str) -> datetime:
    """An RFC 3339 UTC timestamp ending in `Z`, parsed."""
    assert RFC3339_UTC.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A new database (empty, or a copy of `template`) for the block, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create_database(admin_url, name, template=template)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


def migrate_to(url: str, target: str) -> None:
    """Apply the migrations up to and including `target`, with yoyo directly."""
    backend = get_backend(migrate.yoyo_url(url))
    try:
        migrations: Any = read_migrations(str(MIGRATIONS_DIR))
        ids = [m.id for m in migrations]
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations[: ids.index(target) + 1]))
    finally:
        backend.connection.close()


def mint_token(
    user_id: object,
    *,
    secret: str = TEST_JWT_SECRET,
    ttl: int = 900,
    issued_at: int | None = None,
    jti: str | None = None,
    **claims: object,
) -> str:
    """An access token as operators and load tests mint it: the four claims, HS256."""
    now = int(time.time()) if issued_at is None else issued_at
    payload: dict[str, object] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + ttl,
        "jti": jti or uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def insert_admin(db_url: str, email: str = ADMIN_EMAIL) -> str:
    """An admin straight in the database (as `rawpost users promote` would make one), dated
    long ago so that it sorts after every user a test creates."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, name, role, created_at, updated_at)"
            " VALUES (%s, 'Admin', 'admin', '2000-01-01Z', '2000-01-01Z') RETURNING id",
            (email,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def create_user(
    client: Client, email: str, name: str = "Someone", *, password: str = PASSWORD
) -> dict[str, Any]:
    """A user signed up through the API; the response body."""
    body = {"email": email, "name": name, "password": password}
    return body_of(client.post("/api/users", json=body), 201)


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


def sign_in(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """The bearer pair a JSON sign-in returns."""
    body = {"email": email, "password": password}
    return body_of(client.post("/api/auth/token", json=body), 200)


def without_admin(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page's users other than the fixture's admin."""
    return [item for item in items if item.get("email") != ADMIN_EMAIL]


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll until `predicate` holds; return how long it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def cache_caught_up(client: Client) -> None:
    """The app's read cache is trusted and has applied every change committed so far (the
    test's own set-up included): a change heard late would drop a fresh entry again."""
    channel = client.app.state.cache.channel
    assert channel is not None
    now = time.monotonic()
    wait_until(
        lambda: channel.trusted() and channel.applied_until > now,
        timeout=10,
        what="the read cache's poller to apply every change so far",
    )
