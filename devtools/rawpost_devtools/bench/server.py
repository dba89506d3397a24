"""The server under test: on this machine, used or started, its data and tokens checked."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click
import psycopg

from rawpost_devtools.bench.scenarios import (
    BENCH_DIR,
    CREATED_EMAILS,
    CREATED_POST_TITLE,
    SampleIds,
    tail,
)
from service.auth.tokens import Keys, development_secret, mint_access_token
from service.config import Settings
from service.db.pool import SERVER_SETTINGS


def check_loopback(url: str) -> tuple[str, int]:
    """Host and port of `url`, which must name this machine: the benchmark never leaves it."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise click.BadParameter(f"{url!r}: expected http://host:port", param_hint="--url")
    port = parts.port or 80
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise click.BadParameter(f"{parts.hostname}: {exc}", param_hint="--url") from None
    if not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
        raise click.BadParameter(
            f"{parts.hostname} is not a loopback address: rawpost bench only measures a"
            " server on this machine (use bench/locustfile.py for other deployments)",
            param_hint="--url",
        )
    return parts.hostname, port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


@contextmanager
def server(
    url: str,
    *,
    start: bool | None,
    database_url: str | None,
    env: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Use the server answering at `url`, or start `rawpost serve` there (and stop it),
    with `env` added to this process's environment."""
    host, port = check_loopback(url)
    if http_status(f"{url}/health/live") is not None:
        if start:
            raise click.ClickException(
                f"something already answers at {url}: stop it, or drop --serve"
            )
        click.echo(f"using the server already running at {url}")
        yield
        return
    if start is False:
        raise click.ClickException(f"no server answers at {url} (and --no-serve was given)")
    env = {**os.environ, **(env or {})}
    if database_url:
        env["DATABASE_URL"] = database_url
    # Every benchmark request comes from one address (and sign-ins from a few emails):
    # the rate limits would answer most of them 429. Off unless set explicitly.
    for limit in ("RAWPOST_RATE_LIMIT", "RAWPOST_LOGIN_RATE_LIMIT", "RAWPOST_SIGNUP_RATE_LIMIT"):
        env.setdefault(limit, "off")
    command = [sys.executable, "-m", "service.cli", "serve", "--host", host, "--port", str(port)]
    with _process("rawpost serve", command, env, url):
        yield


# The reference apps of bench/reference/, by the name their rows carry (NAME@minimal).
REFERENCES = {"minimal": "minimal_app", "floor": "raw_asgi"}


@contextmanager
def reference_server(
    name: str, url: str, *, workers: int, pool_size: int, database_url: str, secret: str
) -> Iterator[None]:
    """Start bench/reference's app `name` under granian at `url`, as `rawpost serve` runs
    (uvloop, no websockets, no access log), with rawpost's number of workers and pool size
    and rawpost's session settings, so the comparison is of the code alone."""
    host, port = check_loopback(url)
    if http_status(f"{url}/health/live") is not None:
        raise click.ClickException(f"something already answers at {url}: stop it first")
    env = {
        **os.environ,
        "DATABASE_URL": with_session_settings(database_url),
        "REFERENCE_POOL_SIZE": str(pool_size),
        "RAWPOST_JWT_SECRET": secret,
    }
    command = [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop"),
        *("--no-ws", "--workers", str(workers), "--host", host, "--port", str(port)),
        *("--working-dir", str(BENCH_DIR / "reference"), f"{REFERENCES[name]}:app"),
    ]
    with _process(f"the {name} reference app", command, env, url):
        yield


def with_session_settings(database_url: str) -> str:
    """`database_url` with rawpost's session settings as parameters (asyncpg sends unknown
    URL parameters as settings): the references plan and run the SQL as rawpost does."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in SERVER_SETTINGS]
    query += [(k, v) for k, v in SERVER_SETTINGS.items() if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def _process(
    label: str, command: Sequence[str], env: Mapping[str, str], url: str
) -> Iterator[None]:
    """Run `command` until the block ends (SIGINT, then SIGKILL after 30 s), once its
    /health/ready answers 200; its output goes to a log file named on start."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        prefix="rawpost-bench-serve-", suffix=".log", delete=False
    )
    click.echo(f"starting {label} at {url} (log: {log.name})")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while http_status(f"{url}/health/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(
                    f"{label} did not become ready:\n{tail(Path(log.name).read_text())}"
                )
            time.sleep(0.3)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def check_data(database_url: str, ids: SampleIds) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM users WHERE id = ANY(%s::uuid[]) AND deleted_at IS NULL",
            (ids.users,),
        ).fetchone()
    found = int(str(row[0])) if row else 0
    if found != len(ids.users):
        raise click.ClickException(
            f"only {found} of the ids file's {len(ids.users)} users are in this database:"
            " run `rawpost seed` for it (or point --database-url at the seeded one)"
        )


def signing_secret(settings: Settings, database_url: str | None) -> str:
    """The secret the server signs with, so that the minted tokens are accepted: the
    configured one; the embedded database's kept one; else a fresh one, which the server
    this command starts inherits (a server already running must be given the same)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if not (database_url or settings.database_url):
        return development_secret(Path(settings.data_dir).parent)
    secret = secrets.token_urlsafe(48)
    os.environ["RAWPOST_JWT_SECRET"] = secret  # for `rawpost serve` started by server()
    return secret


def mint_tokens(secret: str, user_ids: Sequence[str], *, seconds: int) -> list[str]:
    keys = Keys(current=secret)
    return [mint_access_token(keys, user_id=uuid.UUID(u), ttl=seconds) for u in user_ids]


def check_token(url: str, token: str) -> None:
    me = f"{url}/api/users/me"  # url passed check_loopback: http(s) on loopback only
    request = urllib.request.Request(me, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        status = exc.code
    raise click.ClickException(
        f"the server refused a minted token ({status}): run the bench with the server's"
        " RAWPOST_JWT_SECRET"
    )


def delete_created(database_url: str) -> int:
    """Remove the rows the benchmark created, so every round starts from the same data."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            posts = conn.execute(
                "DELETE FROM posts WHERE title = %s", (CREATED_POST_TITLE,)
            ).rowcount
            row = conn.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()
            if row and row[0]:
                # posts.author_id has only partial indexes, so a plain DELETE's foreign-key
                # check would scan posts once per deleted user (minutes for 100k users):
                # check them all in one anti-join instead, with the per-row check off.
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in ("refresh_tokens", "refresh_families"):
                    key = "family_id" if table == "refresh_tokens" else "id"
                    conn.execute(
                        f"DELETE FROM {table} WHERE {key} IN (SELECT f.id FROM"
                        " refresh_families AS f JOIN users AS u ON u.id = f.user_id"
                        " WHERE u.email ~ %s)",
                        (CREATED_EMAILS,),
                    )
                deleted = conn.execute(
                    "DELETE FROM users AS u WHERE u.email ~ %s"
                    " AND NOT EXISTS (SELECT FROM posts AS p WHERE p.author_id = u.id)",
                    (CREATED_EMAILS,),
                ).rowcount
            else:
                # Without superuser rights: soft-delete them, so the live data set is standard.
                deleted = conn.execute(
                    "UPDATE users SET deleted_at = now() WHERE email ~ %s AND deleted_at IS NULL",
                    (CREATED_EMAILS,),
                ).rowcount
        conn.execute("VACUUM (ANALYZE) users")
        if posts:
            conn.execute("VACUUM (ANALYZE) posts")
    return deleted + posts
