"""`rawpost migrate rehearse`: try the pending migrations on a scratch copy of the target.

The target is only read (pg_dump of its schema, COPY of its rows); everything else
happens in a scratch database on the same server, dropped at the end.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import psycopg
from psycopg import sql

from service import embedded
from service.migrate import REHEARSAL_LOCK_KEY, Echo, advisory_lock, backend_for, libpq_url, load
from service.migrate import bookkeeping as bk
from service.resources import SQL_DIR


class LockSeen(msgspec.Struct, frozen=True):
    relation: str
    kind: str  # "table", "index", ...
    mode: str
    existed_before: bool


class Step(msgspec.Struct):
    migration: str
    seconds: float
    locks: list[LockSeen]
    exact: bool  # False: sampled while a non-transactional migration ran
    error: str | None = None


_LOCKS_SQL = """
SELECT c.relname, c.relkind::text, l.mode
FROM pg_locks AS l
JOIN pg_class AS c ON c.oid = l.relation
WHERE l.locktype = 'relation' AND c.relnamespace = 'public'::regnamespace AND {who}
"""
_KINDS = {"r": "table", "p": "table", "i": "index", "S": "sequence", "v": "view"}


def _tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p')"
    ).fetchall()
    return {r[0] for r in rows}


def _describe(url: str) -> str:
    """Host (or socket folder) and database name: never user, password or options."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    return f"{parts.hostname or socket_dir or 'local socket'}/{parts.path.lstrip('/')}"


def _copy_schema(source: str, target: str) -> None:
    dump = subprocess.run(
        [
            str(embedded.binary("pg_dump")),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--dbname",
            source,
        ],
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [str(embedded.binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", target],
        input=dump.stdout,
        capture_output=True,
        check=True,
    )


def _copy_rows(
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    tables: list[str],
    sample: int | None,
    echo: Echo,
) -> None:
    for table in tables:
        internal = table in bk.INTERNAL_TABLES
        if not internal:
            # Application rows may be a sample: copy them without FK triggers (needs the
            # right to set session_replication_role); bookkeeping rows go in as they are.
            target.execute("SET session_replication_role = replica")
        limit = f" LIMIT {int(sample)}" if sample is not None and not internal else ""
        copied = 0
        name = sql.Identifier(table)
        with (
            source.cursor().copy(
                sql.SQL("COPY (SELECT * FROM {}{}) TO STDOUT (FORMAT binary)").format(
                    name, sql.SQL(limit)
                )
            ) as out,
            target.cursor().copy(
                sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(name)
            ) as into,
        ):
            for chunk in out:
                into.write(chunk)
                copied += len(chunk)
        if not internal:
            target.execute("RESET session_replication_role")
        echo(f"    copied {table} ({copied / 1e6:.1f} MB)")
    for seq, value in source.execute(
        "SELECT quote_ident(sequencename), last_value FROM pg_sequences"
        " WHERE schemaname = 'public' AND last_value IS NOT NULL"
    ):
        target.execute("SELECT setval(%s, %s)", (seq, value))


def _probe_locks(
    url: str, sql_text: str, options: dict[str, str], before: set[str]
) -> list[LockSeen]:
    """Run a transactional migration, read the locks it holds, then roll it back."""
    settings = " ".join(f"-c {k}={v}" for k, v in options.items())
    with psycopg.connect(url, options=settings) as conn:
        conn.execute(sql_text.encode())  # a whole file: the simple protocol runs it all
        rows = conn.execute(_LOCKS_SQL.format(who="l.pid = pg_backend_pid()")).fetchall()
        conn.rollback()
    return _locks(rows, before)


def _locks(rows: list[tuple[Any, ...]], before: set[str]) -> list[LockSeen]:
    seen = {
        (r[0], _KINDS.get(r[1], r[1]), r[2])
        for r in rows
        if r[0] not in bk.INTERNAL_TABLES and not r[0].startswith("_yoyo")
    }
    return [
        LockSeen(relation=rel, kind=kind, mode=mode, existed_before=rel in before)
        for rel, kind, mode in sorted(seen)
    ]


class _Sampler(threading.Thread):
    """Polls pg_locks for the migration's session while a non-transactional one runs."""

    def __init__(self, url: str, application_name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.application_name = url, application_name
        self.rows: list[tuple[Any, ...]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        who = "l.pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = %s)"
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.rows += conn.execute(
                        _LOCKS_SQL.format(who=who), (self.application_name,)
                    ).fetchall()
                    time.sleep(0.005)
        except psycopg.Error:
            pass  # the scratch database went away; the migration's own error is reported


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
        tables = sorted(_tables(conn))
    todo: Any = migrations.__class__([m for m in migrations if m.id not in applied])
    ids = [m.id for m in todo]
    if not ids:
        echo("schema is up to date; nothing to rehearse")
        return True
    what = "schema and data" + (f" (at most {sample} rows a table)" if sample else "")
    echo(f"rehearsing {len(ids)} pending migration(s) on a copy of {_describe(target)}:")
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
            _copy_schema(target, scratch)
            internal = [t for t in tables if t in bk.INTERNAL_TABLES]
            with (
                psycopg.connect(target) as src,
                psycopg.connect(scratch, autocommit=True) as dst,
            ):
                _copy_rows(src, dst, tables if with_data else internal, sample, echo)
        except subprocess.CalledProcessError as exc:
            problems.append(f"copying the schema failed: {exc.stderr.decode().strip()[:500]}")
        except psycopg.Error as exc:
            problems.append(f"copying rows failed: {_first_line(exc)}")

        for i, migration in enumerate([] if problems else todo):
            echo(f"  [{i + 1}/{len(todo)}] {migration.id} ...")
            with psycopg.connect(scratch, autocommit=True) as conn:
                before = _tables(conn)
            step = Step(migration.id, 0.0, [], exact=migration.use_transactions)
            steps.append(step)
            try:
                if migration.use_transactions:
                    text = Path(migration.path).read_text()
                    step.locks = _probe_locks(scratch, text, options, before)
                sampler = _Sampler(scratch, app_name)
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
                    step.locks = _locks(sampler.rows, before)
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
            target=_describe(target),
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
