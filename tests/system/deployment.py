"""The deployment files read as Docker reads them, and their commands run as plain processes
on loopback (there is no Docker engine in CI). Every process started here is stopped by
its pid, with bounded waits."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

COMPOSE_FILE = REPO / "docker-compose.yml"

DOCKERFILE = REPO / "Dockerfile"


# Seconds: a command that takes longer than this is broken, not slow.
COMMAND_TIMEOUT = 120


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated. "
            "Install Debian's package (`apt-get install docker-compose`; no Docker engine is "
            "needed); .ci/run installs it before running the tests."
        )
    return found


def compose_command(*profiles: str) -> list[str]:
    command = [docker_compose(), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        command += ["--profile", profile]
    return command


def compose_config(*profiles: str) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, values normalised)."""
    result = subprocess.run(
        [*compose_command(*profiles), "config"],
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


def dockerfile_instructions() -> list[str]:
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


def read_image() -> Image:
    instructions = dockerfile_instructions()
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
