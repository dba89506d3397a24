"""Deploying without Docker: the compose file, the image's commands, safe migrations.

There is no Docker engine in CI, so the container's commands are read from the Dockerfile
and docker-compose.yml and run here as plain processes, on loopback, against a real
PostgreSQL. Every process started here is stopped by its pid, with bounded waits.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from yoyo import read_migrations

from service import migrate
from service.resources import MIGRATIONS_DIR
from tests.helpers import TEST_JWT_SECRET, migrate_to

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
OPTIONAL_PROFILES = ("pgbouncer", "redis")
# The indexes the SQL files rely on, created by the migrations under these names.
INDEXES = (
    "users_live_email_key",
    "users_live_created_idx",
    "posts_live_created_idx",
    "posts_author_created_idx",
)
# Seconds: a command that takes longer than this is broken, not slow.
COMMAND_TIMEOUT = 120


# --- reading the deployment files ------------------------------------------------------


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated. "
            "Install Debian's package (`apt-get install docker-compose`; no Docker engine is "
            "needed); .ci/run installs it before running the tests."
        )
    return found


def _compose_command(*profiles: str) -> list[str]:
    command = [_docker_compose(), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        command += ["--profile", profile]
    return command


def _compose_config(*profiles: str) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, values normalised)."""
    result = subprocess.run(
        [*_compose_command(*profiles), "config"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@dataclass(frozen=True)
class Image:
    """What the runtime stage of the Dockerfile says about starting the container."""

    cmd: list[str]
    env: dict[str, str]
    exposed: list[str]


def _dockerfile_instructions() -> list[str]:
    """One string per instruction: comments dropped, continuation lines joined."""
    instructions: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instructions.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _image() -> Image:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    runtime = instructions[last_from:]

    def arguments(keyword: str) -> list[str]:
        return [
            line[len(keyword) :].strip() for line in runtime if line.upper().startswith(keyword)
        ]

    cmds = arguments("CMD ")
    assert cmds, "the runtime stage has no CMD"
    cmd = json.loads(cmds[-1])
    env: dict[str, str] = {}
    for line in arguments("ENV "):
        for token in shlex.split(line):
            key, _, value = token.partition("=")
            env[key] = value
    exposed = [port for line in arguments("EXPOSE ") for port in line.split()]
    return Image(cmd=cmd, env=env, exposed=exposed)


# --- running the container's commands as processes -------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    service = _compose_config()["services"]["migrate"]
    return _executable(service["command"]), _process_env(
        _image(), service, DATABASE_URL=database_url
    )


def _run(
    command: Sequence[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


# --- databases ---------------------------------------------------------------------------


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


# --- the compose file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "profiles",
    [(), ("pgbouncer",), ("redis",), OPTIONAL_PROFILES],
    ids=["default", "pgbouncer", "redis", "all-profiles"],
)
def test_compose_file_validates_with_and_without_its_optional_profiles(
    profiles: tuple[str, ...],
) -> None:
    result = subprocess.run(
        [*_compose_command(*profiles), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_compose_starts_db_healthy_then_a_one_shot_migrate_then_the_api() -> None:
    services = _compose_config(*OPTIONAL_PROFILES)["services"]

    assert services["db"]["healthcheck"]["test"], "db needs a healthcheck for migrate to wait on"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    assert services["api"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert "/health/ready" in " ".join(services["api"]["healthcheck"]["test"])

    # The default stack is exactly db, migrate, api; the extras only come with a profile.
    for name in ("db", "migrate", "api"):
        assert "profiles" not in services[name], name
    for name in OPTIONAL_PROFILES:
        assert services[name]["profiles"] == [name]
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert services["pgbouncer"]["environment"]["DB_HOST"] == "db"

    # migrate needs a session (advisory lock, non-transactional index builds) and asyncpg
    # has no statement_cache_size=0 setting yet: neither may go through PgBouncer.
    for name in ("migrate", "api"):
        assert "@db:" in services[name]["environment"]["DATABASE_URL"], name


def test_the_image_command_is_the_api_command_and_ports_agree() -> None:
    image = _image()
    api = _compose_config()["services"]["api"]

    # Exec form, so `docker stop`'s SIGTERM reaches rawpost rather than a shell.
    assert isinstance(image.cmd, list) and all(isinstance(arg, str) for arg in image.cmd)
    assert api["command"] == image.cmd
    port = api["environment"]["RAWPOST_PORT"]
    assert image.exposed == [port]
    assert [str(p["target"]) for p in api["ports"]] == [port]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(api["healthcheck"]["test"])


# --- the container's commands, outside Docker ----------------------------------------------


def test_the_api_container_command_serves_live_and_ready_and_stops_on_sigterm(
    db_url: str, tmp_path: Path
) -> None:
    image = _image()
    api = _compose_config()["services"]["api"]
    port = _free_port()
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


# --- the migrations are safe to deploy -------------------------------------------------------


def test_every_non_transactional_migration_is_linted_as_one_and_only_those() -> None:
    """squawk assumes a transaction around each file (.ci/run); yoyo's header decides."""
    for migration in read_migrations(str(MIGRATIONS_DIR)):
        migration.load()
        for path in (Path(migration.path), Path(migration.path).with_suffix(".rollback.sql")):
            says_so = "-- squawk-disable-assume-in-transaction" in path.read_text()
            assert says_so == (not migration.use_transactions), path.name


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
