"""`rawpost migrate rehearse`: try the pending migrations on a scratch copy of the target.

The target is only read (pg_dump of its schema, COPY of its rows); everything else
happens in a scratch database on the same server, dropped at the end.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import psycopg

from rawpost_devtools.rehearse.copy import copy_rows, copy_schema, describe, list_tables
from rawpost_devtools.rehearse.locks import LockSeen, Sampler, locks_seen, probe_locks
from service import embedded
from service.migrate import REHEARSAL_LOCK_KEY, Echo, advisory_lock, backend_for, libpq_url, load
from service.migrate import bookkeeping as bk
from service.resources import SQL_DIR


class Step(msgspec.Struct):
    migration: str
    seconds: float
    locks: list[LockSeen]
    exact: bool  # False: sampled while a non-transactional migration ran
    error: str | None = None


def rehearse(
    database_url: str,
    echo: Echo = print,
    *,
    migrations_dir: Path,
    record_file: Path,
    with_data: bool = False,
    sample: int | None = None,
    lock_timeout: str = "5s",
    statement_timeout: str = "15min",
    sql_dir: Path = SQL_DIR,
) -> bool:
    """Rehearse every pending migration on a scratch copy; True when all went well."""
    target = libpq_url(database_url)
    migrations: Any = load(migrations_dir)
    # Read-only: yoyo's backend would create its bookkeeping tables in the target.
    with psycopg.connect(target, autocommit=True) as conn:
        applied = bk.applied_ids(conn)
        fingerprint = bk.fingerprint(conn)
        identity = bk.database_identity(conn)
        tables = sorted(list_tables(conn))
    todo: Any = migrations.__class__([m for m in migrations if m.id not in applied])
    ids = [m.id for m in todo]
    if not ids:
        echo("schema is up to date; nothing to rehearse")
        return True
    what = "schema and data" + (f" (at most {sample} rows a table)" if sample else "")
    echo(f"rehearsing {len(ids)} pending migration(s) on a copy of {describe(target)}:")
    echo(f"  {', '.join(ids)}")
    echo(
        f"  copying {what if with_data else 'schema'}; lock_timeout={lock_timeout},"
        f" statement_timeout={statement_timeout}; the target is only read"
    )

    with advisory_lock(target, echo, key=REHEARSAL_LOCK_KEY):
        _drop_leftovers(target, echo)
        return _rehearse(
            target,
            echo,
            todo,
            ids,
            tables,
            fingerprint,
            identity,
            record_file,
            with_data=with_data,
            sample=sample,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
            sql_dir=sql_dir,
        )


def _scratch_prefix(target: str) -> str:
    """Scratch databases are named after their target, so a rehearsal (holding the
    target's rehearsal lock) can tell its own leftovers from another target's."""
    name = urlsplit(target).path.lstrip("/")
    return f"rawpost_rehearse_{hashlib.sha256(name.encode()).hexdigest()[:8]}_"


def _drop_leftovers(target: str, echo: Echo) -> None:
    """Scratch databases of an interrupted rehearsal of this same target."""
    prefix = _scratch_prefix(target)
    with psycopg.connect(target, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database")
            if str(r[0]).startswith(prefix)
        ]
    for name in names:
        echo(f"  dropping {name}, left behind by an interrupted rehearsal")
        embedded.drop_database(target, name)


def _rehearse(
    target: str,
    echo: Echo,
    todo: Any,
    ids: list[str],
    tables: list[str],
    fingerprint: str,
    identity: str,
    record_file: Path,
    *,
    with_data: bool,
    sample: int | None,
    lock_timeout: str,
    statement_timeout: str,
    sql_dir: Path,
) -> bool:
    scratch_name = f"{_scratch_prefix(target)}{uuid.uuid4().hex[:12]}"
    embedded.create_database(target, scratch_name)
    scratch = embedded.with_database(target, scratch_name)
    app_name = f"rawpost-rehearse-{scratch_name[-12:]}"
    options = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    steps: list[Step] = []
    problems: list[str] = []
    try:
        echo("  [copy] schema (pg_dump --schema-only)")
        try:
            copy_schema(target, scratch)
            internal = [t for t in tables if t in bk.INTERNAL_TABLES]
            with (
                psycopg.connect(target) as src,
                psycopg.connect(scratch, autocommit=True) as dst,
            ):
                copy_rows(src, dst, tables if with_data else internal, sample, echo)
        except subprocess.CalledProcessError as exc:
            problems.append(f"copying the schema failed: {exc.stderr.decode().strip()[:500]}")
        except psycopg.Error as exc:
            problems.append(f"copying rows failed: {_first_line(exc)}")

        for i, migration in enumerate([] if problems else todo):
            echo(f"  [{i + 1}/{len(todo)}] {migration.id} ...")
            with psycopg.connect(scratch, autocommit=True) as conn:
                before = list_tables(conn)
            step = Step(migration.id, 0.0, [], exact=migration.use_transactions)
            steps.append(step)
            try:
                if migration.use_transactions:
                    text = Path(migration.path).read_text()
                    step.locks = probe_locks(scratch, text, options, before)
                sampler = Sampler(scratch, app_name)
                if not migration.use_transactions:
                    sampler.start()
                started = time.monotonic()
                try:
                    with backend_for(scratch, application_name=app_name, **options) as b:
                        b.apply_migrations(todo[i : i + 1])
                finally:
                    sampler.stop.set()
                    if sampler.is_alive():
                        sampler.join(5)
                step.seconds = time.monotonic() - started
                if not migration.use_transactions:
                    step.locks = locks_seen(sampler.rows, before)
            except Exception as exc:
                step.error = _first_line(exc)
                problems.append(f"{migration.id}: {step.error}")
                _print_step(echo, step)
                break
            _print_step(echo, step)

        if not problems:
            echo("  [check] rawpost sql check against the migrated copy")
            from rawpost_devtools.sqlcheck import check

            with psycopg.connect(scratch, autocommit=True) as conn:
                after_forward = bk.fingerprint(conn)
                failures = check(conn, sql_dir)
            for line in failures:
                echo(f"        {line}")
            problems += failures

        if not problems:
            echo("  [rollback] rolling the pending migrations back, newest first, then forward")
            try:
                with backend_for(scratch, **options) as b:
                    started = time.monotonic()
                    b.rollback_migrations(b.to_rollback(todo))
                    echo(f"        rolled back in {time.monotonic() - started:.2f} s")
                    started = time.monotonic()
                    b.apply_migrations(b.to_apply(todo))
                    echo(f"        applied again in {time.monotonic() - started:.2f} s")
                with psycopg.connect(scratch, autocommit=True) as conn:
                    if bk.fingerprint(conn) != after_forward:
                        problems.append("rollback then apply did not give back the same schema")
            except Exception as exc:
                problems.append(f"rollback/apply round trip failed: {_first_line(exc)}")
    finally:
        embedded.drop_database(target, scratch_name)
        echo(f"  dropped the scratch database {scratch_name}")

    if problems:
        echo(f"REHEARSAL FAILED ({len(problems)} problem(s)):")
        for line in problems:
            echo(f"  - {line}")
        return False
    bk.save_rehearsal(
        record_file,
        bk.Rehearsal(
            pending=ids,
            fingerprint=fingerprint,
            rehearsed_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            database=identity,
            target=describe(target),
        ),
    )
    echo(f"rehearsal passed; recorded schema fingerprint {fingerprint[:12]} in {record_file}")
    echo("`rawpost migrate apply` will refuse if the target's schema changes before it runs")
    return True


def _print_step(echo: Echo, step: Step) -> None:
    if step.error:
        echo(f"        FAILED: {step.error}")
        return
    how = "locks held" if step.exact else "locks sampled while it ran (non-transactional)"
    echo(f"        took {step.seconds:.2f} s; {how}:")
    for lock in step.locks:
        flag = ""
        if lock.mode == "AccessExclusiveLock" and lock.kind == "table" and lock.existed_before:
            flag = "  <-- ACCESS EXCLUSIVE on an existing table: blocks reads and writes"
        echo(f"          {lock.mode:<24} {lock.kind:<8} {lock.relation}{flag}")
    if not step.locks:
        echo("          (none seen)")


def _first_line(exc: BaseException) -> str:
    """PostgreSQL's message with its DETAIL (e.g. the duplicated key), on one line."""
    text = str(exc).strip() or type(exc).__name__
    return " / ".join(line.strip() for line in text.splitlines()[:3] if line.strip())
