"""`rawpost migrate` rehearse, apply, rollback and dry runs called in-process on a real
PostgreSQL: rehearsals are checked against the schema, checksums kept, nothing left behind."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from rawpost_devtools.rehearse import _scratch_prefix, rehearse
from service import embedded, migrate
from service.migrate import MigrationError
from service.resources import MIGRATIONS_DIR
from tests.helpers import scratch_database
from tests.support.migrations import FIXTURES, Output, at_baseline_with_users, schema_fingerprint


@pytest.fixture
def legacy_db(empty_db_url: str) -> str:
    """The original deployment: the baseline users table only, with 2,000 rows."""
    return at_baseline_with_users(empty_db_url)


def test_rehearse_reports_each_migration_and_samples_non_transactional_ones(
    empty_db_url: str, tmp_path: Path
) -> None:
    out = Output()
    ok = rehearse(
        empty_db_url,
        out,
        migrations_dir=FIXTURES / "basic",
        record_file=tmp_path / "r.json",
        sql_dir=tmp_path,
    )
    assert ok, out.text
    assert "AccessExclusiveLock" in out.text  # ALTER COLUMN TYPE on things
    assert "0004.concurrent-index" in out.text
    assert "locks sampled while it ran (non-transactional)" in out.text
    assert "rolled back in" in out.text and "applied again in" in out.text
    assert migrate.pending(empty_db_url, FIXTURES / "basic") == migrate.migration_ids(
        FIXTURES / "basic"
    )


def test_apply_refuses_when_the_schema_changed_since_the_rehearsal(
    legacy_db: str, tmp_path: Path
) -> None:
    record = tmp_path / "rehearsals.json"
    assert rehearse(legacy_db, Output(), migrations_dir=MIGRATIONS_DIR, record_file=record)
    with psycopg.connect(legacy_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")

    with pytest.raises(MigrationError, match="rehearse again, or pass --force"):
        migrate.apply(legacy_db, Output(), rehearsals=record)
    assert migrate.pending(legacy_db) == migrate.migration_ids()[1:]

    out = Output()
    migrate.apply(legacy_db, out, rehearsals=record, force=True)
    assert "going ahead because of --force" in out.text
    assert migrate.pending(legacy_db) == []


def test_apply_after_a_matching_rehearsal_says_so(legacy_db: str, tmp_path: Path) -> None:
    record = tmp_path / "rehearsals.json"
    assert rehearse(legacy_db, Output(), migrations_dir=MIGRATIONS_DIR, record_file=record)
    out = Output()
    migrate.apply(legacy_db, out, rehearsals=record)
    assert "fingerprint matches" in out.text
    assert migrate.pending(legacy_db) == []


def test_rollback_round_trips_and_forgets_checksums(empty_db_url: str) -> None:
    folder = FIXTURES / "basic"
    migrate.apply(empty_db_url, Output(), migrations_dir=folder)
    fingerprint = schema_fingerprint(empty_db_url)

    out = Output()
    rolled = migrate.rollback(empty_db_url, out, to="0001.create-things", migrations_dir=folder)
    assert rolled == ["0004.concurrent-index", "0003.widen-name", "0002.index-things"]
    assert migrate.pending(empty_db_url, folder) == rolled[::-1]
    rows, _ = migrate.status(empty_db_url, folder)
    assert [r.state for r in rows] == ["ok", "pending", "pending", "pending"]

    assert migrate.rollback(empty_db_url, Output(), migrations_dir=folder) == ["0001.create-things"]
    migrate.apply(empty_db_url, Output(), migrations_dir=folder)
    assert schema_fingerprint(empty_db_url) == fingerprint


def test_dry_run_on_a_fresh_database_creates_nothing(empty_db_url: str) -> None:
    out = Output()
    migrate.apply(empty_db_url, out, migrations_dir=FIXTURES / "basic", dry_run=True)
    assert "would apply 4 migration(s)" in out.text
    with psycopg.connect(empty_db_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ).fetchone()
    assert tables == (0,)


def test_an_older_release_refuses_to_touch_migrations_it_does_not_know(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrate.apply(empty_db_url, Output(), migrations_dir=FIXTURES / "basic")
    older = tmp_path / "older"
    older.mkdir()
    for f in (FIXTURES / "basic").glob("0001.*"):
        shutil.copy(f, older / f.name)
    with pytest.raises(MigrationError, match=r"does not know: 0002\.index-things"):
        migrate.rollback(empty_db_url, Output(), migrations_dir=older)
    with pytest.raises(MigrationError, match="refusing to apply"):
        migrate.apply(empty_db_url, Output(), migrations_dir=older)


def test_a_rehearsal_of_another_database_does_not_count(
    legacy_db: str, pg_admin_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "rehearsals.json"
    with scratch_database(pg_admin_url, "rawpost_other") as other_url:
        with migrate.backend_for(other_url) as backend:
            backend.apply_migrations(backend.to_apply(migrate.load()[:1]))
        assert rehearse(other_url, Output(), migrations_dir=MIGRATIONS_DIR, record_file=record)
    out = Output()
    migrate.apply(legacy_db, out, rehearsals=record)
    assert "was not rehearsed here" in out.text


def test_a_killed_rehearsal_leaves_nothing_the_next_one_does_not_clean(
    empty_db_url: str, pg_admin_url: str, tmp_path: Path
) -> None:
    leftover = f"{_scratch_prefix(empty_db_url)}{uuid.uuid4().hex[:12]}"
    embedded.create_database(pg_admin_url, leftover)
    out = Output()
    assert rehearse(
        empty_db_url,
        out,
        migrations_dir=FIXTURES / "basic",
        record_file=tmp_path / "r.json",
        sql_dir=tmp_path,
    )
    assert f"dropping {leftover}" in out.text
    with psycopg.connect(pg_admin_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'rawpost_rehearse_%'"
        ).fetchone()
    assert left == (0,)
