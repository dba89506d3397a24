"""`rawpost seed` run for real on a real PostgreSQL (in-process and as a subprocess): the
standard data set, exact, deterministic, and only into an empty database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from rawpost_devtools.seed import MAX_POSTS_PER_USER, seed
from tests.helpers import DB, scratch_database

NOW = "2026-06-01T12:00:00+00:00"


# The command as a user runs it, until service/cli.py registers `rawpost seed`.
SEED = [sys.executable, "-c", "from rawpost_devtools.seed import seed; seed()"]


def run_seed(db_url: str, ids_file: Path, *args: str) -> Result:
    return CliRunner().invoke(
        seed,
        ["--database-url", db_url, "--ids-file", str(ids_file), "--now", NOW, *args],
    )


@pytest.fixture
def other_db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A second fresh, migrated database."""
    with scratch_database(pg_admin_url, "rawpost_seed", template=template_db) as url:
        yield url


def _scalar(db: DB, sql: str) -> object:
    row = db.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_seed_fills_exact_counts_with_0_to_40_posts_per_user(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    result = run_seed(
        db_url, tmp_path / "ids.json", "--users", "200", "--posts", "1000", "--seed", "1"
    )
    assert result.exit_code == 0, result.output

    assert _scalar(db, "SELECT count(*) FROM users") == 200
    assert _scalar(db, "SELECT count(*) FROM posts") == 1000
    per_user = db.execute(
        "SELECT count(p.id) FROM users AS u LEFT JOIN posts AS p ON p.author_id = u.id"
        " GROUP BY u.id"
    ).fetchall()
    counts = [int(str(n)) for (n,) in per_user]
    assert len(counts) == 200
    assert min(counts) >= 0
    assert max(counts) <= MAX_POSTS_PER_USER
    assert len(set(counts)) > 5, "the posts are spread unevenly, like real authors'"


def test_seed_publishes_about_90_percent_and_spreads_timestamps_over_the_past_year(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    result = run_seed(
        db_url, tmp_path / "ids.json", "--users", "200", "--posts", "1000", "--seed", "2"
    )
    assert result.exit_code == 0, result.output

    share = float(str(_scalar(db, "SELECT avg(published::int) FROM posts")))
    assert 0.85 <= share <= 0.95
    now = datetime.fromisoformat(NOW)
    year_ago = now - timedelta(days=365)
    for table in ("users", "posts"):
        row = db.execute(
            f"SELECT min(created_at), max(created_at), bool_and(updated_at = created_at)"
            f" FROM {table}"
        ).fetchone()
        assert row is not None
        oldest, newest, unchanged = row
        assert isinstance(oldest, datetime) and isinstance(newest, datetime)
        assert year_ago <= oldest < newest <= now, (table, oldest, newest)
        assert newest - oldest > timedelta(days=300), "spread over the year, not bunched"
        assert unchanged is True
    assert _scalar(db, "SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL") == 0
    # No post predates its author.
    assert (
        _scalar(
            db,
            "SELECT count(*) FROM posts AS p JOIN users AS u ON u.id = p.author_id"
            " WHERE p.created_at < u.created_at",
        )
        == 0
    )


def test_seed_writes_sample_ids_that_exist(db_url: str, db: DB, tmp_path: Path) -> None:
    ids_file = tmp_path / "nested" / "ids.json"
    result = run_seed(db_url, ids_file, "--users", "1500", "--posts", "3000", "--seed", "3")
    assert result.exit_code == 0, result.output

    sample = json.loads(ids_file.read_text())
    assert sample["seed"] == 3
    assert (sample["users_total"], sample["posts_total"]) == (1500, 3000)
    assert len(sample["users"]) == len(set(sample["users"])) == 1000
    assert len(sample["posts"]) == len(set(sample["posts"])) == 1000
    found_users = _scalar_param(
        db, "SELECT count(*) FROM users WHERE id = ANY(%s::uuid[])", sample["users"]
    )
    found_posts = _scalar_param(
        db, "SELECT count(*) FROM posts WHERE id = ANY(%s::uuid[])", sample["posts"]
    )
    assert (found_users, found_posts) == (1000, 1000)


def _scalar_param(db: DB, sql: str, value: object) -> object:
    row = db.execute(sql, (value,)).fetchone()
    assert row is not None
    return row[0]


def _content(db: DB) -> list[tuple[object, ...]]:
    users = db.execute(
        "SELECT id, email, name, created_at, updated_at FROM users ORDER BY id"
    ).fetchall()
    posts = db.execute(
        "SELECT id, author_id, title, content, published, created_at, updated_at"
        " FROM posts ORDER BY id"
    ).fetchall()
    return [*users, *posts]


def test_seed_is_deterministic_with_seed(db_url: str, other_db_url: str, tmp_path: Path) -> None:
    args = ("--users", "200", "--posts", "1000", "--seed", "42")
    first = run_seed(db_url, tmp_path / "a.json", *args)
    second = run_seed(other_db_url, tmp_path / "b.json", *args)
    assert first.exit_code == second.exit_code == 0, first.output + second.output

    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    with psycopg.connect(db_url) as a, psycopg.connect(other_db_url) as b:
        assert _content(a) == _content(b)


def test_a_different_seed_gives_different_data(
    db_url: str, other_db_url: str, tmp_path: Path
) -> None:
    first = run_seed(db_url, tmp_path / "a.json", "--users", "50", "--posts", "100", "--seed", "1")
    second = run_seed(
        other_db_url, tmp_path / "b.json", "--users", "50", "--posts", "100", "--seed", "2"
    )
    assert first.exit_code == second.exit_code == 0, first.output + second.output

    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert set(a["users"]).isdisjoint(b["users"])


def test_seed_refuses_a_database_that_holds_data_unless_forced(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    db.execute("INSERT INTO users (email, name) VALUES ('keep@example.com', 'Keep')")
    refused = run_seed(db_url, tmp_path / "ids.json", "--users", "10", "--posts", "20")
    assert refused.exit_code != 0
    assert "already holds 1 users and 0 posts" in refused.output
    assert "--force" in refused.output
    assert _scalar(db, "SELECT count(*) FROM users") == 1
    assert not (tmp_path / "ids.json").exists()

    forced = run_seed(db_url, tmp_path / "ids.json", "--users", "10", "--posts", "20", "--force")
    assert forced.exit_code == 0, forced.output
    assert _scalar(db, "SELECT count(*) FROM users") == 10
    assert _scalar(db, "SELECT count(*) FROM users WHERE email = 'keep@example.com'") == 0


def test_seed_refuses_twice_without_force(db_url: str, db: DB, tmp_path: Path) -> None:
    assert run_seed(db_url, tmp_path / "ids.json", "--users", "10", "--posts", "20").exit_code == 0
    again = run_seed(db_url, tmp_path / "ids.json", "--users", "10", "--posts", "20")
    assert again.exit_code != 0
    assert "already holds 10 users and 20 posts" in again.output


def test_seed_asks_for_migrations_on_an_unmigrated_database(
    empty_db_url: str, tmp_path: Path
) -> None:
    result = run_seed(empty_db_url, tmp_path / "ids.json")
    assert result.exit_code != 0
    assert "rawpost migrate apply" in result.output


def test_seed_rejects_more_posts_than_40_per_user(db_url: str, tmp_path: Path) -> None:
    result = run_seed(db_url, tmp_path / "ids.json", "--users", "2", "--posts", "81")
    assert result.exit_code != 0
    assert "at most 40 posts per user" in result.output


def test_now_defaults_to_the_current_time(db_url: str, db: DB, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        seed,
        [
            "--database-url",
            db_url,
            "--ids-file",
            str(tmp_path / "i.json"),
            "--users",
            "20",
            "--posts",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    newest = _scalar(db, "SELECT max(created_at) FROM posts")
    assert isinstance(newest, datetime)
    assert datetime.now(UTC) - timedelta(days=365) < newest <= datetime.now(UTC)


def test_seed_migrates_and_fills_the_embedded_database_when_no_url_is_set() -> None:
    """The newcomer's first command: nothing configured, a fresh embedded PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_")}
    env.pop("DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="rawpost-seed-embedded-") as tmp:
        env["RAWPOST_DATA_DIR"] = str(Path(tmp) / "pgdata")
        ids_file = Path(tmp) / "ids.json"
        done = subprocess.run(
            [*SEED, "--users", "20", "--posts", "50", "--seed", "5", "--ids-file", str(ids_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "seeded 20 users and 50 posts" in done.stdout
        assert len(json.loads(ids_file.read_text())["users"]) == 20
