"""The `rawpost` command as a user runs it: real processes, a real PostgreSQL, loopback only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from service import migrate
from tests.helpers import PASSWORD, TEST_ENV, free_port

RAWPOST = [sys.executable, "-m", "service.cli"]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _post(url: str, body: dict[str, object]) -> int:
    return _post_json(url, body)[0]


def _post_json(url: str, body: dict[str, object]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status), json.loads(response.read())


def _get_as(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _env(**extra: str) -> dict[str, str]:
    """The environment less rawpost's settings, with the tests' signing secret."""
    return _bare_env(**TEST_ENV, **extra)


def _bare_env(**extra: str) -> dict[str, str]:
    """The environment less rawpost's settings (no signing secret either)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_")}
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


class Server:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*RAWPOST, "serve", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_live(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read() if self.process.stdout else ""
                raise AssertionError(f"server exited early ({self.process.returncode}):\n{out}")
            try:
                if _get(self.base + "/health/live")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not come up in time")

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a user would; return the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        return self.process.stdout.read() if self.process.stdout else ""


def test_serve_with_database_url_leaves_schema_alone_until_migrate_apply(
    empty_db_url: str,
) -> None:
    server = Server(_env(DATABASE_URL=empty_db_url))
    try:
        server.wait_live()
        status, body = _get(server.base + "/health/ready")
        assert status == 503
        assert body["pending_migrations"] == migrate.migration_ids()

        applied = subprocess.run(
            [*RAWPOST, "migrate", "apply"],
            env=_env(DATABASE_URL=empty_db_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        assert f"{len(migrate.migration_ids())} migration(s)" in applied.stdout

        status, body = _get(server.base + "/health/ready")
        assert status == 200, body
        assert body["pending_migrations"] == []
    finally:
        assert server.interrupt() == 0


def test_serve_migrate_flag_applies_pending_migrations_first(empty_db_url: str) -> None:
    server = Server(_env(DATABASE_URL=empty_db_url), "--migrate")
    try:
        server.wait_live()
        assert _get(server.base + "/health/ready")[0] == 200
    finally:
        assert server.interrupt() == 0


def test_serve_without_database_url_runs_an_embedded_database_that_keeps_its_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "pgdata"
    # No RAWPOST_JWT_SECRET: with the embedded database one is made and kept beside it.
    env = _bare_env(RAWPOST_DATA_DIR=str(data_dir))

    first = Server(env)
    try:
        first.wait_live()
        assert _get(first.base + "/health/ready")[0] == 200
        assert (
            _post(
                first.base + "/api/users",
                {"email": "kept@x.io", "name": "Kept", "password": PASSWORD},
            )
            == 201
        )
        status, pair = _post_json(
            first.base + "/api/auth/token", {"email": "kept@x.io", "password": PASSWORD}
        )
        assert status == 200
    finally:
        assert first.interrupt() == 0
    assert not (data_dir / "postmaster.pid").exists(), "Ctrl-C left the embedded server running"
    secret_file = tmp_path / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert len(secret_file.read_text().strip()) >= 32

    second = Server(env)
    try:
        second.wait_live()
        # The same secret after a restart: the first server's token still works.
        status, body = _get_as(second.base + "/api/users/me", pair["access_token"])
        assert status == 200
        assert body["email"] == "kept@x.io"
    finally:
        assert second.interrupt() == 0
    assert not (data_dir / "postmaster.pid").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RAWPOST_PORT", "eighty"), ("RAWPOST_POOL_MAX_SIZE", "0"), ("RAWPOST_LOG_LEVEL", "loud")],
)
def test_a_malformed_setting_stops_the_start_naming_the_variable(variable: str, value: str) -> None:
    result = subprocess.run(
        [*RAWPOST, "serve"],
        env=_env(**{variable: value, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "RAWPOST_JWT_SECRET is not set"),
        ("too-short", "RAWPOST_JWT_SECRET is too short"),
        ("change-me-to-32-or-more-random-bytes", "RAWPOST_JWT_SECRET is an example value"),
    ],
)
def test_serve_with_database_url_refuses_a_missing_short_or_example_secret(
    db_url: str, value: str | None, message: str
) -> None:
    extra = {"DATABASE_URL": db_url} | ({} if value is None else {"RAWPOST_JWT_SECRET": value})
    result = subprocess.run(
        [*RAWPOST, "serve"],
        env=_bare_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"Error: {lines[-1].removeprefix('Error: ')}"], result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_starting_rawpost_with_every_command_loads_neither_metrics_nor_sql_files() -> None:
    """`rawpost serve` sets the workers' shared metrics folder before prometheus_client is
    first imported (else each worker keeps its own figures and /metrics shows one worker),
    and a broken SQL file must not break commands that never run SQL."""
    probe = (
        "import sys, service.cli\n"
        "names = set(service.cli.main.commands)\n"
        "assert {'migrate', 'users', 'seed', 'bench', 'contracts'} <= names, names\n"
        "print(sorted(m for m in ('prometheus_client', 'service.metrics', 'service.sql',"
        " 'service.app') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
