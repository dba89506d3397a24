"""The operator commands and the API on the oldest supported servers, PostgreSQL 14
(npm's build: Debian 12 has none) and Debian's 15, the kind operators run (the tests'
own server is the embedded 18): migrate apply, rollback and rehearse, sql check, and the
API through `rawpost serve`. `rawpost contracts` needs 16 (EXPLAIN (GENERIC_PLAN)):
below it says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import PASSWORD, TEST_ENV, bearer
from tests.support.postgres import MajorPostgres, major_postgres
from tests.support.service import running_service


@pytest.fixture(scope="module", params=[14, 15], ids=lambda major: f"postgresql-{major}")
def server(request: pytest.FixtureRequest) -> Iterator[MajorPostgres]:
    with major_postgres(request.param) as pg:
        yield pg


def rawpost(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**os.environ, **TEST_ENV, "DATABASE_URL": url},
        cwd=tmp_path,  # the rehearsal record (.rawpost/) goes here, not into the checkout
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_migrate_apply_rollback_and_rehearse(server: MajorPostgres, tmp_path: Path) -> None:
    url = server.database("migrations")
    for args in (("migrate", "apply"), ("migrate", "rollback")):
        done = rawpost(tmp_path, url, *args)
        assert done.returncode == 0, done.stdout + done.stderr
    # pg_dump 18 writes `SET transaction_timeout = 0;`, which a 15 server rejected.
    rehearsal = rawpost(tmp_path, url, "migrate", "rehearse")
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    assert "REHEARSAL FAILED" not in rehearsal.stdout
    applied = rawpost(tmp_path, url, "migrate", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    status = rawpost(tmp_path, url, "migrate", "status")
    assert status.returncode == 0 and "pending" not in status.stdout.lower().replace(
        "0 pending", ""
    ), status.stdout


def test_sql_check_runs_and_contracts_say_they_need_16(
    server: MajorPostgres, tmp_path: Path
) -> None:
    checked = rawpost(tmp_path, "", "sql", "check", "--database-url", server.admin_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    contracts = rawpost(tmp_path, "", "contracts", "check", "--database-url", server.admin_url)
    assert contracts.returncode != 0
    assert "needs PostgreSQL 16 or newer" in contracts.stderr, contracts.stderr
    assert "Traceback" not in contracts.stderr


def test_the_api(server: MajorPostgres, tmp_path: Path) -> None:
    url = server.database("api")
    applied = rawpost(tmp_path, url, "migrate", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with running_service(tmp_path, url) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        with httpx.Client(base_url=service.base, timeout=10) as http:
            account = {"email": "old@example.com", "name": "Old server", "password": PASSWORD}
            user = http.post("/api/users", json=account)
            assert user.status_code == 201, user.text
            sign_in = {"email": account["email"], "password": PASSWORD}
            headers = bearer(http.post("/api/auth/token", json=sign_in).json()["access_token"])
            post = http.post("/api/posts", json={"title": "t", "content": "c"}, headers=headers)
            assert post.status_code == 201, post.text
            url_ = f"/api/posts/{post.json()['id']}"
            tag = post.headers["etag"]
            changed = http.patch(
                url_, json={"published": True}, headers={**headers, "If-Match": tag}
            )
            assert changed.status_code == 200, changed.text
            stale = http.patch(url_, json={"title": "u"}, headers={**headers, "If-Match": tag})
            assert stale.status_code == 412, stale.text
            page = http.get("/api/posts", params={"limit": 1}).json()
            assert [p["id"] for p in page["items"]] == [post.json()["id"]]
            with_posts = http.get(f"/api/users/{user.json()['id']}", params={"include": "posts"})
            assert len(with_posts.json()["posts"]) == 1
        assert service.stop() == 0
