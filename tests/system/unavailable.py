"""What the unavailable-database tests share: the app's settings, the 503 every failure must
be, and the figures each test prints."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from service.config import Settings, load_settings
from tests.helpers import TEST_ENV

PROBLEM_JSON = "application/problem+json"

LEAKS = ("asyncpg", "psycopg", "traceback", "postgres", "sqlstate", "select ", "insert into")


def app_settings(database_url: str, **overrides: object) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={"database_url": database_url, "startup_timeout": 5, **overrides},
    )


def assert_unavailable(response: httpx.Response, *, problem: bool = True) -> None:
    """A 503 that tells the client when to come back; a problem document on API routes."""
    assert response.status_code == 503, response.text[:500]
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) > 0, f"Retry-After: {retry_after!r}"
    text = response.text.lower()
    assert not any(leak in text for leak in LEAKS), response.text[:500]
    if problem:
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        body = response.json()
        assert body["status"] == 503
        assert body["title"] and body["type"] and body["detail"]


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def report(name: str, latencies: list[float], statuses: list[int]) -> None:
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    failures = sum(1 for s in statuses if s >= 500 and s != 503)
    print(
        f"\n[{name}] requests={len(statuses)} statuses={counts} failures(5xx but 503)={failures}"
        f" max_latency={max(latencies, default=0.0) * 1000:.0f} ms"
        f" mean_latency={sum(latencies) / max(len(latencies), 1) * 1000:.0f} ms"
    )
