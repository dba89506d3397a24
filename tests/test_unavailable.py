"""When the database is busy, gone or silent: 503 with Retry-After in bounded time, never 500.

Run with -s to see the observed figures (requests, failures, latencies).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import httpx
import psycopg
from litestar import Litestar
from litestar.testing import TestClient
from psycopg import sql

from service.app import create_app
from service.config import Settings, load_settings
from tests.faults_helpers import SocketSet, connect_upstream, upstream_of, url_through
from tests.helpers import PASSWORD, TEST_ENV

Client: TypeAlias = TestClient[Litestar]
Db: TypeAlias = psycopg.Connection[tuple[object, ...]]

PROBLEM_JSON = "application/problem+json"
LEAKS = ("asyncpg", "psycopg", "traceback", "postgres", "sqlstate", "select ", "insert into")

TERMINATE_APP_BACKENDS = """
SELECT count(pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'rawpost'
"""


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


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def report(name: str, latencies: list[float], statuses: list[int]) -> None:
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    failures = sum(1 for s in statuses if s >= 500 and s != 503)
    print(
        f"\n[{name}] requests={len(statuses)} statuses={counts} failures(5xx but 503)={failures}"
        f" max_latency={max(latencies, default=0.0) * 1000:.0f} ms"
        f" mean_latency={sum(latencies) / max(len(latencies), 1) * 1000:.0f} ms"
    )


# --- pool exhaustion ---------------------------------------------------------------------


@contextlib.contextmanager
def only_connection_busy(
    client: Client, db: Db, db_url: str, user_id: str
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
    # The transaction ended first (lock released), so the executor's wait is short.


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
    db_url: str, db: Db
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


def test_live_answers_at_once_while_the_pool_is_exhausted(db_url: str, db: Db) -> None:
    with TestClient(app=create_app(exhaustion_settings(db_url))) as client:
        user = client.post(
            "/api/users", json={"email": "live@example.com", "name": "Live", "password": PASSWORD}
        )
        with only_connection_busy(client, db, db_url, user.json()["id"]):
            response, elapsed = timed(lambda: client.get("/health/live"))
            assert response.status_code == 200
            assert elapsed < 0.25, f"/health/live took {elapsed:.3f} s"


def test_ready_is_503_within_its_deadline_while_the_pool_is_exhausted(db_url: str, db: Db) -> None:
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


# --- backends terminated mid-flight ------------------------------------------------------


def test_terminated_backends_mid_flight_give_200_or_503_never_500(db_url: str, db: Db) -> None:
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


# --- database unreachable: a network hop the test can cut --------------------------------


class Proxy:
    """A real TCP hop between the app and PostgreSQL that a test can cut or black-hole."""

    def __init__(self, database_url: str) -> None:
        self._upstream = upstream_of(database_url)
        self._mode = "forward"
        self._sockets = SocketSet()
        self._listening = threading.Event()
        self.port = 0
        self.listen()

    def url_for(self, database_url: str) -> str:
        """`database_url`, reached through this proxy."""
        return url_through(database_url, self.port)

    def listen(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listening.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                client.settimeout(None)
                if self._mode != "forward":
                    self._sockets.add(client)  # held open, never answered
                    continue
                try:
                    upstream = connect_upstream(self._upstream)
                except OSError:
                    client.close()
                    continue
                self._sockets.add(client, upstream)
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self._mode == "forward":  # a black hole swallows what it gets
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def sever(self) -> None:
        self._sockets.close_all()

    def cut(self) -> None:
        """The server is gone: open connections drop and new ones are refused."""
        self._listening.clear()
        time.sleep(0.1)  # the accept loop notices within its 0.05 s timeout and closes
        self.sever()

    def black_hole(self) -> None:
        """The server stops answering: connections stay open, nothing comes back."""
        self._mode = "black hole"

    def restore(self) -> None:
        self._mode = "forward"
        self.sever()  # whatever the black hole held is useless now
        if not self._listening.is_set():
            self.listen()

    def close(self) -> None:
        self.cut()


@contextlib.contextmanager
def proxied(db_url: str) -> Iterator[tuple[Proxy, str]]:
    proxy = Proxy(db_url)
    try:
        yield proxy, proxy.url_for(db_url)
    finally:
        proxy.close()


def test_database_unreachable_gives_503_with_retry_after_then_recovers(db_url: str) -> None:
    with proxied(db_url) as (proxy, url):
        settings = app_settings(
            url, pool_min_size=1, pool_max_size=2, acquire_timeout=1, connect_timeout=1
        )
        with TestClient(app=create_app(settings)) as client:
            assert client.get("/api/users").status_code == 200
            proxy.cut()
            latencies: list[float] = []
            statuses: list[int] = []
            for path in ["/api/users", "/api/posts", f"/api/users/{uuid.uuid4()}"] * 4:
                response, elapsed = timed(partial(client.get, path))
                latencies.append(elapsed)
                statuses.append(response.status_code)
                assert_unavailable(response)
                assert elapsed < 2.0, f"{path}: 503 took {elapsed:.2f} s"
            created, elapsed = timed(
                lambda: client.post(
                    "/api/users", json={"email": "x@example.com", "name": "X", "password": PASSWORD}
                )
            )
            assert_unavailable(created)
            ready, _ = timed(lambda: client.get("/health/ready"))
            assert_unavailable(ready, problem=False)
            assert ready.json()["database"] != "ok"
            assert client.get("/health/live").status_code == 200
            report("database refused connections", latencies, statuses)

            proxy.restore()
            wait_until(
                lambda: client.get("/api/users").status_code == 200, timeout=5, what="recovery"
            )
            assert client.get("/health/ready").status_code == 200


def test_silent_database_gives_503_within_timeouts_never_a_hang(db_url: str) -> None:
    """Connections that stay open but never answer: bounded by connect/command timeouts."""
    with proxied(db_url) as (proxy, url):
        settings = app_settings(
            url,
            pool_min_size=1,
            pool_max_size=2,
            acquire_timeout=1,
            connect_timeout=1,
            command_timeout=1.5,
            ready_timeout=1,
        )
        with TestClient(app=create_app(settings)) as client:
            assert client.get("/api/users").status_code == 200
            proxy.black_hole()
            with ThreadPoolExecutor(max_workers=4) as executor:
                futures = [
                    executor.submit(timed, partial(client.get, "/api/users")) for _ in range(4)
                ]
                results = [future.result(timeout=10) for future in futures]
            ready, ready_elapsed = timed(partial(client.get, "/health/ready"))
            report(
                "database silent (black hole)",
                [elapsed for _, elapsed in results] + [ready_elapsed],
                [response.status_code for response, _ in results] + [ready.status_code],
            )
            for response, elapsed in results:
                assert_unavailable(response)
                assert elapsed < settings.command_timeout + 1.5, f"took {elapsed:.2f} s"
            assert_unavailable(ready, problem=False)
            assert ready_elapsed < settings.ready_timeout + 1.0

            proxy.restore()
            wait_until(
                lambda: client.get("/api/users").status_code == 200, timeout=5, what="recovery"
            )


def test_requests_after_the_database_is_dropped_are_503_not_500(
    client: Client, db_url: str, pg_admin_url: str
) -> None:
    assert client.get("/api/users").status_code == 200
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    latencies: list[float] = []
    statuses: list[int] = []
    responses: list[httpx.Response] = []
    for path in ["/api/users", "/api/posts", f"/api/users/{uuid.uuid4()}"]:
        response, elapsed = timed(partial(client.get, path))
        latencies.append(elapsed)
        statuses.append(response.status_code)
        responses.append(response)
    report("database dropped", latencies, statuses)
    for response in responses:
        assert_unavailable(response)
