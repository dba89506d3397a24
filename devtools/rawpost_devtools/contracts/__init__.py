"""DB-first contracts: typed Structs and query functions generated from PostgreSQL.

Layers: the database (migrations/, sql/) -> generated contracts (service/generated/,
never edited by hand) -> curated API contracts (service/<domain>/schemas.py).
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import psycopg

from rawpost_devtools import CHECKOUT
from rawpost_devtools.contracts.introspect import ContractError, describe_all
from rawpost_devtools.contracts.render import (
    HEADER,
    NAMING_RULE,
    render_queries,
    render_rows,
    row_types,
)
from rawpost_devtools.scratch import scratch_database
from service.resources import MIGRATIONS_DIR, SQL_DIR
from service.sql import Query, load_queries

GENERATED_DIR = CHECKOUT / "service" / "generated"


def build(
    database_url: str | None = None,
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    sql_dir: Path = SQL_DIR,
    registry_module: str = "service.sql",
) -> dict[str, str]:
    """Generate every module in memory: {file name: formatted source}."""
    queries = load_queries(sql_dir)
    with (
        scratch_database(database_url, migrations_dir) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        catalog, contracts = describe_all(conn, queries.values())
    by_domain: dict[str, list[Query]] = {}
    for q in queries.values():
        if "/" not in q.name:
            raise ContractError(f"{q.path}: SQL files live in sql/<domain>/")
        by_domain.setdefault(q.name.split("/", 1)[0], []).append(q)
    files = {
        "__init__.py": HEADER.format(source="migrations/ and sql/")
        + '"""Layer 2 of the contracts, generated from the database (docs/contracts.md).\n\n'
        + NAMING_RULE
        + '\n"""\n',
    }
    tables = catalog.application_tables()
    rows = row_types(contracts, tables)
    # rows.py holds only the tables some statement returns whole: a Struct nothing
    # returns would be imported by nothing.
    if whole := [t for t in tables if any(r.table == t.name for r in rows.values())]:
        files["rows.py"] = render_rows(whole)
    for domain, members in sorted(by_domain.items()):
        names = {q.name for q in members}
        chosen = [c for c in contracts if c.query.name in names]
        files[f"{domain}.py"] = render_queries(domain, chosen, rows, registry_module)
    return {name: _format(source) for name, source in files.items()}


def _format(source: str) -> str:
    ruff = shutil.which("ruff")
    if ruff is None:
        raise ContractError("ruff is needed to format generated code: run `uv sync`")
    done = subprocess.run(
        [ruff, "format", "--stdin-filename", "generated.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        cwd=CHECKOUT,
    )
    if done.returncode != 0:
        raise ContractError(f"generated code does not parse:\n{done.stderr}\n{source}")
    fixed = subprocess.run(
        [ruff, "check", "--select", "I", "--fix", "--stdin-filename", "generated.py", "-"],
        input=done.stdout,
        capture_output=True,
        text=True,
        check=False,
        cwd=CHECKOUT,
    )
    return fixed.stdout if fixed.returncode == 0 else done.stdout


def write(files: Mapping[str, str], target: Path = GENERATED_DIR) -> list[Path]:
    """Write the generated modules, removing stale ones; return the paths written."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.py"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, source in files.items():
        path = target / name
        path.write_text(source)
        written.append(path)
    return written


def diff(files: Mapping[str, str], target: Path = GENERATED_DIR) -> str:
    """A unified diff from the checked-in modules to freshly generated ones ('' if equal)."""
    chunks: list[str] = []
    present = {p.name for p in target.glob("*.py")} if target.is_dir() else set()
    for name in sorted(present | set(files)):
        old = (target / name).read_text() if name in present else ""
        new = files.get(name, "")
        if old != new:
            rel = (
                (target / name).relative_to(CHECKOUT)
                if target.is_relative_to(CHECKOUT)
                else target / name
            )
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    f"{rel} (checked in)",
                    f"{rel} (generated now)",
                )
            )
    return "".join(chunks)
