"""A real PostgreSQL for the tests: embedded (throwaway) or TEST_DATABASE_URL.

Isolation: migrations run once into a template database; every test gets a fresh
database cloned from it and dropped afterwards, so no test sees another's rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from service import migrate
from service.app import create_app
from service.config import Settings, load_settings
from service.embedded import create_database, drop_database, with_database
from tests.helpers import (
    TEST_ENV,
    TEST_JWT_SECRET,
    bearer,
    insert_admin,
    mint_token,
    scratch_database,
)
from tests.support.redis import RedisServer, running_redis

# Servers the tests start as processes inherit the environment: give them the secret.
os.environ.setdefault("RAWPOST_JWT_SECRET", TEST_JWT_SECRET)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL with CREATEDB rights on a PostgreSQL that lives for the test session."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    from service.embedded import start_server

    # Not under pytest's tmp_path: pytest prunes old basetemps, which would pull the data
    # folder from under a concurrently running session's server.
    with tempfile.TemporaryDirectory(prefix="rawpost-test-pg-") as tmp:
        server = start_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that every test database is cloned from."""
    name = f"rawpost_template_{os.getpid()}"
    drop_database(pg_admin_url, name)
    create_database(pg_admin_url, name)
    migrate.apply(with_database(pg_admin_url, name), echo=lambda _: None)
    try:
        yield name
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    with scratch_database(pg_admin_url, "rawpost_test", template=template_db) as url:
        yield url


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, dropped afterwards."""
    with scratch_database(pg_admin_url, "rawpost_empty") as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A direct connection to the test's database, for checking stored rows."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def settings(db_url: str) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={"database_url": db_url, "pool_min_size": 1, "startup_timeout": 5},
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The real app (real lifespan, real pool) on the test's own database; requests are
    anonymous unless they carry a token."""
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin_id(db_url: str) -> str:
    return insert_admin(db_url)


@pytest.fixture
def admin_token(admin_id: str) -> str:
    return mint_token(admin_id)


@pytest.fixture
def client(api: TestClient, admin_token: str) -> TestClient:  # type: ignore[type-arg]
    """`api`, signed in as an admin (who may do and see everything) on every request."""
    api.headers.update(bearer(admin_token))
    return api


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for one test, stopped by its pid."""
    with running_redis(tmp_path) as server:
        yield server
