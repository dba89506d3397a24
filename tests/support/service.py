"""`rawpost serve` as a real process, a real PostgreSQL seen from the test's own
connection, and load sent from threads (loopback only).

`Service` runs `rawpost serve` as a user would; `Load` drives it from threads and keeps
every request's timing. Everything started here is stopped by its own handle (its pid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from rawpost_devtools import CHECKOUT
from service.config import ENV_NAMES
from tests.helpers import DB, SCRAPER, TEST_ENV, free_port, wait_until

RAWPOST = [sys.executable, "-m", "service.cli"]

APP_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'rawpost'"
)


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
    """The test process's environment without its rawpost settings, plus these (rate
    limits `off` unless given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_") and k != "REDIS_URL"}
    env["DATABASE_URL"] = database_url
    env.update(TEST_ENV)
    env.update({ENV_NAMES.get(k, f"RAWPOST_{k.upper()}"): str(v) for k, v in settings.items()})
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


@contextlib.contextmanager
def running_workers(
    log_dir: Path,
    database_url: str,
    *,
    workers: int = 2,
    pool_max_size: int = 3,
    **settings: object,
) -> Iterator[Service]:
    """`rawpost serve` with `workers` worker processes, ready, and every worker started
    (each holding its pool), so that requests on fresh connections reach all of them."""
    with running_service(
        log_dir, database_url, workers=workers, pool_max_size=pool_max_size, **settings
    ) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        service.wait_all_workers(workers, pool_max_size=pool_max_size)
        yield service


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


def child_pids(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                children.add(int(entry))
    return children
