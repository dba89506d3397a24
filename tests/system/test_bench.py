"""The load-test kit run for real: pgbench runs every statement and cleans up, the wrk scripts
send the benchmark requests, and on a representative data set every list statement reads
its table through an index."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from rawpost_devtools import bench as kit
from rawpost_devtools.bench import BENCH_DIR, BENCHMARKS, PK_STATEMENT, Sampled, pgbench_job
from rawpost_devtools.seed import seed
from service.db.pool import SERVER_SETTINGS
from service.sql import QUERIES
from tests.helpers import DB, scratch_database


def _seed(db_url: str, ids_file: Path, users: int, posts: int) -> dict[str, Any]:
    result = CliRunner().invoke(
        seed,
        [
            "--database-url",
            db_url,
            "--ids-file",
            str(ids_file),
            "--users",
            str(users),
            "--posts",
            str(posts),
            "--seed",
            "11",
        ],
    )
    assert result.exit_code == 0, result.output
    sample: dict[str, Any] = json.loads(ids_file.read_text())
    return sample


def test_pgbench_runs_every_statement_and_the_bench_removes_the_rows_it_created(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    sample = _seed(db_url, tmp_path / "ids.json", 200, 1000)
    pgbench = kit.find_pgbench()
    jobs = {
        b.name: pgbench_job(QUERIES[b.query].source, b.params, sample["users"]) for b in BENCHMARKS
    }
    jobs["pk"] = pgbench_job(PK_STATEMENT, {"user_id": Sampled.USER_ID}, sample["users"])
    for name, job in jobs.items():
        result = kit.run_pgbench(
            pgbench, db_url, job, clients=2, jobs=1, seconds=1, workdir=tmp_path
        )
        assert result.tps > 0, name
        assert result.transactions > 0
        assert result.failed == 0
    created = db.execute("SELECT count(*) FROM posts WHERE title = 'rawpost bench post'").fetchone()
    assert created is not None and int(str(created[0])) > 0
    db.execute(
        "INSERT INTO users (email, name)"
        " VALUES ('bench-x-1-1@bench.rawpost.invalid', 'wrk'), ('x@example.com', 'kept')"
    )

    kit._delete_created(db_url)

    live = db.execute("SELECT count(*) FROM users WHERE deleted_at IS NULL").fetchone()
    assert live == (201,)
    left = db.execute("SELECT count(*) FROM posts WHERE title = 'rawpost bench post'").fetchone()
    assert left == (0,)
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (1000,)
    assert db.execute("SELECT 1 FROM users WHERE email = 'x@example.com'").fetchone()


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes, str]]

    def _answer(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        auth = self.headers.get("Authorization") or ""
        self.seen.append((self.command, self.path, self.rfile.read(length), auth))
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer(200)

    def do_POST(self) -> None:
        self._answer(201)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str, bytes, str]]]]:
    """A tiny HTTP server on loopback that records every request."""
    seen: list[tuple[str, str, bytes, str]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_wrk_scripts_send_the_benchmark_requests(
    recorder: tuple[str, list[tuple[str, str, bytes, str]]], tmp_path: Path
) -> None:
    url, seen = recorder
    users = [str(uuid.uuid4()) for _ in range(5)]
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps({"users": users, "posts": [str(uuid.uuid4())]}))
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text("token-a\ntoken-b\n")
    wrk = kit.find_wrk()
    authorizations: set[str] = set()
    for b in BENCHMARKS:
        seen.clear()
        result = kit.run_wrk(
            wrk,
            url,
            BENCH_DIR / b.script,
            [str(ids_file), "testrun", str(tokens_file)],
            connections=4,
            threads=2,
            seconds=1,
        )
        assert result.requests > 0, b.name
        assert result.errors == 0
        assert 0 < result.p50_ms <= result.p99_ms
        assert seen
        for method, path, body, auth in seen:
            if b.name == "create_post":
                assert (method, path) == ("POST", "/api/posts")
                payload = json.loads(body)
                assert payload == {
                    "title": "rawpost bench post",
                    "content": "Written by rawpost bench.",
                    "published": True,
                }
                authorizations.add(auth)
            elif b.name == "posts_page":
                assert (method, path) == ("GET", "/api/posts?limit=20")
            else:
                suffix = "?include=posts" if b.name == "user_with_posts" else ""
                assert method == "GET"
                assert path.removesuffix(suffix).removeprefix("/api/users/") in users
                assert path.endswith(suffix)
    # Each request signed with one of the minted tokens, picked at random.
    assert authorizations == {"Bearer token-a", "Bearer token-b"}


def test_a_paced_load_waits_between_each_connections_requests(
    recorder: tuple[str, list[tuple[str, str, bytes, str]]], tmp_path: Path
) -> None:
    url, seen = recorder
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps({"users": [str(uuid.uuid4())], "posts": []}))
    wrk = kit.find_wrk()

    def load(delay_ms: float | None) -> int:
        seen.clear()
        result = kit.run_wrk(
            wrk,
            url,
            BENCH_DIR / "user_by_id.lua",
            [str(ids_file), "paced"],
            connections=2,
            threads=1,
            seconds=2,
            delay_ms=delay_ms,
        )
        assert result.errors == 0
        # Requests still in flight when wrk stops reach the server but are not counted.
        assert 0 <= len(seen) - result.requests <= 2
        return result.requests

    # 2 connections, each wait drawn between 0 and 500 ms (mean 250), 2 s: about 8 each;
    # 16 would need 16 waits to add up to under 2 s (mean 4 s: a chance of about 1e-4).
    paced = load(250)
    assert 4 <= paced <= 2 * 16, paced
    assert load(None) > 3 * paced


@pytest.fixture(scope="module")
def representative_db(
    pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """2,000 users and 20,000 posts (the standard data set's shape, 1/50 of its size)."""
    with scratch_database(pg_admin_url, "rawpost_plans", template=template_db) as url:
        _seed(url, tmp_path_factory.mktemp("plans") / "ids.json", 2000, 20_000)
        yield url


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


# Keyset pages need an ordered Index Scan (a bitmap scan would sort every match); where
# the statement reads at most a few dozen rows of a table, a bitmap scan over an index is
# as good (get_user_with_posts reads one author's posts: a bitmap scan on this data set,
# an Index Scan on the full one).
@pytest.mark.parametrize(
    ("query", "table", "ordered"),
    [
        ("posts/list_posts", "posts", True),
        ("posts/list_user_posts", "posts", True),
        ("users/list_users", "users", True),
        ("users/list_users_by_email", "users", False),
        ("users/get_user_with_posts", "posts", False),
    ],
)
def test_every_list_statement_reads_its_table_through_an_index(
    representative_db: str, query: str, table: str, ordered: bool
) -> None:
    # Under the pooled connections' own settings: they run every statement's generic plan.
    options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
    with psycopg.connect(representative_db, autocommit=True, options=options) as conn:
        row = conn.execute(f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {QUERIES[query].sql}").fetchone()
    assert row is not None
    nodes = list(_nodes(row[0][0]["Plan"]))
    scans = {(n["Node Type"], n.get("Relation Name")) for n in nodes if "Relation Name" in n}
    assert not {s for s in scans if s[0] == "Seq Scan" and s[1] in ("users", "posts")}, scans
    wanted = {"Index Scan", "Index Only Scan"} | (set() if ordered else {"Bitmap Heap Scan"})
    assert {kind for kind, relation in scans if relation == table} & wanted, scans
