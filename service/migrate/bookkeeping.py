"""What rawpost records beside yoyo: content checksums, schema fingerprints, rehearsals."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import psycopg

# Tables of the migration machinery, left out of fingerprints and contracts.
INTERNAL_TABLES = (
    "_yoyo_migration",
    "_yoyo_log",
    "_yoyo_version",
    "yoyo_lock",
    "rawpost_migration_checksums",
)

State = Literal["pending", "ok", "changed", "unrecorded"]


class MigrationStatus(msgspec.Struct, frozen=True):
    id: str
    state: State
    applied_at: datetime | None


class Rehearsal(msgspec.Struct, frozen=True):
    pending: list[str]
    fingerprint: str
    rehearsed_at: str
    database: str  # database_identity(): which cluster and database was rehearsed
    target: str = ""  # the same, for people: host or socket, and database name


def rollback_path(migration: Any) -> Path:
    path = Path(migration.path)
    return path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")


def file_checksum(migration: Any) -> str:
    """sha256 of the migration's file and its rollback (yoyo only hashes the id)."""
    digest = hashlib.sha256(Path(migration.path).read_bytes())
    if (rollback := rollback_path(migration)).exists():
        digest.update(b"\0rollback\0" + rollback.read_bytes())
    return digest.hexdigest()


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS rawpost_migration_checksums (
            migration_id text PRIMARY KEY,
            sha256 text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def record_checksum(conn: psycopg.Connection[Any], migration: Any) -> None:
    conn.execute(
        """
        INSERT INTO rawpost_migration_checksums (migration_id, sha256) VALUES (%s, %s)
        ON CONFLICT (migration_id) DO UPDATE SET sha256 = excluded.sha256, recorded_at = now()
        """,
        (migration.id, file_checksum(migration)),
    )


def record_missing_checksums(conn: psycopg.Connection[Any], applied: list[Any]) -> list[str]:
    """Trust on first use: checksum applied migrations that have none (adopted, or
    applied by plain yoyo); later edits of those files then show up in `status`."""
    have = {r[0] for r in conn.execute("SELECT migration_id FROM rawpost_migration_checksums")}
    missing = [m for m in applied if m.id not in have]
    for migration in missing:
        record_checksum(conn, migration)
    return [m.id for m in missing]


def forget_checksum(conn: psycopg.Connection[Any], migration_id: str) -> None:
    conn.execute("DELETE FROM rawpost_migration_checksums WHERE migration_id = %s", (migration_id,))


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def applied_ids(conn: psycopg.Connection[Any]) -> set[str]:
    """Ids yoyo recorded as applied, read without creating yoyo's tables."""
    if not _table_exists(conn, "_yoyo_migration"):
        return set()
    return {r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")}


def status(
    conn: psycopg.Connection[Any], migrations: Any
) -> tuple[list[MigrationStatus], list[str]]:
    """Every migration in the folder with its state, and applied ids the folder lacks."""
    applied: dict[str, datetime] = {}
    if _table_exists(conn, "_yoyo_migration"):
        for mid, at in conn.execute("SELECT migration_id, applied_at_utc FROM _yoyo_migration"):
            applied[mid] = at
    recorded: dict[str, str] = {}
    if _table_exists(conn, "rawpost_migration_checksums"):
        for mid, sha in conn.execute(
            "SELECT migration_id, sha256 FROM rawpost_migration_checksums"
        ):
            recorded[mid] = sha
    rows = []
    for m in migrations:
        if m.id not in applied:
            rows.append(MigrationStatus(m.id, "pending", None))
            continue
        sha = recorded.get(m.id)
        state: State = (
            "unrecorded" if sha is None else ("ok" if sha == file_checksum(m) else "changed")
        )
        rows.append(MigrationStatus(m.id, state, applied[m.id]))
    known = {m.id for m in migrations}
    return rows, sorted(set(applied) - known)


_FINGERPRINT_SQL = """
SELECT line FROM (
    SELECT format('column %%s.%%s %%s notnull=%%s default=%%s', c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid)) AS line, c.relname AS rel
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef AS d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid), c.relname
    FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
    UNION ALL
    SELECT format('constraint %%s %%s %%s', c.relname, k.conname, pg_get_constraintdef(k.oid)),
           c.relname
    FROM pg_constraint AS k
    JOIN pg_class AS c ON c.oid = k.conrelid
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
    UNION ALL
    SELECT format('type %%s %%s', t.typname,
                  (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                   FROM pg_enum AS e WHERE e.enumtypid = t.oid)), ''
    FROM pg_type AS t
    JOIN pg_namespace AS n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
) AS s
WHERE rel <> ALL(%s)
ORDER BY line
"""


def fingerprint(conn: psycopg.Connection[Any]) -> str:
    """sha256 over the public schema's tables, columns, indexes, constraints and types,
    plus the applied migration ids; the migration machinery's own tables are left out."""
    digest = hashlib.sha256()
    for (line,) in conn.execute(_FINGERPRINT_SQL, (list(INTERNAL_TABLES),)):
        digest.update(line.encode() + b"\n")
    if _table_exists(conn, "_yoyo_migration"):
        for (mid,) in conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1"):
            digest.update(f"applied {mid}\n".encode())
    return digest.hexdigest()


def database_identity(conn: psycopg.Connection[Any]) -> str:
    """The cluster's system identifier and the database name: survives renamed hosts."""
    row = conn.execute(
        "SELECT (SELECT system_identifier FROM pg_control_system())::text || '/'"
        " || current_database()"
    ).fetchone()
    return str(row[0]) if row else "?"


def find_rehearsal(path: Path, database: str, pending: list[str]) -> Rehearsal | None:
    for record in _read(path):
        if record.database == database and record.pending == pending:
            return record
    return None


def save_rehearsal(path: Path, record: Rehearsal) -> None:
    """Keep the newest rehearsal of each (database, pending set)."""
    records = [
        r for r in _read(path) if (r.database, r.pending) != (record.database, record.pending)
    ] + [record]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(records)) + b"\n")


def _read(path: Path) -> list[Rehearsal]:
    if not path.exists():
        return []
    try:
        return msgspec.json.decode(path.read_bytes(), type=list[Rehearsal])
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path}: not a rehearsal record file ({exc})") from None
