"""A streaming standby of a test's own primary: `pg_basebackup -R` with the embedded
PostgreSQL 18's programs (the primary's major version), started on a free loopback port,
stopped and removed by its own handle (its data directory)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from service.embedded import binary
from tests.helpers import free_port
from tests.support.postgres import DedicatedPostgres


class Standby:
    """A hot standby of `primary` (an embedded server of the tests) on 127.0.0.1:port.

    The embedded initdb's pg_hba trusts local replication connections, and PostgreSQL's
    defaults (wal_level replica, max_wal_senders 10) allow streaming: the primary needs
    no change. As root, the programs run as the OS user the embedded server runs as.
    """

    def __init__(self, primary: DedicatedPostgres) -> None:
        self._user = "embedded_postgres" if os.geteuid() == 0 else None
        self._tmp = Path(tempfile.mkdtemp(prefix="rawpost-standby-"))
        if self._user is not None:
            shutil.chown(self._tmp, user=self._user)
        self.data = self._tmp / "data"
        self.port = free_port()
        primary_port = urlsplit(primary.admin_url).port or 5432
        self._run(
            "pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            "-d", f"host={primary.socket_dir} port={primary_port} user=postgres",
        )  # fmt: skip
        self.start()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(binary(program)), *args],
            user=self._user,
            check=True,
            capture_output=True,
            cwd=self._tmp,
            timeout=60,
        )

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        """Start, and wait until it accepts reads (a hot standby, consistent)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-l", str(self._tmp / "log"),
            "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self._tmp}",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def pause_replay(self) -> None:
        self.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.execute("SELECT pg_wal_replay_resume()")

    def replay_lsn(self) -> int:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        return int(str(row[0]))

    def wait_caught_up(self, primary_url: str, timeout: float = 10) -> None:
        """Until it has replayed everything the primary had written when called."""
        with psycopg.connect(primary_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        target = int(str(row[0]))
        deadline = time.monotonic() + timeout
        while self.replay_lsn() < target:
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.01)

    def close(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def standby_of(primary: DedicatedPostgres) -> Iterator[Standby]:
    standby = Standby(primary)
    try:
        yield standby
    finally:
        standby.close()
