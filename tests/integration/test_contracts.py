"""Contracts generated from a real migrated schema: the reviewed fixture output, the service's
contracts up to date, drift caught, `sql check` over every file, and every type round-tripping."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import shutil
import uuid
from pathlib import Path

import asyncpg
import psycopg
import pytest

from rawpost_devtools import contracts, scratch, sqlcheck
from rawpost_devtools.contracts.introspect import ContractError
from service.resources import MIGRATIONS_DIR, SQL_DIR
from tests.contracts_fixture import registry

FIXTURE_OUTPUT = Path(registry.__file__).parent / "generated"


def _build_fixture(admin_url: str, migrations: Path, sql_dir: Path) -> dict[str, str]:
    return contracts.build(
        admin_url,
        migrations_dir=migrations,
        sql_dir=sql_dir,
        registry_module="tests.contracts_fixture.registry",
    )


def test_fixture_schema_generates_exactly_the_reviewed_output(pg_admin_url: str) -> None:
    files = _build_fixture(pg_admin_url, registry.MIGRATIONS_DIR, registry.SQL_DIR)
    assert contracts.diff(files, FIXTURE_OUTPUT) == ""


def test_service_contracts_are_up_to_date(pg_admin_url: str) -> None:
    assert contracts.diff(contracts.build(pg_admin_url)) == ""


def test_drift_check_fails_after_a_schema_change_and_passes_after_regenerating(
    pg_admin_url: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(registry.MIGRATIONS_DIR, migrations)
    target = tmp_path / "generated"
    contracts.write(_build_fixture(pg_admin_url, migrations, registry.SQL_DIR), target)
    assert contracts.diff(_build_fixture(pg_admin_url, migrations, registry.SQL_DIR), target) == ""

    # rows.py follows the table: everything.note, returned whole by two statements.
    (migrations / "0002.require-note.sql").write_text(
        "-- depends: 0001.every-type\nALTER TABLE everything ALTER COLUMN note SET NOT NULL;\n"
    )
    stale = contracts.diff(_build_fixture(pg_admin_url, migrations, registry.SQL_DIR), target)
    assert "-    note: str | None\n" in stale and "+    note: str\n" in stale
    assert "(checked in)" in stale and "(generated now)" in stale

    contracts.write(_build_fixture(pg_admin_url, migrations, registry.SQL_DIR), target)
    assert contracts.diff(_build_fixture(pg_admin_url, migrations, registry.SQL_DIR), target) == ""


def test_drift_check_fails_when_a_sql_file_changes(pg_admin_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(registry.SQL_DIR, sql_dir)
    target = tmp_path / "generated"
    contracts.write(_build_fixture(pg_admin_url, registry.MIGRATIONS_DIR, sql_dir), target)
    path = sql_dir / "fixture" / "get_parent_name.sql"
    path.write_text(path.read_text().replace("SELECT p.name", "SELECT p.id"))
    stale = contracts.diff(_build_fixture(pg_admin_url, registry.MIGRATIONS_DIR, sql_dir), target)
    assert "-> str | None" in stale and "-> int | None" in stale


def test_sql_check_reports_every_broken_file_at_once(pg_admin_url: str, tmp_path: Path) -> None:
    domain = tmp_path / "users"
    domain.mkdir()
    (domain / "get_typo.sql").write_text("SELECT u.idd FROM users AS u WHERE u.deleted_at IS NULL")
    (domain / "list_missing.sql").write_text("SELECT 1 FROM no_such_table")
    (domain / "get_syntax.sql").write_text("SELEC 1")
    (domain / "get_positional.sql").write_text("SELECT $1::int")
    (domain / "list_everyone.sql").write_text("SELECT u.id FROM users AS u")
    (domain / "list_everyone_on_purpose.sql").write_text(
        "-- every user, deleted too\n-- @includes-deleted\nSELECT u.id FROM users AS u"
    )
    (domain / "get_fine.sql").write_text(
        "SELECT u.id FROM users AS u WHERE u.id = :id AND u.deleted_at IS NULL"
    )
    with (
        scratch.scratch_database(pg_admin_url, MIGRATIONS_DIR) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        problems = sqlcheck.check(conn, tmp_path)
    by_file = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in problems}
    assert set(by_file) == {
        str(domain / f"{n}.sql")
        for n in ("get_typo", "list_missing", "get_syntax", "get_positional", "list_everyone")
    }
    assert "column u.idd does not exist" in by_file[str(domain / "get_typo.sql")]
    assert 'relation "no_such_table" does not exist' in by_file[str(domain / "list_missing.sql")]
    assert "syntax error" in by_file[str(domain / "get_syntax.sql")]
    assert "positional parameter" in by_file[str(domain / "get_positional.sql")]
    assert "deleted_at" in by_file[str(domain / "list_everyone.sql")]


def test_service_sql_files_pass_sql_check(pg_admin_url: str) -> None:
    with (
        scratch.scratch_database(pg_admin_url) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        assert sqlcheck.check(conn, SQL_DIR) == []


def test_every_type_round_trips_through_the_generated_functions(pg_admin_url: str) -> None:
    from tests.contracts_fixture.generated import fixture as q

    values = {
        "small": -32768,
        "whole": 2_147_483_647,
        "big": -9_223_372_036_854_775_808,
        "real_number": 1.5,
        "double_number": 1e-300,
        "money": decimal.Decimal("1234567890.12"),
        "label": "über ☃ 'quoted' :colon $1",
        "code": "ABC",
        "letter": "x",
        "nickname": "nick",
        "flag": True,
        "happened_at": datetime.datetime(2026, 11, 23, 22, 59, 30, 123456, tzinfo=datetime.UTC),
        "local_time": datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
        "day": datetime.date(2026, 2, 28),
        "clock": datetime.time(23, 59, 59, 999999),
        "span": datetime.timedelta(days=3, seconds=7, microseconds=9),
        "blob": b"\x00\xffbytes",
        "doc": {"nested": [1, 2.5, None, "x"], "ok": True},
        "raw_doc": [1, {"a": "b"}],
        "tags": ["a", "b c", ""],
        "scores": [3, -1, 0],
        "feeling": "happy",
        "note": None,
    }

    async def round_trip() -> None:
        with scratch.scratch_database(pg_admin_url, registry.MIGRATIONS_DIR) as url:
            raw = await asyncpg.connect(url)
            try:
                from service.db.pool import _init_connection
                from service.db.statements import Timed

                await _init_connection(raw)
                conn = Timed(raw)
                inserted = await q.insert_everything(conn, **values)  # type: ignore[arg-type]
                assert inserted is not None
                fetched = await q.get_everything(conn, id=inserted.id)
                assert fetched is not None
                for key, value in values.items():
                    assert getattr(fetched, key) == value, key
                assert isinstance(fetched.id, uuid.UUID)

                await q.insert_parent(conn, id=1, name="Pat")
                await q.insert_parent(conn, id=2, name="Lone")
                await q.insert_child(conn, id=10, parent_id=1, name="Kid")
                await q.insert_child(conn, id=11, parent_id=None, name="Orphan")
                assert await q.get_parent_name(conn, parent_id=1) == "Pat"
                assert await q.get_parent_name(conn, parent_id=99) is None
                assert await q.update_children(conn, name="Kiddo", parent_id=1) == 1
                rows = await q.list_parents_with_children(conn)
                assert [(r.parent_name, r.child_name) for r in rows] == [
                    ("Pat", "Kiddo"),
                    ("Lone", None),
                ]
                child = await q.get_child(conn, id=10)
                assert child is not None and (child.id, child.name) == (10, "Kiddo")
                assert [c.name for c in await q.list_all_children(conn)] == ["Kiddo", "Orphan"]
                lone = await q.list_parent_children(conn, parent_id=2)
                assert [(c.id, c.name) for c in lone] == [(None, None)]
                stats = await q.get_child_stats(conn, label="now")
                assert stats is not None and stats.children == 2 and stats.label == "now"
            finally:
                await raw.close()

    asyncio.run(round_trip())


def test_a_misspelt_header_annotation_fails_generation(pg_admin_url: str, tmp_path: Path) -> None:
    (tmp_path / "fixture").mkdir()
    (tmp_path / "fixture" / "get_parent.sql").write_text(
        "-- get_parent: one parent.\n-- @returns one\n-- @not_null name\n"
        "SELECT p.name FROM parents AS p WHERE p.id = :id\n"
    )
    with pytest.raises(ContractError, match=r"get_parent\.sql: unknown header"):
        _build_fixture(pg_admin_url, registry.MIGRATIONS_DIR, tmp_path)
