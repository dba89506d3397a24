"""`rawpost migrate` with real processes on a real PostgreSQL: schema dumps before and after,
the CLI and plain yoyo as subprocesses, concurrent applies, and an apply killed mid-way."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rawpost_devtools.rehearse import rehearse
from service import embedded, migrate
from service.migrate import bookkeeping
from service.resources import MIGRATIONS_DIR
from tests.support.migrations import FIXTURES, Output, at_baseline_with_users, schema_fingerprint


@pytest.fixture
def legacy_db(empty_db_url: str) -> str:
    """The original deployment: the baseline users table only, with 2,000 rows."""
    return at_baseline_with_users(empty_db_url)


BASELINE = "0001.baseline-users"


def _schema_dump(url: str) -> str:
    done = subprocess.run(
        [str(embedded.binary("pg_dump")), "--schema-only", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
    )
    # pg_dump 18 wraps its output in a random \restrict key; everything else is stable.
    return "\n".join(ln for ln in done.stdout.splitlines() if not ln.startswith("\\"))


def _contents(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind = 'r' ORDER BY 1"
            )
        ]
        return [
            (
                t,
                conn.execute(
                    "SELECT md5(string_agg(x::text, '|' ORDER BY x::text)), count(*)"
                    f' FROM "{t}" AS x'
                ).fetchone(),
            )
            for t in tables
        ]


def test_rehearse_leaves_the_target_unchanged_and_reports_locks(
    legacy_db: str, tmp_path: Path
) -> None:
    record = tmp_path / "rehearsals.json"
    schema, contents = _schema_dump(legacy_db), _contents(legacy_db)
    out = Output()

    assert rehearse(
        legacy_db, out, migrations_dir=MIGRATIONS_DIR, record_file=record, with_data=True
    )

    assert _schema_dump(legacy_db) == schema
    assert _contents(legacy_db) == contents
    pending = migrate.pending(legacy_db)
    assert pending == migrate.migration_ids()[1:]
    assert "ACCESS EXCLUSIVE on an existing table" in out.text
    assert "copied users" in out.text
    with psycopg.connect(legacy_db) as conn:
        saved = bookkeeping.find_rehearsal(record, bookkeeping.database_identity(conn), pending)
    assert saved is not None and saved.fingerprint == schema_fingerprint(legacy_db)
    assert "rehearsal passed" in out.text
    print(out.text)


def test_rehearse_fails_with_a_readable_report_when_a_rollback_is_broken(
    empty_db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(FIXTURES / "basic", folder)
    (folder / "0003.widen-name.rollback.sql").write_text("ALTER TABLE nothing_here DROP x;\n")
    record = tmp_path / "r.json"
    out = Output()
    before = _schema_dump(empty_db_url)

    assert not rehearse(
        empty_db_url, out, migrations_dir=folder, record_file=record, sql_dir=tmp_path
    )

    assert "REHEARSAL FAILED" in out.text
    assert 'relation "nothing_here" does not exist' in out.text
    assert not record.exists()
    assert _schema_dump(empty_db_url) == before


def test_dry_runs_print_the_sql_and_change_nothing(legacy_db: str) -> None:
    before = _schema_dump(legacy_db)
    out = Output()
    assert migrate.apply(legacy_db, out, dry_run=True) == []
    assert "ALTER TABLE users" in out.text and "dry run: nothing applied" in out.text
    assert _schema_dump(legacy_db) == before

    migrate.apply(legacy_db, Output())
    after = _schema_dump(legacy_db)
    out = Output()
    assert migrate.rollback(legacy_db, out, to=BASELINE, dry_run=True) == []
    assert "DROP TABLE posts" in out.text or "posts" in out.text
    assert _schema_dump(legacy_db) == after


def test_status_detects_an_edited_migration(empty_db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(FIXTURES / "basic", folder)
    migrate.apply(empty_db_url, Output(), migrations_dir=folder)
    rows, unknown = migrate.status(empty_db_url, folder)
    assert {r.state for r in rows} == {"ok"} and unknown == []

    edited = folder / "0002.index-things.sql"
    edited.write_text(edited.read_text() + "-- an innocent-looking edit\n")
    (folder / "0004.concurrent-index.sql").unlink()
    (folder / "0004.concurrent-index.rollback.sql").unlink()

    done = _rawpost("migrate", "status", database_url=empty_db_url, migrations_dir=folder)
    assert done.returncode == 1
    assert "changed" in done.stdout and "0002.index-things" in done.stdout
    assert "0004.concurrent-index  <-- applied, but not in this version" in done.stdout


def _rawpost(
    *args: str, database_url: str, migrations_dir: Path, pgoptions: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=_env(database_url, migrations_dir, pgoptions),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env(database_url: str, migrations_dir: Path, pgoptions: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAWPOST_", "PG"))}
    env.update(DATABASE_URL=database_url, RAWPOST_MIGRATIONS_DIR=str(migrations_dir))
    env["RAWPOST_REHEARSAL_FILE"] = str(migrations_dir.parent / "no-rehearsals.json")
    if pgoptions:
        env["PGOPTIONS"] = pgoptions  # rawpost keeps it beside its own -c options
    return env


def test_two_concurrent_applies_apply_each_migration_once(empty_db_url: str) -> None:
    folder = FIXTURES / "slow"
    cmd = [sys.executable, "-m", "service.cli", "migrate", "apply"]
    env = _env(empty_db_url, folder, pgoptions="-c rawpost.test_sleep=1")
    started = time.monotonic()
    first = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    second = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    outputs = [p.communicate(timeout=60)[0] for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    # 0003 builds an index CONCURRENTLY: it must not wait forever on the second run's
    # lock wait (which is why waiting polls instead of blocking in pg_advisory_lock).
    assert sum("will apply 3 migration(s)" in o for o in outputs) == 1, outputs
    assert sum("nothing to apply" in o for o in outputs) == 1, outputs
    with psycopg.connect(empty_db_url) as conn:
        applied = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1"
        ).fetchall()
    assert sorted(applied) == [
        ("0001.slow-start", 1),
        ("0002.second", 1),
        ("0003.concurrent-index", 1),
    ]
    print(f"two concurrent applies finished in {time.monotonic() - started:.1f} s")


def test_a_killed_apply_leaves_no_stale_lock(empty_db_url: str) -> None:
    folder = FIXTURES / "slow"
    victim = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "migrate", "apply"],
        env=_env(empty_db_url, folder, pgoptions="-c rawpost.test_sleep=30"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        with psycopg.connect(empty_db_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"
                    " AND datname = current_database()"
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the apply never reached its slow migration")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()

    started = time.monotonic()
    done = _rawpost("migrate", "apply", database_url=empty_db_url, migrations_dir=folder)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "will apply 3 migration(s)" in done.stdout
    assert took < 20, f"the second apply waited {took:.1f} s"
    assert migrate.pending(empty_db_url, folder) == []
    print(f"apply after a killed apply took {took:.1f} s")


def test_plain_yoyo_reads_the_same_folder_through_yoyo_ini(legacy_db: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAWPOST_", "PG"))}
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "yoyo"),
            "list",
            "--database",
            migrate.yoyo_url(legacy_db),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for mid in migrate.migration_ids():
        assert mid in done.stdout
    assert "A" in done.stdout.split(BASELINE)[0].splitlines()[-1]  # the baseline is applied


def test_apply_records_checksums_of_migrations_applied_without_rawpost(empty_db_url: str) -> None:
    folder = FIXTURES / "basic"
    with migrate.backend_for(empty_db_url) as backend:  # plain yoyo, as an adopting operator would
        backend.apply_migrations(backend.to_apply(migrate.load(folder)[:2]))
    rows, _ = migrate.status(empty_db_url, folder)
    assert [r.state for r in rows] == ["unrecorded", "unrecorded", "pending", "pending"]
    out = Output()
    migrate.apply(empty_db_url, out, migrations_dir=folder)
    assert "recorded checksums of 2 migration(s) applied without rawpost" in out.text
    rows, _ = migrate.status(empty_db_url, folder)
    assert {r.state for r in rows} == {"ok"}
