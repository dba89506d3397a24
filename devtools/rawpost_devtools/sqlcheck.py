"""`rawpost sql check`: every SQL file prepares, and none forgets soft-deleted rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from rawpost_devtools.contracts.introspect import Catalog
from service.sql import COMMENTS_AND_STRINGS, SqlFileError, compile_named

_READ_FROM = re.compile(r"\b(?:FROM|JOIN)\s+(?:ONLY\s+)?(?:\w+\.)?\"?(\w+)\"?", re.I)


def soft_delete_findings(path: Path, source: str, soft_deletable: set[str]) -> list[str]:
    """Flag reads of soft-deletable tables whose SQL never mentions deleted_at."""
    if re.search(r"^--\s*@includes-deleted\b", source, re.M):
        return []
    code = COMMENTS_AND_STRINGS.sub(" ", source)
    read = {m.group(1) for m in _READ_FROM.finditer(code)} & soft_deletable
    if not read or "deleted_at" in code:
        return []
    return [
        f"{path}: reads {', '.join(sorted(read))} without a deleted_at condition; filter"
        " soft-deleted rows or say `-- @includes-deleted` in the header"
    ]


def check(conn: psycopg.Connection[Any], sql_dir: Path) -> list[str]:
    """Every problem in every file under `sql_dir`, as `path: message` lines."""
    catalog = Catalog(conn)
    soft = {t.name for t in catalog.application_tables() if t.soft_deletable}
    problems: list[str] = []
    for i, path in enumerate(sorted(sql_dir.rglob("*.sql"))):
        source = path.read_text(encoding="utf-8")
        try:
            text, _ = compile_named(source, origin=str(path))
        except SqlFileError as exc:
            problems.append(str(exc))
            continue
        name = f"rawpost_check_{i}".encode()
        result = conn.pgconn.prepare(name, text.encode())
        if result.error_message:
            message = result.error_message.decode().strip().removeprefix("ERROR:").strip()
            problems.append(f"{path}: {message.splitlines()[0]}")
            continue
        conn.execute(f"DEALLOCATE {name.decode()}")
        problems.extend(soft_delete_findings(path, source, soft))
    return problems
