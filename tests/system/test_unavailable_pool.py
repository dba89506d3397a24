"""The app in-process under a held or exhausted pool and with backends terminated mid-flight:
503 with Retry-After within the acquire timeout, never a 500 or a hang."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
import psycopg
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import DB, PASSWORD, Client, wait_until
from tests.system.unavailable import app_settings, assert_unavailable, report, timed

TERMINATE_APP_BACKENDS = """
SELECT count(pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'rawpost'
"""


@contextlib.contextmanager
def only_connection_busy(
    client: Client, db: DB, db_url: str, user_id: str
) -> Iterator[Future[Any]]:
    """Hold the pool's only connection: one request waits on a lock the test owns.

    Yields the blocked request's future; the lock is released on exit and the request
    is left to finish.
    """
    with (
        ThreadPoolExecutor(max_workers=1) as executor,
        psycopg.connect(db_url, autocommit=True) as watcher,
        db.transaction(),
    ):
        db.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        blocked = executor.submit(client.get, f"/api/users/{user_id}")

        def waiting_on_lock() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'rawpost' AND wait_event_type = 'Lock'"
            ).fetchone()
            return row is not None and row[0] == 1

        wait_until(waiting_on_lock, timeout=5, what="the request to wait on the lock")
        yield blocked


def exhaustion_settings(db_url: str) -> Settings:
    return app_settings(
        db_url,
        pool_min_size=1,
        pool_max_size=1,
        acquire_timeout=0.5,
        ready_timeout=0.5,
        command_timeout=10,
    )


def test_pool_exhaustion_gives_503_with_retry_after_within_acquire_timeout(
    db_url: str, db: DB
) -> None:
    settings = exhaustion_settings(db_url)
    with TestClient(app=create_app(settings)) as client:
        user = client.post(
            "/api/users", json={"email": "busy@example.com", "name": "Busy", "password": PASSWORD}
        )
        assert user.status_code == 201, user.text
        user_id = user.json()["id"]
        # The executor is left last, after the lock is released: no wait can outlive the test.
        with (
            ThreadPoolExecutor(max_workers=5) as executor,
            only_connection_busy(client, db, db_url, user_id) as blocked,
        ):
            paths = [
                "/api/users",
                "/api/posts",
                f"/api/users/{user_id}",
                "/api/posts",
                "/api/users",
            ]
            futures = [executor.submit(timed, partial(client.get, p)) for p in paths]
            results = [future.result(timeout=5) for future in futures]
            still_blocked = not blocked.done()
        latencies = [elapsed for _, elapsed in results]
        report(
            "pool exhausted (5 concurrent while 1 holds the only connection)",
            latencies,
            [response.status_code for response, _ in results],
        )
        for response, elapsed in results:
            assert_unavailable(response)
            assert elapsed < 2.0, f"503 took {elapsed:.2f} s"
            assert elapsed >= settings.acquire_timeout * 0.8, "503 before the acquire timeout"
        assert still_blocked, "the request holding the connection should have been waiting"
        first = blocked.result(timeout=5)
        assert first.status_code == 200, first.text
        after = client.get(f"/api/users/{user_id}")
        assert after.status_code == 200, after.text


def test_live_answers_at_once_while_the_pool_is_exhausted(db_url: str, db: DB) -> None:
    with TestClient(app=create_app(exhaustion_settings(db_url))) as client:
        user = client.post(
            "/api/users", json={"email": "live@example.com", "name": "Live", "password": PASSWORD}
        )
        with only_connection_busy(client, db, db_url, user.json()["id"]):
            response, elapsed = timed(lambda: client.get("/health/live"))
            assert response.status_code == 200
            assert elapsed < 0.25, f"/health/live took {elapsed:.3f} s"


def test_ready_is_503_within_its_deadline_while_the_pool_is_exhausted(db_url: str, db: DB) -> None:
    settings = exhaustion_settings(db_url)
    with TestClient(app=create_app(settings)) as client:
        user = client.post(
            "/api/users", json={"email": "ready@example.com", "name": "Ready", "password": PASSWORD}
        )
        with only_connection_busy(client, db, db_url, user.json()["id"]):
            response, elapsed = timed(lambda: client.get("/health/ready"))
            assert_unavailable(response, problem=False)
            assert elapsed < settings.ready_timeout + 1.0, f"took {elapsed:.2f} s"
            pool = response.json()["pool"]
            assert (pool["in_use"], pool["max_size"]) == (1, 1)
        assert client.get("/health/ready").status_code == 200


def test_terminated_backends_mid_flight_give_200_or_503_never_500(db_url: str, db: DB) -> None:
    settings = app_settings(db_url, pool_min_size=2, pool_max_size=4, acquire_timeout=2)
    with TestClient(app=create_app(settings)) as client:
        author = client.post(
            "/api/users", json={"email": "mid@example.com", "name": "Mid", "password": PASSWORD}
        )
        author_id = author.json()["id"]
        for i in range(5):
            client.post(
                "/api/posts", json={"author_id": author_id, "title": f"p{i}", "content": ""}
            )
        requests: list[Callable[[], httpx.Response]] = [
            lambda: client.get("/api/users"),
            lambda: client.get(f"/api/users/{author_id}?include=posts"),
            lambda: client.get("/api/posts?limit=5"),
            lambda: client.get(f"/api/users/{author_id}/posts"),
            lambda: client.post(
                "/api/users",
                json={
                    "email": f"{uuid.uuid4().hex}@example.com",
                    "name": "N",
                    "password": PASSWORD,
                },
            ),
            lambda: client.get("/health/ready"),
        ]
        results: list[tuple[str, httpx.Response, float]] = []
        lock = threading.Lock()
        stop = threading.Event()

        def worker(offset: int) -> None:
            i = offset
            while not stop.is_set():
                call = requests[i % len(requests)]
                response, elapsed = timed(call)
                with lock:
                    results.append((str(response.request.url.path), response, elapsed))
                i += 1

        terminated = 0
        with ThreadPoolExecutor(max_workers=4) as executor:
            workers = [executor.submit(worker, n) for n in range(4)]
            try:
                for _ in range(15):
                    time.sleep(0.05)
                    row = db.execute(TERMINATE_APP_BACKENDS).fetchone()
                    killed = row[0] if row else 0
                    assert isinstance(killed, int)
                    terminated += killed
            finally:
                stop.set()
                for w in workers:
                    w.result(timeout=10)

        statuses = [r.status_code for _, r, _ in results]
        latencies = [e for _, _, e in results]
        report(f"backends terminated 15x ({terminated} backends killed)", latencies, statuses)
        assert terminated > 0
        assert results
        for path, response, _ in results:
            assert response.status_code in (200, 201, 503), (path, response.text[:300])
            if response.status_code == 503:
                assert_unavailable(response, problem=path.startswith("/api/"))
        assert max(latencies) < settings.acquire_timeout + 3.0
        # Once the killing stops, the pool heals on its own.
        wait_until(lambda: client.get("/api/users").status_code == 200, timeout=5, what="recovery")
        assert client.get("/health/ready").status_code == 200
