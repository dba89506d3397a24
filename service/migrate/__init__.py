"""Schema migrations on yoyo's Python API (yoyo connects with psycopg, not asyncpg).

apply / rollback hold a session-level PostgreSQL advisory lock, so several service
instances or operators starting at once apply each migration exactly once, and the
lock vanishes with the connection if the process dies. yoyo's own lock table is not
used: a killed process would leave its row behind.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import backoff
import psycopg
from yoyo import get_backend, read_migrations

from service.migrate import bookkeeping
from service.resources import MIGRATIONS_DIR

ADVISORY_LOCK_KEY = 0x7261_7770  # "rawp": apply and rollback
REHEARSAL_LOCK_KEY = 0x7261_7771  # one rehearsal of a database at a time

Echo = Callable[[str], None]


class MigrationError(Exception):
    """A migration command cannot go ahead; the message says why and what to do."""


def yoyo_url(database_url: str, **options: str) -> str:
    """yoyo needs the driver in the scheme (postgresql+psycopg://); options become -c settings."""
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", database_url)
    if options:
        # An `options` parameter replaces libpq's PGOPTIONS; keep the operator's.
        settings = " ".join(
            [os.environ.get("PGOPTIONS", "")] + [f"-c {k}={v}" for k, v in options.items()]
        ).strip()
        url += ("&" if "?" in url else "?") + "options=" + settings.replace(" ", "%20")
    return url


def libpq_url(database_url: str) -> str:
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", database_url)


def load(migrations_dir: Path = MIGRATIONS_DIR) -> Any:
    """yoyo's MigrationList for a folder (loaded, so each knows its transactionality)."""
    migrations = read_migrations(str(migrations_dir))
    for m in migrations:
        m.load()
    return migrations


def migration_ids(migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Ids of every migration in the folder, oldest first."""
    return [m.id for m in read_migrations(str(migrations_dir))]


@contextmanager
def backend_for(database_url: str, **options: str) -> Iterator[Any]:
    """A yoyo backend. On PostgreSQL 14+ its sessions check every second that the
    client is still there, so a killed migration run does not leave a backend working
    (and holding locks) until its statement ends."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        if conn.info.server_version >= 140000:
            options = {"client_connection_check_interval": "1000", **options}
    backend = get_backend(yoyo_url(database_url, **options))
    try:
        yield backend
    finally:
        backend.connection.close()


def pending(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Ids not applied yet, oldest first (read-only)."""
    return [m.id for m in _plan(database_url, migrations_dir)[1]]


@contextmanager
def advisory_lock(
    database_url: str, echo: Echo | None = None, *, key: int = ADVISORY_LOCK_KEY
) -> Iterator[None]:
    """Hold a session advisory lock; gone with the connection if the process dies.

    Waits by polling pg_try_advisory_lock, never in pg_advisory_lock: a blocked
    SELECT is an open snapshot, and CREATE INDEX CONCURRENTLY in the run holding the
    lock would wait for it forever (a deadlock PostgreSQL cannot see).
    """
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        said = False
        while True:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if got and got[0]:
                break
            if echo and not said:
                echo("waiting for another migration run to finish (advisory lock) ...")
                said = True
            time.sleep(0.5)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _plan(database_url: str, migrations_dir: Path) -> tuple[Any, Any, list[str]]:
    """(all migrations, pending ones, applied ids unknown to this folder), read-only:
    yoyo's backend would create its bookkeeping tables just by looking."""
    migrations: Any = load(migrations_dir)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        applied = bookkeeping.applied_ids(conn)
    todo = migrations.__class__([m for m in migrations if m.id not in applied])
    unknown = sorted(applied - {m.id for m in migrations})
    return migrations, todo, unknown


def wait_for_database(database_url: str, timeout: float, echo: Echo) -> None:
    """Wait for the database to accept connections, with capped exponential backoff, so
    `serve --migrate` and `migrate apply` work whatever order things start in."""

    def retrying(details: Any) -> None:
        reason = str(details["exception"]).strip().splitlines()[-1]
        echo(
            f"database not reachable (attempt {details['tries']}: {reason});"
            f" retrying in {details['wait']:.1f} s"
        )

    @backoff.on_exception(
        backoff.expo,
        psycopg.OperationalError,
        max_time=timeout,
        max_value=5,
        on_backoff=retrying,
        raise_on_giveup=True,
    )
    def probe() -> None:
        psycopg.connect(libpq_url(database_url), connect_timeout=10).close()

    probe()


def _print_sql(echo: Echo, migration: Any, *, rollback: bool = False) -> None:
    path = bookkeeping.rollback_path(migration) if rollback else Path(migration.path)
    echo(f"-- {path.name}")
    echo(path.read_text().rstrip() if path.exists() else "-- (no rollback file)")
    echo("")


def apply(
    database_url: str,
    echo: Echo = print,
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    dry_run: bool = False,
    force: bool = False,
    rehearsals: Path | None = None,
) -> list[str]:
    """Apply pending migrations under the advisory lock; return the ids applied.

    With `rehearsals` (a record file written by `rehearse`), refuse unless `force` when
    the target's schema differs from the one the same pending set was rehearsed on.
    """
    if dry_run:
        _, todo, unknown = _plan(database_url, migrations_dir)
        _refuse_unknown(unknown, "apply")
        if not todo:
            echo("schema is up to date; nothing to apply")
            return []
        echo(f"would apply {len(todo)} migration(s): {', '.join(m.id for m in todo)}")
        if rehearsals is not None:
            _check_rehearsal(database_url, [m.id for m in todo], rehearsals, force=force, echo=echo)
        for m in todo:
            _print_sql(echo, m)
        echo("dry run: nothing applied")
        return []
    with advisory_lock(database_url, echo):
        migrations, todo, unknown = _plan(database_url, migrations_dir)
        _refuse_unknown(unknown, "apply")
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            bookkeeping.ensure_table(conn)
            adopted = bookkeeping.record_missing_checksums(
                conn, [m for m in migrations if m not in todo]
            )
        if adopted:
            echo(f"recorded checksums of {len(adopted)} migration(s) applied without rawpost")
        if not todo:
            echo("schema is up to date; nothing to apply")
            return []
        ids = [m.id for m in todo]
        echo(f"will apply {len(todo)} migration(s): {', '.join(ids)}")
        if rehearsals is not None:
            _check_rehearsal(database_url, ids, rehearsals, force=force, echo=echo)
        with (
            backend_for(database_url) as backend,
            psycopg.connect(libpq_url(database_url), autocommit=True) as conn,
        ):
            for i, migration in enumerate(todo):
                how = "" if migration.use_transactions else " (non-transactional)"
                echo(f"  [{i + 1}/{len(todo)}] {migration.id}{how} ...")
                started = time.monotonic()
                try:
                    backend.apply_migrations(todo[i : i + 1])
                except Exception as exc:
                    raise MigrationError(
                        f"{migration.id} failed: {_lines(exc)}; it was rolled back"
                        + (
                            " (non-transactional: check for a half-built index)"
                            if not migration.use_transactions
                            else ""
                        )
                        + (f"; {', '.join(ids[:i])} stay applied" if i else "")
                    ) from None
                bookkeeping.record_checksum(conn, migration)
                echo(f"        applied in {time.monotonic() - started:.2f} s")
        echo("done")
        return ids


def _lines(exc: BaseException, count: int = 3) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " / ".join(line.strip() for line in text.splitlines()[:count] if line.strip())


def _refuse_unknown(unknown: list[str], what: str) -> None:
    if unknown:
        raise MigrationError(
            f"the database has migrations this version does not know: {', '.join(unknown)};"
            f" refusing to {what} (run the release that has them, or roll them back with it)"
        )


def _check_rehearsal(
    database_url: str, ids: list[str], rehearsals: Path, *, force: bool, echo: Echo
) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        record = bookkeeping.find_rehearsal(rehearsals, bookkeeping.database_identity(conn), ids)
    if record is None:
        echo(
            "note: this pending set was not rehearsed here"
            " (`rawpost migrate rehearse` tries it on a copy first)"
        )
        return
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        current = bookkeeping.fingerprint(conn)
    if current == record.fingerprint:
        echo(f"rehearsed on this schema at {record.rehearsed_at}: fingerprint matches")
        return
    message = (
        f"the target's schema changed since this pending set was rehearsed at"
        f" {record.rehearsed_at} (fingerprint {record.fingerprint[:12]} then,"
        f" {current[:12]} now): rehearse again, or pass --force"
    )
    if not force:
        raise MigrationError(message)
    echo(f"warning: {message}; going ahead because of --force")


def rollback(
    database_url: str,
    echo: Echo = print,
    *,
    to: str | None = None,
    migrations_dir: Path = MIGRATIONS_DIR,
    dry_run: bool = False,
) -> list[str]:
    """Roll back newest first: the newest migration, or every one applied after `to`."""

    def choose() -> list[Any]:
        migrations, todo, unknown = _plan(database_url, migrations_dir)
        _refuse_unknown(unknown, "roll back")
        applied = [m for m in reversed(list(migrations)) if m not in todo]  # newest first
        applied_ids = [m.id for m in applied]
        if to is not None and to not in applied_ids:
            raise MigrationError(f"{to} is not an applied migration; applied: {applied_ids}")
        return applied[:1] if to is None else applied[: applied_ids.index(to)]

    if dry_run:
        todo = choose()
        echo(
            f"would roll back {len(todo)} migration(s), newest first:"
            f" {', '.join(m.id for m in todo) or '-'}"
        )
        for m in todo:
            _print_sql(echo, m, rollback=True)
        echo("dry run: nothing rolled back")
        return []
    with advisory_lock(database_url, echo):
        todo = choose()
        if not todo:
            echo("nothing to roll back")
            return []
        ids = [m.id for m in todo]
        echo(f"will roll back {len(todo)} migration(s), newest first: {', '.join(ids)}")
        with (
            backend_for(database_url) as backend,
            psycopg.connect(libpq_url(database_url), autocommit=True) as conn,
        ):
            bookkeeping.ensure_table(conn)
            listed: Any = load(migrations_dir)
            for i, migration in enumerate(todo):
                echo(f"  [{i + 1}/{len(todo)}] {migration.id} ...")
                started = time.monotonic()
                try:
                    backend.rollback_migrations(listed.__class__([migration]))
                except Exception as exc:
                    raise MigrationError(
                        f"rolling back {migration.id} failed: {_lines(exc)}"
                        + (f"; {', '.join(ids[:i])} were rolled back" if i else "")
                    ) from None
                bookkeeping.forget_checksum(conn, migration.id)
                echo(f"        rolled back in {time.monotonic() - started:.2f} s")
        echo("done")
        return ids


def status(
    database_url: str, migrations_dir: Path = MIGRATIONS_DIR
) -> tuple[list[bookkeeping.MigrationStatus], list[str]]:
    """Each migration's state (pending/ok/changed/unrecorded) and unknown applied ids."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        return bookkeeping.status(conn, load(migrations_dir))
