"""A throwaway, freshly migrated database to read types from (embedded by default)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from service import embedded, migrate
from service.config import MIGRATIONS_DIR


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def admin_url(database_url: str | None) -> Iterator[str]:
    """The given server URL (needs CREATEDB), or a temporary embedded server's."""
    if database_url:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="rawpost-scratch-") as tmp:
        server = embedded.start_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@contextmanager
def scratch_database(
    database_url: str | None, migrations_dir: Path = MIGRATIONS_DIR
) -> Iterator[str]:
    """Create a database, apply every migration to it, yield its URL, then drop it."""
    with admin_url(database_url) as admin:
        name = f"rawpost_scratch_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = _with_database(admin, name)
            migrate.apply(url, echo=lambda _: None, migrations_dir=migrations_dir)
            yield url
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
