"""The app in-process with its database unreachable, silent or dropped, through a TCP hop
the test can cut: 503 within its timeouts, then recovery, never a 500 or a hang."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlsplit

import httpx
import psycopg
from litestar.testing import TestClient
from psycopg import sql

from service.app import create_app
from tests.helpers import PASSWORD, Client, wait_until
from tests.support.network import SocketSet, connect_upstream, upstream_of, url_through
from tests.system.unavailable import app_settings, assert_unavailable, report, timed


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
