"""Schema migrations through yoyo's Python API (yoyo connects with psycopg, not asyncpg)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from service.config import MIGRATIONS_DIR

# Held for the whole apply, so concurrent starters apply each migration once; a
# session-level advisory lock vanishes with its connection if the process dies.
ADVISORY_LOCK_KEY = 0x7261_7770  # "rawp"

Echo = Callable[[str], None]


def yoyo_url(database_url: str) -> str:
    """yoyo needs the driver in the scheme: postgresql+psycopg://..."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", database_url)


def migration_ids() -> list[str]:
    """Ids of every migration in migrations/, oldest first."""
    return [m.id for m in read_migrations(str(MIGRATIONS_DIR))]


def pending(database_url: str) -> list[str]:
    backend = get_backend(yoyo_url(database_url))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))]
    finally:
        backend.connection.close()


@contextmanager
def advisory_lock(database_url: str) -> Iterator[None]:
    with psycopg.connect(_libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def apply(
    database_url: str, echo: Echo = print, *, migrations_dir: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply pending migrations under the advisory lock; return the ids applied."""
    with advisory_lock(database_url):
        backend = get_backend(yoyo_url(database_url))
        try:
            todo: Any = backend.to_apply(read_migrations(str(migrations_dir)))
            if not todo:
                echo("schema is up to date; nothing to apply")
                return []
            echo(f"applying {len(todo)} migration(s): {', '.join(m.id for m in todo)}")
            with backend.lock():
                for i, migration in enumerate(todo):
                    echo(f"  [{i + 1}/{len(todo)}] {migration.id}")
                    backend.apply_migrations(todo[i : i + 1])
            echo("done")
            return [m.id for m in todo]
        finally:
            backend.connection.close()


def _libpq_url(database_url: str) -> str:
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", database_url)
