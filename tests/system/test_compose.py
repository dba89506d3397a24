"""docker-compose.yml as docker-compose resolves it: it validates with and without its
profiles, starts the database healthy, then a one-shot migrate, then the API, whose
command and ports agree with the image's."""

from __future__ import annotations

import subprocess

import pytest

from tests.system.deployment import (
    COMMAND_TIMEOUT,
    REPO,
    compose_command,
    compose_config,
    read_image,
)

OPTIONAL_PROFILES = ("pgbouncer", "redis", "replica")


@pytest.mark.parametrize(
    "profiles",
    [(), ("pgbouncer",), ("redis",), ("replica",), OPTIONAL_PROFILES],
    ids=["default", "pgbouncer", "redis", "replica", "all-profiles"],
)
def test_compose_file_validates_with_and_without_its_optional_profiles(
    profiles: tuple[str, ...],
) -> None:
    result = subprocess.run(
        [*compose_command(*profiles), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_compose_starts_db_healthy_then_a_one_shot_migrate_then_the_api() -> None:
    services = compose_config(*OPTIONAL_PROFILES)["services"]

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
    # The standby clones db (pg_basebackup -R) once db is healthy.
    assert "pg_basebackup -h db" in " ".join(services["replica"]["command"])
    assert services["replica"]["depends_on"] == {"db": {"condition": "service_healthy"}}

    # migrate needs a session (advisory lock, non-transactional index builds) and asyncpg
    # has no statement_cache_size=0 setting yet: neither may go through PgBouncer.
    for name in ("migrate", "api"):
        assert "@db:" in services[name]["environment"]["DATABASE_URL"], name


def test_the_image_command_is_the_api_command_and_ports_agree() -> None:
    image = read_image()
    api = compose_config()["services"]["api"]

    # Exec form, so `docker stop`'s SIGTERM reaches rawpost rather than a shell.
    assert isinstance(image.cmd, list) and all(isinstance(arg, str) for arg in image.cmd)
    assert api["command"] == image.cmd
    port = api["environment"]["RAWPOST_PORT"]
    assert image.exposed == [port]
    assert [str(p["target"]) for p in api["ports"]] == [port]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(api["healthcheck"]["test"])
