"""The container's commands outside Docker, as plain processes against a real PostgreSQL:
the API serves live and ready and stops on SIGTERM; the migrate command migrates and
reruns harmlessly, and concurrent index builds that fail or are interrupted are cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service import migrate
from tests.helpers import TEST_JWT_SECRET, free_port, migrate_to
from tests.system.deployment import COMMAND_TIMEOUT, Image, compose_config, read_image

# The indexes the SQL files rely on, created by the migrations under these names.
INDEXES = (
    "users_live_email_key",
    "users_live_created_idx",
    "posts_live_created_idx",
    "posts_author_created_idx",
)


def _executable(command: Sequence[str]) -> list[str]:
    """The image puts /app/.venv/bin first on PATH; this checkout's venv is the same thing."""
    program = Path(sys.executable).parent / command[0]
    assert program.exists(), f"{command[0]} is not installed in {program.parent}"
    return [str(program), *command[1:]]


def _on_loopback(command: Sequence[str]) -> list[str]:
    """The same command, listening on 127.0.0.1 instead of every interface."""
    argv = list(command)
    if "--host" in argv:
        argv[argv.index("--host") + 1] = "127.0.0.1"
    return argv


def _process_env(image: Image, service: dict[str, Any], **overrides: str) -> dict[str, str]:
    """This machine's environment (less rawpost's settings), the image's ENV, the service's."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_") and k != "DATABASE_URL"
    }
    # PATH names folders inside the image; _executable() already points at the venv.
    env.update({k: v for k, v in image.env.items() if k != "PATH"})
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    env.update(overrides)
    return env


def _get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    """Poll `url` until it answers at all; return its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited early ({process.returncode}):\n{log.read_text()}"
            )
        try:
            return _get_status(url)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, as `docker stop` sends; SIGKILL only if it does not exit in time."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        raise AssertionError(f"the server ignored SIGTERM for {timeout} s") from None


def _migrate_command(database_url: str) -> tuple[list[str], dict[str, str]]:
    """The compose migrate service's command and environment, aimed at `database_url`."""
    service = compose_config()["services"]["migrate"]
    return _executable(service["command"]), _process_env(
        read_image(), service, DATABASE_URL=database_url
    )


def _run(
    command: Sequence[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def _applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT migration_id FROM _yoyo_migration").fetchall()
    return sorted(str(row[0]) for row in rows)


def _index_validity(url: str, name: str) -> bool | None:
    """True/False for a valid/INVALID index of that name; None when there is none."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index AS i WHERE i.indexrelid = to_regclass(%s)",
            (name,),
        ).fetchone()
    return None if row is None else bool(row[0])


def _has_constraint(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass"
            " AND conname = %s",
            (name,),
        ).fetchone()
    return row == (1,)


def test_the_api_container_command_serves_live_and_ready_and_stops_on_sigterm(
    db_url: str, tmp_path: Path
) -> None:
    image = read_image()
    api = compose_config()["services"]["api"]
    port = free_port()
    command = _executable(_on_loopback(api["command"]))
    env = _process_env(
        image,
        api,
        DATABASE_URL=db_url,
        RAWPOST_PORT=str(port),
        RAWPOST_HOST="127.0.0.1",
        RAWPOST_JWT_SECRET=TEST_JWT_SECRET,
    )
    log = tmp_path / "api.log"
    # WORKDIR /app holds only the code, which rawpost finds next to its package; a scratch
    # folder keeps this checkout's .rawpost/ out of the run.
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_for(base + "/health/live", process, log) == 200
        assert _get_status(base + "/health/ready") == 200, log.read_text()
    finally:
        exit_code = _stop(process)
    # A graceful shutdown (the lifespan closes the pool) that ends with status 0.
    assert exit_code == 0, log.read_text()


def test_the_migrate_container_command_migrates_an_empty_database_and_reruns_harmlessly(
    empty_db_url: str, tmp_path: Path
) -> None:
    command, env = _migrate_command(empty_db_url)

    first = _run(command, env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _applied(empty_db_url) == sorted(migrate.migration_ids())
    for name in INDEXES:
        assert _index_validity(empty_db_url, name) is True, name

    # `docker compose up` runs the one-shot service again on every start.
    again = _run(command, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _applied(empty_db_url) == sorted(migrate.migration_ids())


def test_a_failed_concurrent_index_build_leaves_no_index_and_keeps_the_old_unique_key(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrate_to(empty_db_url, "0002.users-uuid-soft-delete")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, name) VALUES ('ann@x.io', 'Ann'), ('ANN@x.io', 'Ann 2')"
        )
    command, env = _migrate_command(empty_db_url)

    failed = _run(command, env, tmp_path)
    assert failed.returncode != 0
    assert "users_live_email_key" in failed.stdout + failed.stderr
    # The build failed on the duplicate; yoyo undid the migration, dropping the INVALID
    # index the build left behind, and the case-sensitive key still guards emails.
    assert _index_validity(empty_db_url, "users_live_email_key") is None
    assert _has_constraint(empty_db_url, "users_email_key")

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE email = 'ANN@x.io'")
    fixed = _run(command, env, tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _index_validity(empty_db_url, "users_live_email_key") is True
    assert not _has_constraint(empty_db_url, "users_email_key")


def test_an_invalid_index_left_by_an_interrupted_build_is_refused_dropped_then_rebuilt(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrate_to(empty_db_url, "0002.users-uuid-soft-delete")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, name) VALUES ('bo@x.io', 'Bo'), ('BO@x.io', 'Bo 2')"
        )
        # A build that died halfway (say, its process was killed) leaves the index INVALID.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY users_live_email_key"
                " ON users (lower(email)) WHERE deleted_at IS NULL"
            )
        conn.execute("DELETE FROM users WHERE email = 'BO@x.io'")
    assert _index_validity(empty_db_url, "users_live_email_key") is False
    command, env = _migrate_command(empty_db_url)

    refused = _run(command, env, tmp_path)
    assert refused.returncode != 0
    assert "not valid" in refused.stdout + refused.stderr
    assert _index_validity(empty_db_url, "users_live_email_key") is None
    assert "0003.users-live-email-key" not in _applied(empty_db_url)

    rebuilt = _run(command, env, tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert _index_validity(empty_db_url, "users_live_email_key") is True
