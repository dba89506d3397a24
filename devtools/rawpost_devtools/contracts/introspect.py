"""Read types from PostgreSQL itself: the catalog for tables, describe + plan for queries.

Nullability of a query's result column:
- a plain column of a table: optional when the table column is nullable, or when the
  planner puts that table on the nullable side of an outer join (LEFT/RIGHT/FULL, seen
  in `EXPLAIN (GENERIC_PLAN)`, so joins the planner reduces to inner joins count as inner);
- an expression (aggregate, function, literal, JSON building): optional,
- unless the file's header lists it in `-- @not-null: col, ...`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import psycopg

from service.migrate import bookkeeping
from service.sql import Query, SqlFileError

# Tables of the migration machinery: not part of the application's contracts.
INTERNAL_TABLES = frozenset(bookkeeping.INTERNAL_TABLES)

# PostgreSQL base type -> (Python type as written in generated code, module to import).
BASE_TYPES: Mapping[str, tuple[str, str | None]] = {
    "bool": ("bool", None),
    "int2": ("int", None),
    "int4": ("int", None),
    "int8": ("int", None),
    "oid": ("int", None),
    "float4": ("float", None),
    "float8": ("float", None),
    "numeric": ("decimal.Decimal", "decimal"),
    "text": ("str", None),
    "varchar": ("str", None),
    "bpchar": ("str", None),
    "name": ("str", None),
    "citext": ("str", None),
    "uuid": ("uuid.UUID", "uuid"),
    "timestamptz": ("datetime.datetime", "datetime"),
    "timestamp": ("datetime.datetime", "datetime"),
    "date": ("datetime.date", "datetime"),
    "time": ("datetime.time", "datetime"),
    "interval": ("datetime.timedelta", "datetime"),
    "bytea": ("bytes", None),
    # Decoded by the pool's msgspec codec (service/db.py) into plain JSON values.
    "json": ("object", None),
    "jsonb": ("object", None),
}

RETURN_KINDS = ("one", "many", "scalar", "affected", "none")
KNOWN_ANNOTATIONS = {"returns", "not-null", "optional-params", "includes-deleted"}


class PyType(msgspec.Struct, frozen=True):
    """A Python type as source text, plus the modules it needs."""

    text: str
    imports: frozenset[str] = frozenset()


class Field(msgspec.Struct, frozen=True):
    name: str
    type: PyType
    optional: bool


class Table(msgspec.Struct, frozen=True):
    name: str
    fields: tuple[Field, ...]
    soft_deletable: bool


class QueryContract(msgspec.Struct, frozen=True):
    query: Query
    params: tuple[Field, ...]
    columns: tuple[Field, ...]
    returns: str
    summary: str


GENERIC_PLAN_SINCE = 160000  # server_version_num of PostgreSQL 16


class ContractError(Exception):
    """The schema or a SQL file cannot be typed; the message names the file or table."""


class Catalog:
    """Types, tables and columns of a migrated database."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._types: dict[int, tuple[str, str, int, int, list[str]]] = {}
        for oid, name, typtype, elem, base, labels in conn.execute(
            """
            SELECT t.oid, t.typname, t.typtype, t.typelem, t.typbasetype,
                   coalesce(array_agg(e.enumlabel ORDER BY e.enumsortorder)
                            FILTER (WHERE e.enumlabel IS NOT NULL), '{}')
            FROM pg_type AS t
            LEFT JOIN pg_enum AS e ON e.enumtypid = t.oid
            GROUP BY t.oid
            """
        ):
            self._types[oid] = (name, typtype, elem, base, list(labels))
        self.columns: dict[tuple[int, int], tuple[str, int, bool]] = {}
        self.tables: dict[int, str] = {}
        for rel, relname, attnum, attname, atttypid, notnull in conn.execute(
            """
            SELECT c.oid, c.relname, a.attnum, a.attname, a.atttypid, a.attnotnull
            FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            JOIN pg_attribute AS a ON a.attrelid = c.oid
            WHERE c.relkind IN ('r', 'p', 'v', 'm')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%%'
              AND a.attnum > 0
              AND NOT a.attisdropped
            ORDER BY c.relname, a.attnum
            """
        ):
            self.tables[rel] = relname
            self.columns[(rel, attnum)] = (attname, atttypid, notnull)

    def py_type(self, oid: int, where: str) -> PyType:
        name, typtype, elem, base, labels = self._types.get(oid, (str(oid), "?", 0, 0, []))
        if typtype == "e":
            return PyType(
                "Literal[" + ", ".join(repr(label) for label in labels) + "]",
                frozenset({"typing.Literal"}),
            )
        if typtype == "d":
            return self.py_type(base, where)
        if elem and name.startswith("_"):
            inner = self.py_type(elem, where)
            return PyType(f"list[{inner.text}]", inner.imports)
        if name in BASE_TYPES:
            text, module = BASE_TYPES[name]
            return PyType(text, frozenset({module}) if module else frozenset())
        raise ContractError(f"{where}: PostgreSQL type {name!r} has no Python mapping yet")

    def application_tables(self) -> list[Table]:
        grouped: dict[int, list[Field]] = {}
        for (rel, _), (attname, typid, notnull) in self.columns.items():
            relname = self.tables[rel]
            if relname in INTERNAL_TABLES:
                continue
            grouped.setdefault(rel, []).append(
                Field(attname, self.py_type(typid, f"table {relname}.{attname}"), not notnull)
            )
        tables = [
            Table(
                name=self.tables[rel],
                fields=tuple(fields),
                soft_deletable=any(f.name == "deleted_at" for f in fields),
            )
            for rel, fields in grouped.items()
        ]
        return sorted(tables, key=lambda t: t.name)


def _nullable_relations(plan: Mapping[str, Any]) -> set[str]:
    """Relations the plan scans on the nullable side of an outer join."""
    ctes: dict[str, set[str]] = {}

    def relations(node: Mapping[str, Any]) -> set[str]:
        found = {node["Relation Name"]} if "Relation Name" in node else set()
        if "CTE Name" in node:
            found |= ctes.get(node["CTE Name"], set())
        for child in node.get("Plans", []):
            found |= relations(child)
        return found

    def collect_ctes(node: Mapping[str, Any]) -> None:
        for child in node.get("Plans", []):
            collect_ctes(child)
            sub = str(child.get("Subplan Name", ""))
            if sub.startswith("CTE "):
                ctes[sub[4:]] = relations(child)

    def nullable(node: Mapping[str, Any]) -> set[str]:
        children = node.get("Plans", [])
        found: set[str] = set()
        join = node.get("Join Type")
        regular = [c for c in children if c.get("Parent Relationship") in ("Outer", "Inner")]
        if join in ("Left", "Full") and len(regular) == 2:
            found |= relations(regular[1])
        if join in ("Right", "Full") and len(regular) == 2:
            found |= relations(regular[0])
        for child in children:
            found |= nullable(child)
        return found

    collect_ctes(plan)
    return nullable(plan)


def describe(conn: psycopg.Connection[Any], catalog: Catalog, q: Query) -> QueryContract:
    """Prepare `q`, read its parameter and column types, and infer nullability."""
    annotations = q.annotations
    if unknown_keys := set(annotations) - KNOWN_ANNOTATIONS:
        raise ContractError(
            f"{q.path}: unknown header annotation(s) {sorted(unknown_keys)};"
            f" known: {sorted(KNOWN_ANNOTATIONS)}"
        )
    returns = (annotations.get("returns") or ("",))[0]
    pgconn = conn.pgconn
    statement = f"rawpost_{abs(hash(q.name))}".encode()
    result = pgconn.prepare(statement, q.sql.encode())
    if result.error_message:
        raise ContractError(f"{q.path}: {result.error_message.decode().strip()}")
    desc = pgconn.describe_prepared(statement)
    conn.execute(f"DEALLOCATE {statement.decode()}")

    optional_params = set(annotations.get("optional-params", ()))
    not_null = set(annotations.get("not-null", ()))
    unknown = (optional_params - set(q.params)) | {
        "(returns)" for r in [returns] if r and r not in RETURN_KINDS
    }
    if unknown:
        raise ContractError(f"{q.path}: header names unknown parameters or kinds: {unknown}")
    params = tuple(
        Field(
            name, catalog.py_type(desc.param_type(i), f"{q.path}: :{name}"), name in optional_params
        )
        for i, name in enumerate(q.params)
    )

    explain = ("EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) " + q.sql).encode()
    row = conn.execute(explain).fetchone()
    outer = _nullable_relations(row[0][0]["Plan"]) if row else set()
    columns = []
    for i in range(desc.nfields):
        name = (desc.fname(i) or b"?").decode()
        table, attnum = desc.ftable(i), desc.ftablecol(i)
        source = catalog.columns.get((table, attnum)) if table else None
        # An expression (no source column) may be NULL; so may an outer-joined column.
        optional = source is None or not source[2] or catalog.tables[table] in outer
        if name in not_null:
            optional = False
        columns.append(Field(name, catalog.py_type(desc.ftype(i), f"{q.path}: {name}"), optional))
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or any(not n.isidentifier() for n in names):
        raise ContractError(f"{q.path}: result columns need distinct identifier names: {names}")
    if not_null - set(names):
        raise ContractError(f"{q.path}: @not-null names unknown columns {not_null - set(names)}")
    if not returns:
        returns = "many" if columns else "none"
    if returns in ("one", "many", "scalar") and not columns:
        raise ContractError(f"{q.path}: @returns {returns} but the statement returns no columns")
    return QueryContract(
        query=q,
        params=params,
        columns=tuple(columns),
        returns=returns,
        summary=_summary(q.source),
    )


def _summary(source: str) -> str:
    """The header's first sentence-block: comment lines up to an @, :param or blank one."""
    lines: list[str] = []
    for line in source.splitlines():
        text = line.removeprefix("--").strip()
        if not line.startswith("--") or not text or text[0] in "@:" or text.startswith("Returns"):
            if lines:
                break
            continue
        lines.append(text)
    return " ".join(lines)


def describe_all(
    conn: psycopg.Connection[Any], queries: Iterable[Query]
) -> tuple[Catalog, list[QueryContract]]:
    if conn.info.server_version < GENERIC_PLAN_SINCE:
        raise ContractError(
            "reading query types needs PostgreSQL 16 or newer (EXPLAIN (GENERIC_PLAN));"
            f" this server is {conn.info.server_version // 10000}: leave out --database-url"
            " to use the embedded one"
        )
    catalog = Catalog(conn)
    contracts, errors = [], []
    for q in queries:
        try:
            contracts.append(describe(conn, catalog, q))
        except (ContractError, SqlFileError) as exc:
            errors.append(str(exc))
    if errors:
        raise ContractError("\n".join(errors))
    return catalog, contracts
