"""Liveness, readiness and metrics: /live answers while the database is gone, /ready is 503
with Retry-After naming what is missing, /metrics is Prometheus text for the scraper only."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import psycopg
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from yoyo import get_backend, read_migrations

from service import migrate
from service.app import create_app
from service.config import Settings, load_settings
from service.resources import MIGRATIONS_DIR
from tests.helpers import SCRAPER, TEST_ENV, Client

MIGRATION_IDS = migrate.migration_ids()

Json: TypeAlias = dict[str, Any]


def _app_settings(database_url: str) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={"database_url": database_url, "pool_min_size": 1, "startup_timeout": 5},
    )


def _drop_database(pg_admin_url: str, database_url: str) -> None:
    """Remove the database under the running app: its backends die, reconnects find nothing."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def empty_database(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, dropped afterwards."""
    name = f"rawpost_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(pg_admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def roll_back_newest_migration(database_url: str) -> str:
    """Undo the newest applied migration with yoyo; return its id."""
    backend = get_backend(migrate.yoyo_url(database_url))
    try:
        newest = backend.to_rollback(read_migrations(str(MIGRATIONS_DIR)))[:1]
        with backend.lock():
            backend.rollback_migrations(newest)
        return str(newest[0].id)
    finally:
        backend.connection.close()


def assert_retry_after(headers: Any) -> None:
    value = headers.get("retry-after", "")
    assert value.isdigit() and int(value) > 0, f"Retry-After: {value!r}"


def assert_pool_figures(pool: Json, settings: Settings) -> None:
    assert set(pool) >= {"size", "idle", "in_use", "min_size", "max_size"}, pool
    assert pool["min_size"] == settings.pool_min_size
    assert pool["max_size"] == settings.pool_max_size
    assert 0 <= pool["in_use"] <= pool["size"] <= pool["max_size"]
    assert pool["idle"] + pool["in_use"] == pool["size"]


def test_live_is_200_and_still_answers_after_the_database_is_dropped(
    client: Client, db_url: str, pg_admin_url: str
) -> None:
    assert client.get("/health/live").status_code == 200
    _drop_database(pg_admin_url, db_url)
    # The app really has lost its database (readiness cannot be 200 any more)...
    assert client.get("/health/ready").status_code != 200
    # ...and liveness neither notices nor waits.
    for _ in range(5):
        started = time.monotonic()
        response = client.get("/health/live")
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok"}
        assert elapsed < 0.5, f"/health/live took {elapsed:.3f} s without a database"


def test_ready_is_200_with_pool_figures_when_database_and_schema_are_current(
    client: Client, settings: Settings
) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["pending_migrations"] == []
    assert_pool_figures(body["pool"], settings)
    assert body["pool"]["size"] >= 1


def test_ready_is_503_with_retry_after_naming_the_migration_rolled_back(db_url: str) -> None:
    """The app still starts on a schema one migration behind, and says what is missing."""
    rolled_back = roll_back_newest_migration(db_url)
    assert rolled_back == MIGRATION_IDS[-1]
    settings = _app_settings(db_url)
    with TestClient(app=create_app(settings)) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503, response.text
        assert_retry_after(response.headers)
        body = response.json()
        assert body["pending_migrations"] == [rolled_back]
        assert body["status"] != "ready"
        assert_pool_figures(body["pool"], settings)
        assert client.get("/health/live").status_code == 200


def test_ready_is_503_naming_every_migration_on_an_empty_database(pg_admin_url: str) -> None:
    with empty_database(pg_admin_url) as url:
        settings = _app_settings(url)
        with TestClient(app=create_app(settings)) as client:
            response = client.get("/health/ready")
            assert response.status_code == 503, response.text
            assert_retry_after(response.headers)
            assert response.json()["pending_migrations"] == MIGRATION_IDS
            assert_pool_figures(response.json()["pool"], settings)
            assert client.get("/health/live").status_code == 200


def test_ready_is_503_with_retry_after_when_the_database_is_gone(
    client: Client, db_url: str, pg_admin_url: str, settings: Settings
) -> None:
    assert client.get("/health/ready").status_code == 200
    _drop_database(pg_admin_url, db_url)
    started = time.monotonic()
    response = client.get("/health/ready")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert_retry_after(response.headers)
    assert "traceback" not in response.text.lower()
    assert elapsed < settings.ready_timeout + 1.0
    assert_pool_figures(response.json()["pool"], settings)


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_is_prometheus_text_with_request_and_pool_metrics(
    client: Client, settings: Settings
) -> None:
    assert client.get("/api/users").status_code == 200
    for _ in range(2):
        assert client.get(f"/api/users/{uuid.uuid4()}").status_code == 404
    response = client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in response.headers["content-type"]
    families = _families(response.text)  # raises on anything that is not Prometheus text

    pool = {s.labels["state"]: s.value for s in families["rawpost_pool_connections"].samples}
    assert families["rawpost_pool_connections"].type == "gauge"
    assert set(pool) >= {"idle", "in_use", "size", "max"}
    assert pool["max"] == settings.pool_max_size
    assert pool["idle"] + pool["in_use"] == pool["size"]

    requests = families["rawpost_requests"]
    assert requests.type == "counter"
    by_route = {
        (s.labels.get("method"), s.labels.get("path"), s.labels.get("status_code")): s.value
        for s in requests.samples
        if s.name == "rawpost_requests_total"
    }
    assert by_route.get(("GET", "/api/users", "200"), 0) >= 1, sorted(by_route)
    user_route = [k for k in by_route if k[1] and k[1].startswith("/api/users/{") and k[2] == "404"]
    assert user_route and by_route[user_route[0]] >= 2, sorted(by_route)
    assert "rawpost_request_duration_seconds" in families
    # Paths are grouped by route: ids never become label values (unbounded cardinality).
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not any(uuid_like.search(s.labels.get("path", "")) for s in requests.samples)


def test_metrics_content_type_is_one_valid_media_type(client: Client) -> None:
    """Prometheus 3 fails the scrape when Content-Type does not parse (e.g. a repeated param)."""
    content_type = client.get("/metrics", headers=SCRAPER).headers["content-type"]
    media_type, *params = (part.strip() for part in content_type.split(";"))
    assert media_type == "text/plain"
    names = [p.split("=", 1)[0].strip().lower() for p in params]
    assert len(names) == len(set(names)), f"repeated parameter in {content_type!r}"
    assert "version=0.0.4" in params


def test_metrics_are_served_only_to_the_scraper_with_the_token(client: Client) -> None:
    assert client.get("/metrics", headers=SCRAPER).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-the-right-length"}):
        anonymous = client.get("/metrics", headers=headers)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert "rawpost_requests_total" not in anonymous.text
    # A user's access token (the client's own, an admin's) is not the scraper's token.
    assert client.get("/metrics").status_code == 401


def test_metrics_are_not_served_at_all_without_a_token_setting(db_url: str) -> None:
    settings = load_settings(
        environ={"RAWPOST_JWT_SECRET": TEST_ENV["RAWPOST_JWT_SECRET"]},
        overrides={"database_url": db_url, "pool_min_size": 1},
    )
    with TestClient(app=create_app(settings)) as bare:
        response = bare.get("/metrics", headers=SCRAPER)
        assert response.status_code == 404
        assert "RAWPOST_METRICS_TOKEN" in response.json()["detail"]
