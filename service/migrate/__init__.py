"""Schema migrations on yoyo's Python API (yoyo connects with psycopg, not asyncpg).

apply / rollback hold a session-level PostgreSQL advisory lock, so several service
instances or operators starting at once apply each migration exactly once, and the
lock vanishes with the connection if the process dies. yoyo's own lock table is not
used: a killed process would leave its row behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from service.config import MIGRATIONS_DIR
from service.migrate import bookkeeping

ADVISORY_LOCK_KEY = 0x7261_7770  # "rawp"

Echo = Callable[[str], None]


class MigrationError(Exception):
    """A migration command cannot go ahead; the message says why and what to do."""


def yoyo_url(database_url: str, **options: str) -> str:
    """yoyo needs the driver in the scheme (postgresql+psycopg://); options become -c settings."""
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", database_url)
    if options:
        settings = " ".join(f"-c {k}={v}" for k, v in options.items())
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
    backend = get_backend(yoyo_url(database_url, **options))
    try:
        yield backend
    finally:
        backend.connection.close()


def pending(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    with backend_for(database_url) as backend:
        return [m.id for m in backend.to_apply(read_migrations(str(migrations_dir)))]


@contextmanager
def advisory_lock(database_url: str, echo: Echo | None = None) -> Iterator[None]:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
        if not (got and got[0]):
            if echo:
                echo("waiting for another migration run to finish (advisory lock) ...")
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def _print_sql(echo: Echo, migration: Any, *, rollback: bool = False) -> None:
    path = Path(migration.path)
    if rollback:
        path = path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")
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
    with advisory_lock(database_url, echo), backend_for(database_url) as backend:
        todo: Any = backend.to_apply(load(migrations_dir))
        if not todo:
            echo("schema is up to date; nothing to apply")
            return []
        ids = [m.id for m in todo]
        echo(f"will apply {len(todo)} migration(s): {', '.join(ids)}")
        if rehearsals is not None:
            _check_rehearsal(database_url, ids, rehearsals, force=force, echo=echo)
        if dry_run:
            for m in todo:
                _print_sql(echo, m)
            echo("dry run: nothing applied")
            return []
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            bookkeeping.ensure_table(conn)
            for i, migration in enumerate(todo):
                how = "" if migration.use_transactions else " (non-transactional)"
                echo(f"  [{i + 1}/{len(todo)}] {migration.id}{how} ...")
                started = time.monotonic()
                backend.apply_migrations(todo[i : i + 1])
                bookkeeping.record_checksum(conn, migration)
                echo(f"        applied in {time.monotonic() - started:.2f} s")
        echo("done")
        return ids


def _check_rehearsal(
    database_url: str, ids: list[str], rehearsals: Path, *, force: bool, echo: Echo
) -> None:
    record = bookkeeping.find_rehearsal(rehearsals, ids)
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
    with advisory_lock(database_url, echo), backend_for(database_url) as backend:
        migrations: Any = load(migrations_dir)
        applied: Any = backend.to_rollback(migrations)  # newest first
        applied_ids = [m.id for m in applied]
        if to is not None and to not in applied_ids:
            raise MigrationError(f"{to} is not an applied migration; applied: {applied_ids}")
        todo = applied[:1] if to is None else applied[: applied_ids.index(to)]
        if not todo:
            echo("nothing to roll back")
            return []
        ids = [m.id for m in todo]
        echo(f"will roll back {len(todo)} migration(s), newest first: {', '.join(ids)}")
        if dry_run:
            for m in todo:
                _print_sql(echo, m, rollback=True)
            echo("dry run: nothing rolled back")
            return []
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            bookkeeping.ensure_table(conn)
            for i, migration in enumerate(todo):
                echo(f"  [{i + 1}/{len(todo)}] {migration.id} ...")
                started = time.monotonic()
                backend.rollback_migrations(todo[i : i + 1])
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
