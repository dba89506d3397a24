"""Every non-transactional migration says so in its header, and only those."""

from __future__ import annotations

from pathlib import Path

from yoyo import read_migrations

from service.resources import MIGRATIONS_DIR


def test_every_non_transactional_migration_is_linted_as_one_and_only_those() -> None:
    """squawk assumes a transaction around each file (.ci/run); yoyo's header decides."""
    for migration in read_migrations(str(MIGRATIONS_DIR)):
        migration.load()
        for path in (Path(migration.path), Path(migration.path).with_suffix(".rollback.sql")):
            says_so = "-- squawk-disable-assume-in-transaction" in path.read_text()
            assert says_so == (not migration.use_transactions), path.name
