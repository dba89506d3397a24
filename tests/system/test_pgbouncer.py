"""rawpost behind a real PgBouncer (Debian's package) in transaction mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import load_settings
from service.db.pool import SERVER_SETTINGS
from tests.helpers import (
    DB,
    PASSWORD,
    TEST_ENV,
    bearer,
    body_of,
    cache_caught_up,
    free_port,
    mint_token,
)

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVER_CONNECTIONS = 4
# asyncpg sends these at start-up; PgBouncer tracks only a few (TimeZone and
# application_name among them) and refuses the rest unless told to drop them.
IGNORED_STARTUP_PARAMETERS = ",".join(
    [
        "extra_float_digits",
        *(k for k in SERVER_SETTINGS if k not in {"TimeZone", "application_name"}),
    ]
)


@pytest.fixture
def bouncer_url(db_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test's database; its URL."""
    if not Path(PGBOUNCER).exists():
        raise AssertionError("pgbouncer is not installed: apt-get install pgbouncer")
    parts = urlsplit(db_url)
    dbname = parts.path.lstrip("/")
    socket_dir = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    server = f"host={socket_dir} port={parts.port or 5432} dbname={dbname}"
    server += f" user={parts.username or 'postgres'}"
    if parts.password:
        server += f" password={parts.password}"
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="rawpost-pgbouncer-"))
    workdir.chmod(0o777)  # PgBouncer refuses to run as root; it runs as another user
    (workdir / "users.txt").write_text('"postgres" ""\n')
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{dbname} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
max_client_conn = 200
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
ignore_startup_parameters = {IGNORED_STARTUP_PARAMETERS}
"""
    )
    for f in workdir.iterdir():
        f.chmod(0o666)
    user = "embedded_postgres" if os.geteuid() == 0 else None
    process = subprocess.Popen([PGBOUNCER, str(ini)], user=user, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None:
                    error = process.stderr.read() if process.stderr else b""
                    raise AssertionError(f"pgbouncer did not start: {error!r}") from None
                time.sleep(0.1)
        yield f"postgresql://{parts.username or 'postgres'}@127.0.0.1:{port}/{dbname}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_kind_of_request_works_behind_pgbouncer_in_transaction_mode(
    bouncer_url: str, db: DB
) -> None:
    settings = load_settings(
        environ=TEST_ENV,
        overrides={
            "database_url": bouncer_url,
            "statement_cache_size": 0,
            "pool_min_size": 2,
            "pool_max_size": 12,
        },
    )
    with TestClient(app=create_app(settings)) as client:
        for i in range(30):  # more requests than server connections, several times over
            user = body_of(
                client.post(
                    "/api/users",
                    json={"email": f"u{i}@x.io", "name": f"U{i}", "password": PASSWORD},
                    headers={"Idempotency-Key": f"k{i}"},
                ),
                201,
            )
            # The user's own token: the caller look-up and the posts' rules behind PgBouncer.
            own = bearer(mint_token(user["id"]))
            post = body_of(
                client.post("/api/posts", json={"title": "T", "content": "C"}, headers=own), 201
            )
            assert body_of(client.get(f"/api/posts/{post['id']}", headers=own), 200) == post
            embedded = client.get(f"/api/users/{user['id']}?include=posts", headers=own)
            assert body_of(embedded, 200)["posts"]
            body_of(client.patch(f"/api/users/{user['id']}", json={"name": "V"}, headers=own), 200)
        replay = client.post(
            "/api/users",
            json={"email": "u0@x.io", "name": "U0", "password": PASSWORD},
            headers={"Idempotency-Key": "k0"},
        )
        assert replay.headers["idempotent-replayed"] == "true"
        page = body_of(client.get("/api/users?limit=100", headers=own), 200)
        assert len(page["items"]) == 30
        assert body_of(client.get("/health/ready"), 200)["status"] == "ready"
        with psycopg.connect(bouncer_url) as direct:
            # through PgBouncer too: any query works on a server connection it lends
            assert direct.execute("SELECT 1").fetchone() == (1,)
    servers = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'rawpost'"
    ).fetchone()
    assert servers is not None and int(str(servers[0])) <= SERVER_CONNECTIONS


def _behind_bouncer(bouncer_url: str, **overrides: object) -> TestClient:  # type: ignore[type-arg]
    settings = load_settings(
        environ=TEST_ENV,
        overrides={"database_url": bouncer_url, "statement_cache_size": 0, **overrides},
    )
    return TestClient(app=create_app(settings))


def _quiet_rename(db: DB, user_id: str, name: str) -> None:
    """A change that notifies nobody: only an uncached read can see it."""
    db.execute("SET session_replication_role = replica")
    db.execute("UPDATE users SET name = %s WHERE id = %s", (name, user_id))
    db.execute("SET session_replication_role = origin")


def test_behind_pgbouncer_the_cache_works_and_hears_every_change(bouncer_url: str, db: DB) -> None:
    """The cache's poller is one statement at a time on a connection of its own, so it
    works through PgBouncer in transaction mode: answers come from memory, a write is
    read back at once, and a change made elsewhere is heard within the bound."""
    with _behind_bouncer(bouncer_url) as client:
        user = body_of(
            client.post("/api/users", json={"email": "b@x.io", "name": "B", "password": PASSWORD}),
            201,
        )
        url = f"/api/users/{user['id']}"
        cache = client.app.state.cache
        cache_caught_up(client)  # the poller works through PgBouncer
        client.get(url)
        _quiet_rename(db, user["id"], "Quiet")
        assert client.get(url).json()["name"] == "B"  # from memory
        renamed = client.patch(
            url, json={"name": "Renamed"}, headers=bearer(mint_token(user["id"]))
        )
        assert renamed.status_code == 200
        assert client.get(url).json()["name"] == "Renamed"  # the writer drops its own
        db.execute("UPDATE users SET name = 'Elsewhere' WHERE id = %s", (user["id"],))
        deadline = time.monotonic() + 1
        while client.get(url).json()["name"] != "Elsewhere":
            assert time.monotonic() < deadline, "a change made elsewhere was not heard in 1 s"
            time.sleep(0.01)
        assert cache.counts.hits >= 1
