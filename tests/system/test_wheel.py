"""The built wheel serves on its own: installed into a fresh virtual environment, away
from the source tree, it migrates a database and answers requests.

The steps are the Dockerfile's builder stage (uv export of the locked production
dependencies, uv build --wheel, uv pip install), so the image installs what passes here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.helpers import TEST_ENV, free_port

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds for one install step: the dependencies come from uv's cache


def _uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the wheel (the README's first step installs it)")
    return found


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "--wheel", "-o", dist, cwd=REPO)
    (built,) = dist.glob("rawpost-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and the locked production dependencies only."""
    work = tmp_path_factory.mktemp("wheel")
    uv = _uv()
    requirements = work / "requirements.txt"
    _run(
        uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-emit-workspace",
        "-o", requirements, cwd=REPO,
    )  # fmt: skip
    venv = work / "venv"
    _run(uv, "venv", "--python", os.environ.get("PYTHON", "python3"), venv, cwd=work)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--python", python, "-r", requirements, cwd=work)
    _run(uv, "pip", "install", "--python", python, "--no-deps", wheel, cwd=work)
    return venv


def test_the_wheel_carries_the_sql_files_and_migrations_and_no_tools(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sql = {p.relative_to(REPO).as_posix() for p in (REPO / "sql").rglob("*.sql")}
    migrations = {p.relative_to(REPO).as_posix() for p in (REPO / "migrations").glob("*.sql")}
    assert {f"service/_data/{name}" for name in sql | migrations} <= names
    assert not [n for n in names if n.startswith(("rawpost_devtools/", "tests/", "bench/"))]


def test_the_installed_wheel_migrates_and_serves_away_from_the_source_tree(
    installed: Path, empty_db_url: str, tmp_path: Path
) -> None:
    bin_dir = installed / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAWPOST_", "VIRTUAL_ENV"))}
    env.update(TEST_ENV, DATABASE_URL=empty_db_url, RAWPOST_WORKERS="1")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # Not the checkout, and not importable from it: only the installed package is found.
    cwd = tmp_path
    probe = subprocess.run(
        [bin_dir / "python", "-c", "import service, sys; print(service.__file__)"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert str(installed) in probe.stdout, probe.stdout + probe.stderr
    missing = subprocess.run(
        [bin_dir / "python", "-c", "import rawpost_devtools"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode != 0, "the development tools must not be installed"

    migrated = subprocess.run(
        [bin_dir / "rawpost", "migrate", "apply"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [bin_dir / "rawpost", "serve", "--port", str(port)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        status, body = _wait_ready(f"http://127.0.0.1:{port}/health/ready", server)
        assert status == 200, body
        assert body["pending_migrations"] == []
        status, users = _get(f"http://127.0.0.1:{port}/api/users")
        assert status == 200 and users["items"] == [], users
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()


def test_serving_without_database_url_and_without_the_embedded_extra_names_the_install(
    installed: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAWPOST_", "DATABASE_URL"))}
    env.update(TEST_ENV)
    result = subprocess.run(
        [installed / "bin" / "rawpost", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and "pip install 'rawpost[embedded]'" in lines[-1]
    assert "Traceback" not in result.stderr


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> tuple[int, dict[str, object]]:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"rawpost serve exited ({server.returncode})"
        try:
            status, body = _get(url)
            if status == 200 or time.monotonic() > deadline:
                return status, body
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
