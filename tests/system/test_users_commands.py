"""The operators' account commands, run as processes: `rawpost users set-password|promote|
demote EMAIL` and `rawpost token USER_ID...`, against the test's own database."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import DB, PASSWORD, TEST_JWT_SECRET, Client, assert_problem, bearer, body_of

RAWPOST = [sys.executable, "-m", "service.cli"]


def rawpost(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAWPOST_")}
    env.update(DATABASE_URL=db_url, RAWPOST_JWT_SECRET=TEST_JWT_SECRET)
    return subprocess.run(
        [*RAWPOST, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_set_password_reads_stdin_and_lets_a_password_less_user_sign_in(
    api: Client, db: DB, db_url: str
) -> None:
    db.execute("INSERT INTO users (email, name) VALUES ('legacy@example.com', 'Legacy')")
    sign_in = {"email": "legacy@example.com", "password": "a password from stdin"}
    assert_problem(api.post("/api/auth/token", json=sign_in), 401)
    result = rawpost(
        db_url, "users", "set-password", "LEGACY@example.com", stdin="a password from stdin\n"
    )
    assert result.returncode == 0, result.stderr
    assert "password set for" in result.stdout
    body_of(api.post("/api/auth/token", json=sign_in), 200)
    row = db.execute("SELECT password_hash FROM users WHERE email = 'legacy@example.com'")
    stored = row.fetchone()
    assert stored is not None and str(stored[0]).startswith("$argon2id$")


def test_set_password_revokes_the_users_refresh_tokens(api: Client, db_url: str) -> None:
    body = {"email": "r@example.com", "name": "R", "password": PASSWORD}
    body_of(api.post("/api/users", json=body), 201)
    pair = body_of(
        api.post("/api/auth/token", json={"email": "r@example.com", "password": PASSWORD}), 200
    )
    result = rawpost(db_url, "users", "set-password", "r@example.com", stdin="another password\n")
    assert result.returncode == 0, result.stderr
    assert_problem(
        api.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401
    )


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("short\n", "not acceptable"), ("\n", "not acceptable"), ("x" * 129 + "\n", "not acceptable")],
)
def test_set_password_refuses_a_password_outside_the_contract(
    db: DB, db_url: str, stdin: str, message: str
) -> None:
    db.execute("INSERT INTO users (email, name) VALUES ('p@example.com', 'P')")
    result = rawpost(db_url, "users", "set-password", "p@example.com", stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert db.execute("SELECT password_hash FROM users").fetchone() == (None,)


def test_a_password_is_never_taken_from_the_command_line(db: DB, db_url: str) -> None:
    db.execute("INSERT INTO users (email, name) VALUES ('argv@example.com', 'A')")
    result = rawpost(db_url, "users", "set-password", "argv@example.com", "on the command line")
    assert result.returncode == 2  # a usage error: there is no such argument
    assert db.execute("SELECT password_hash FROM users").fetchone() == (None,)


def test_commands_for_an_unknown_email_fail_with_one_line(db_url: str) -> None:
    for args in (("promote", "nobody@example.com"), ("demote", "nobody@example.com")):
        result = rawpost(db_url, "users", *args)
        assert result.returncode == 1
        assert result.stderr.strip() == "Error: no live user has the email 'nobody@example.com'"
    result = rawpost(db_url, "users", "set-password", "nobody@example.com", stdin=PASSWORD + "\n")
    assert result.returncode == 1 and "no live user" in result.stderr


def test_promote_and_demote_grant_and_remove_admin_within_a_second(
    api: Client, db_url: str
) -> None:
    body = {"email": "op@example.com", "name": "Op", "password": PASSWORD}
    user = body_of(api.post("/api/users", json=body), 201)
    headers = bearer(
        body_of(
            api.post("/api/auth/token", json={"email": "op@example.com", "password": PASSWORD}), 200
        )["access_token"]
    )
    lookup = {"email": "op@example.com"}
    assert_problem(api.get("/api/users", params=lookup, headers=headers), 403)
    assert rawpost(db_url, "users", "promote", "op@example.com").returncode == 0
    time.sleep(1.0)  # the contract's bound for a role change to reach every worker
    assert (
        body_of(api.get("/api/users", params=lookup, headers=headers), 200)["items"][0]["id"]
        == user["id"]
    )
    assert rawpost(db_url, "users", "demote", "op@example.com").returncode == 0
    time.sleep(1.0)
    assert_problem(api.get("/api/users", params=lookup, headers=headers), 403)


def test_token_mints_access_tokens_that_work_without_a_password(
    api: Client, db: DB, db_url: str
) -> None:
    rows = db.execute(
        "INSERT INTO users (email, name) VALUES ('t1@example.com', 'T1'), ('t2@example.com', 'T2')"
        " RETURNING id"
    ).fetchall()
    ids = [str(row[0]) for row in rows]
    result = rawpost(db_url, "token", *ids, "--ttl", "60")
    assert result.returncode == 0, result.stderr
    tokens = result.stdout.split()
    assert len(tokens) == 2
    for user_id, token in zip(ids, tokens, strict=True):
        assert body_of(api.get("/api/users/me", headers=bearer(token)), 200)["id"] == user_id
    assert rawpost(db_url, "token", "not-a-uuid").returncode == 2
