"""Copying the target into the scratch database: its schema (pg_dump | psql) and, with
--with-data, its rows (binary COPY, optionally a sample per table). The target is only
read."""

from __future__ import annotations

import re
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql

from service import embedded
from service.migrate import Echo
from service.migrate import bookkeeping as bk


def list_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p')"
    ).fetchall()
    return {r[0] for r in rows}


def describe(url: str) -> str:
    """Host (or socket folder) and database name: never user, password or options."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    return f"{parts.hostname or socket_dir or 'local socket'}/{parts.path.lstrip('/')}"


_SET = re.compile(rb"^SET (\w+) = ")


def copy_schema(source: str, target: str) -> None:
    """pg_dump the source's schema (the embedded PostgreSQL 18's pg_dump, whatever the
    server) and load it with psql. A pg_dump newer than the server starts its output with
    settings the server does not know (18 writes `SET transaction_timeout = 0;`, which
    14 to 16 reject), so SET lines naming a setting the target lacks are left out; the
    rest of a dump of a server is in that server's own dialect."""
    with psycopg.connect(target, autocommit=True) as conn:
        known = {row[0].encode() for row in conn.execute("SELECT name FROM pg_settings")}
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
    lines = dump.stdout.splitlines(keepends=True)
    kept = b"".join(
        line for line in lines if not (m := _SET.match(line)) or m.group(1).lower() in known
    )
    subprocess.run(
        [str(embedded.binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", target],
        input=kept,
        capture_output=True,
        check=True,
    )


def copy_rows(
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
