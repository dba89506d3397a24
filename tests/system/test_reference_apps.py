"""bench/reference's two apps under granian on a migrated database: contract v2's benchmark
write (`POST /api/posts` with a bearer token, as bench/create_post.lua sends it) and the
probes `rawpost bench` makes before it. Both answer the 201 body rawpost answers, byte for
byte (without its ETag)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from litestar.testing import TestClient

from rawpost_devtools import CHECKOUT
from service.app import create_app
from service.auth.tokens import Keys, mint_access_token
from service.config import load_settings
from tests.helpers import (
    TEST_ENV,
    TEST_JWT_SECRET,
    UUID_TEXT,
    bearer,
    free_port,
    mint_token,
    parse_ts,
    scratch_database,
    wait_until,
)

REFERENCE_DIR = CHECKOUT / "bench" / "reference"
# bench/create_post.lua's body.
BODY = {"title": "rawpost bench post", "content": "Written by rawpost bench.", "published": True}
POST_KEYS = ["id", "author_id", "title", "content", "published", "created_at", "updated_at"]


@dataclass
class People:
    author_id: str
    author_name: str
    deleted_id: str


@dataclass
class Reference:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def _command(name: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--workers", "1"),
        *("--loop", "uvloop", "--no-ws", "--host", "127.0.0.1", "--port", str(port)),
        *("--working-dir", str(REFERENCE_DIR), f"{name}:app"),
    ]


def _env(database_url: str, secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_")}
    env.update(DATABASE_URL=database_url, REFERENCE_POOL_SIZE="2")
    if secret is not None:
        env["RAWPOST_JWT_SECRET"] = secret
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def running_reference(name: str, database_url: str, log_dir: Path) -> Iterator[Reference]:
    """`name`:app under granian on a free loopback port, ready; stopped by its pid."""
    port = free_port()
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            _command(name, port),
            env=_env(database_url, TEST_JWT_SECRET),
            cwd=CHECKOUT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        reference = Reference(name, f"http://127.0.0.1:{port}", process, log_path)
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{reference.output()[-4000:]}")
                try:
                    return httpx.get(reference.base + "/health/ready", timeout=5).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, timeout=60, what=f"{name} to answer /health/ready")
            yield reference
        finally:
            _stop(process)


@pytest.fixture(scope="module")
def reference_db(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with scratch_database(pg_admin_url, "rawpost_reference", template=template_db) as url:
        yield url


@pytest.fixture(scope="module")
def people(reference_db: str) -> People:
    """A live author and a soft-deleted one."""
    with psycopg.connect(reference_db, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO users (email, name, deleted_at) VALUES"
            " ('author@reference.test', 'Ada \"the\" Author', NULL),"
            " ('gone@reference.test', 'Gone', now()) RETURNING id"
        ).fetchall()
    return People(str(rows[0][0]), 'Ada "the" Author', str(rows[1][0]))


@pytest.fixture(scope="module", params=["raw_asgi", "minimal_app"])
def reference(
    request: pytest.FixtureRequest, reference_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reference]:
    name: str = request.param
    with running_reference(name, reference_db, tmp_path_factory.mktemp(name)) as server:
        yield server


def _token(user_id: str, secret: str = TEST_JWT_SECRET) -> str:
    """As rawpost mints it (with a session id, as a sign-in gives)."""
    return mint_access_token(
        Keys(secret), user_id=uuid.UUID(user_id), ttl=900, session_id=uuid.uuid4()
    )


def _create(reference: Reference, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(
        reference.base + "/api/posts", json={**BODY, **body}, headers=headers, timeout=10
    )


def _posts_titled(db_url: str, title: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM posts WHERE title = %s", (title,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_signed_in_caller_creates_a_post(
    reference: Reference, people: People, reference_db: str
) -> None:
    response = _create(reference, bearer(_token(people.author_id)))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    post: dict[str, Any] = response.json()
    assert list(post) == [*POST_KEYS, "author"]
    assert response.headers["location"] == f"/api/posts/{post['id']}"
    assert UUID_TEXT.match(post["id"])
    assert post["author_id"] == people.author_id
    assert post["author"] == {"id": people.author_id, "name": people.author_name}
    assert (post["title"], post["content"], post["published"]) == tuple(BODY.values())
    assert parse_ts(post["created_at"]) == parse_ts(post["updated_at"])
    with psycopg.connect(reference_db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT author_id, published FROM posts WHERE id = %s", (post["id"],)
        ).fetchone()
    assert row is not None and (str(row[0]), row[1]) == (people.author_id, True)


def test_the_201_body_is_rawposts_bytes(
    reference: Reference, people: People, reference_db: str
) -> None:
    created = _create(reference, bearer(_token(people.author_id)))
    assert created.status_code == 201, created.text
    settings = load_settings(
        environ=TEST_ENV,
        overrides={"database_url": reference_db, "pool_min_size": 1, "startup_timeout": 5},
    )
    with TestClient(app=create_app(settings)) as rawpost:
        # rawpost's own 201 body is what its GET answers for the post...
        own = rawpost.post("/api/posts", json=BODY, headers=bearer(_token(people.author_id)))
        assert own.status_code == 201, own.text
        assert rawpost.get(own.headers["location"]).content == own.content
        # ...and what it answers for the reference's post is the reference's 201 body.
        theirs = rawpost.get(created.headers["location"])
        if reference.name == "raw_asgi":  # the floor's reads too (anonymous: no email)
            first = httpx.get(reference.base + "/api/posts?limit=1", timeout=10).json()
            for path in (
                f"/api/users/{people.author_id}",
                f"/api/users/{people.author_id}?include=posts",
                "/api/posts?limit=1",
                f"/api/posts?limit=1&cursor={first['next_cursor']}",
            ):
                read = httpx.get(reference.base + path, timeout=10)
                assert read.status_code == 200, read.text
                assert read.content == rawpost.get(path).content
    assert theirs.status_code == 200, theirs.text
    assert theirs.content == created.content
    # Headers: the same but the ETag (the references compute none).
    assert own.headers["content-type"] == created.headers["content-type"]
    assert "etag" in own.headers and "etag" not in created.headers


@pytest.mark.parametrize(
    "case", ["no header", "another secret", "expired", "no jti", "alg none", "basic scheme"]
)
def test_a_bad_or_missing_token_is_a_401_and_writes_nothing(
    reference: Reference, people: People, reference_db: str, case: str
) -> None:
    now = int(time.time())
    who = people.author_id
    headers = {
        "no header": {},
        "another secret": bearer(_token(who, secret="another-secret-0123456789abcdef-xyz")),
        "expired": bearer(mint_token(who, issued_at=now - 1000, ttl=100)),
        "no jti": bearer(
            jwt.encode({"sub": who, "iat": now, "exp": now + 900}, TEST_JWT_SECRET, "HS256")
        ),
        "alg none": bearer(
            jwt.encode({"sub": who, "iat": now, "exp": now + 900, "jti": "x"}, "", "none")
        ),
        "basic scheme": {"Authorization": f"Basic {_token(who)}"},
    }[case]
    title = f"refused {reference.name} {case}"
    response = _create(reference, headers, title=title)
    if reference.name == "minimal_app" and case == "basic scheme":
        # Litestar's JWT middleware reads the token after the first space, whatever the scheme.
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 401, response.text
    if reference.name == "raw_asgi":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        problem = response.json()
        assert (problem["type"], problem["title"], problem["status"]) == (
            "/problems/unauthorized",
            "Unauthorized",
            401,
        )
    assert _posts_titled(reference_db, title) == 0


def test_a_soft_deleted_author_is_a_422(reference: Reference, people: People) -> None:
    # Neither app looks the caller up: the statement finds no live author, inserts nothing.
    response = _create(reference, bearer(_token(people.deleted_id)))
    assert response.status_code == 422, response.text
    if reference.name == "raw_asgi":
        assert response.json()["type"] == "/problems/unprocessable"


def test_the_body_is_checked_as_the_app_checks_it(
    reference: Reference, people: People, reference_db: str
) -> None:
    token = bearer(_token(people.author_id))
    title = f"unknown field {reference.name}"
    unknown = _create(reference, token, title=title, pinned=True)
    long_title = _create(reference, token, title="x" * 201)
    if reference.name == "raw_asgi":  # rawpost's PostCreate: unknown fields and lengths
        assert unknown.status_code == 400, unknown.text
        assert unknown.json()["type"] == "/problems/validation"
        assert long_title.status_code == 400, long_title.text
        assert _posts_titled(reference_db, title) == 0
    else:  # a newcomer's dataclass: unknown fields ignored, lengths left to nobody
        assert unknown.status_code == 201, unknown.text
        assert long_title.status_code == 201, long_title.text


def test_rawpost_bench_probes_answer_200(reference: Reference, people: People) -> None:
    # `rawpost bench` reads a seeded user anonymously and checks a minted token at /me.
    user = httpx.get(f"{reference.base}/api/users/{people.author_id}", timeout=10)
    assert user.status_code == 200, user.text
    me = httpx.get(
        f"{reference.base}/api/users/me", headers=bearer(_token(people.author_id)), timeout=10
    )
    assert me.status_code == 200, me.text
    assert me.json()["id"] == people.author_id
    refused = httpx.get(
        f"{reference.base}/api/users/me",
        headers=bearer(_token(people.author_id, secret="another-secret-0123456789abcdef-xyz")),
        timeout=10,
    )
    assert refused.status_code == 401, refused.text


@pytest.mark.parametrize("name", ["raw_asgi", "minimal_app"])
def test_start_up_fails_without_the_signing_secret(
    name: str, reference_db: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "granian.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            _command(name, free_port()),
            env=_env(reference_db, None),
            cwd=CHECKOUT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            code = process.wait(60)
        finally:
            _stop(process)
    assert code != 0
    assert "RAWPOST_JWT_SECRET is not set" in log_path.read_text(errors="replace")


def test_post_users_still_creates_a_user(reference: Reference) -> None:
    email = f"{reference.name}@reference.test"
    body = {"email": email, "name": " New "}
    response = httpx.post(reference.base + "/api/users", json=body, timeout=10)
    assert response.status_code == 201, response.text
    user = response.json()
    assert (user["email"], user["name"]) == (email, "New")
    assert response.headers["location"] == f"/api/users/{user['id']}"
    again = httpx.post(reference.base + "/api/users", json=body, timeout=10)
    assert again.status_code == 409, again.text
