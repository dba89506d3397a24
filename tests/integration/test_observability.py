"""Request ids, Server-Timing, the access log, query logs, metrics and connection recycling."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings, load_settings
from tests.helpers import DB, SCRAPER, TEST_ENV, Client, create_user


def test_a_request_id_is_created_and_returned(client: Client) -> None:
    response = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_a_client_request_id_is_propagated(client: Client) -> None:
    response = client.get("/api/users", headers={"X-Request-ID": "trace-abc-123"})
    assert response.headers["x-request-id"] == "trace-abc-123"


def test_server_timing_reports_pool_wait_database_and_encode(client: Client) -> None:
    header = client.get("/api/users").headers["server-timing"]
    parts = {p.split(";")[0].strip(): p for p in header.split(",")}
    assert set(parts) == {"pool", "db", "encode", "total"}
    for part in parts.values():
        assert float(re.search(r"dur=([0-9.]+)", part).group(1)) >= 0  # type: ignore[union-attr]
    db_ms = float(re.search(r"dur=([0-9.]+)", parts["db"]).group(1))  # type: ignore[union-attr]
    assert db_ms > 0


def test_one_access_log_line_per_request_with_route_template(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(app=create_app(msgspec.structs.replace(settings, access_log="all"))) as client:
        user = create_user(client, "a@x.io", "A")
        with caplog.at_level(logging.INFO, logger="rawpost.access"):
            client.get(f"/api/users/{user['id']}", headers={"X-Request-ID": "rid-1"})
    lines = [r for r in caplog.records if r.name == "rawpost.access"]
    assert len(lines) == 1
    line = lines[0]
    assert vars(line)["route"] == "/api/users/{user_id}"
    assert vars(line)["status"] == 200
    assert vars(line)["request_id"] == "rid-1"
    assert vars(line)["method"] == "GET"
    assert vars(line)["duration_ms"] >= 0


@pytest.mark.parametrize("mode", ["errors", "off"])
def test_by_default_only_server_errors_get_an_access_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    assert Settings().access_log == "errors"
    broken = msgspec.structs.replace(settings, access_log=mode)
    with TestClient(app=create_app(broken)) as client, caplog.at_level(logging.INFO):
        assert client.get("/api/users").status_code == 200
        assert client.get(f"/api/users/{uuid.uuid4()}").status_code == 404
        # A database that stops answering: the API's 503 is a server-side error.
        client.app.state.db.pool.terminate()
        assert client.get("/api/users").status_code == 503
    lines = [vars(r) for r in caplog.records if r.name == "rawpost.access"]
    if mode == "off":
        assert lines == []
    else:
        assert [(line["route"], line["status"]) for line in lines] == [("/api/users", 503)]


def test_queries_are_logged_by_file_name_with_rows_and_never_parameters(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # The caller's first request on a worker also looks it up (auth/get_caller), once.
    assert client.get("/api/users/me").status_code == 200
    with caplog.at_level(logging.DEBUG, logger="rawpost.sql"):
        client.get("/api/users?email=secret-value@x.io")
    records = [r for r in caplog.records if r.name == "rawpost.sql"]
    assert [vars(r)["query"] for r in records] == ["users/list_users_by_email"]
    assert vars(records[0])["rows"] == 0
    assert "secret-value" not in caplog.text


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={"database_url": settings.database_url, "slow_query_ms": 0},
    )


def test_queries_over_the_threshold_are_warnings(
    slow_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(app=create_app(slow_settings)) as client, caplog.at_level(logging.WARNING):
        client.get("/api/posts")
    slow = [r for r in caplog.records if r.name == "rawpost.sql" and r.levelno == logging.WARNING]
    assert [vars(r)["query"] for r in slow] == ["posts/list_posts"]


def test_metrics_cover_requests_queries_pool_retries_and_build(client: Client) -> None:
    client.get("/api/users")
    text = client.get("/metrics", headers=SCRAPER).text
    for needle in (
        'rawpost_request_duration_seconds_count{app_name="rawpost",method="GET",path="/api/users",'
        'status_code="200"}',
        'rawpost_query_duration_seconds_count{query="users/list_users"}',
        "rawpost_pool_acquire_seconds_bucket",
        'rawpost_pool_connections{state="in_use"}',
        "rawpost_pool_waiting",
        "# TYPE rawpost_db_retries_total counter",
        "# TYPE rawpost_db_transient_failures_total counter",
        "rawpost_build_info{",
    ):
        assert needle in text, needle


@pytest.fixture
def recycling_client(settings: Settings) -> Iterator[Client]:
    recycling = load_settings(
        environ=TEST_ENV,
        overrides={
            "database_url": settings.database_url,
            "pool_min_size": 1,
            "pool_max_size": 1,
            "pool_max_lifetime": 0.3,
        },
    )
    with TestClient(app=create_app(recycling)) as test_client:
        yield test_client


def _app_backends(db: DB) -> set[int]:
    rows = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'rawpost'"
        " AND datname = current_database()"
    ).fetchall()
    return {int(str(r[0])) for r in rows}


def test_connections_older_than_the_max_lifetime_are_recycled(
    recycling_client: Client, db: DB
) -> None:
    assert recycling_client.get("/api/users").status_code == 200
    before = _app_backends(db)
    time.sleep(0.5)
    assert recycling_client.get("/api/users").status_code == 200  # returned, then closed
    assert recycling_client.get("/api/users").status_code == 200
    deadline = time.monotonic() + 5
    while _app_backends(db) & before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_app_backends(db) & before), "the old connection is still open"


def test_start_up_waits_for_the_database_even_with_an_empty_pool(settings: Settings) -> None:
    import asyncio

    from service.db.pool import create_pool

    unreachable = load_settings(
        environ=TEST_ENV,
        overrides={
            "database_url": "postgresql://postgres@127.0.0.1:1/nothing",
            "pool_min_size": 0,
            "startup_timeout": 1.5,
            "connect_timeout": 0.5,
        },
    )
    started = time.monotonic()
    with pytest.raises(OSError):
        asyncio.run(create_pool(unreachable))
    assert time.monotonic() - started >= 1.0, "gave up without waiting"
