"""Auth that waits on the clock (seconds of sleep, so not in the fast loop): a token the
worker kept is refused once it expires, and a role change committed late is still seen
within a second."""

from __future__ import annotations

import time

import psycopg

from tests.helpers import Client, assert_problem, bearer, body_of, create_user, mint_token
from tests.integration.auth.checks import assert_401


def test_a_verified_token_kept_by_the_worker_is_refused_once_it_expires(api: Client) -> None:
    user = create_user(api, "short@example.com")
    token = bearer(mint_token(user["id"], ttl=2))
    assert api.get("/api/users/me", headers=token).status_code == 200  # verified, kept
    assert api.get("/api/users/me", headers=token).status_code == 200  # from the cache
    time.sleep(2.1)
    assert_401(api.get("/api/users/me", headers=token))


def test_a_role_change_committed_late_is_still_seen_within_a_second(
    api: Client, db_url: str
) -> None:
    user = create_user(api, "late@example.com")
    headers = bearer(mint_token(user["id"]))
    lookup = {"email": "late@example.com"}
    assert_problem(api.get("/api/users", params=lookup, headers=headers), 403)
    with psycopg.connect(db_url) as conn:  # one transaction, open for 2.5 s
        conn.execute("UPDATE users SET role = 'admin' WHERE id = %s", (user["id"],))
        time.sleep(2.5)  # the workers poll a dozen times meanwhile
    time.sleep(1.0)
    assert body_of(api.get("/api/users", params=lookup, headers=headers), 200)["items"]
