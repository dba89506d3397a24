"""Assertions, aliases and scratch databases shared by the tests."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeAlias

import httpx
import psycopg
from litestar import Litestar
from litestar.testing import TestClient
from yoyo import get_backend, read_migrations

from service import migrate
from service.config import MIGRATIONS_DIR
from service.embedded import create_database, drop_database, with_database

Client: TypeAlias = TestClient[Litestar]
DB: TypeAlias = psycopg.Connection[tuple[object, ...]]

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


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
