"""A login's life: refresh rotates and a reused refresh token revokes the login; logout,
deleting the user and changing the password revoke (timing: tests/system/test_auth_clock.py)."""

from __future__ import annotations

import time

from tests.helpers import (
    DB,
    PASSWORD,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    sign_in,
)
from tests.integration.auth.checks import assert_401, user_row


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_login(
    api: Client, db: DB
) -> None:
    create_user(api, "rot@example.com")
    first = sign_in(api, "rot@example.com")
    second = body_of(
        api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 200
    )
    assert second["refresh_token"] != first["refresh_token"]
    assert body_of(api.get("/api/users/me", headers=bearer(second["access_token"])), 200)
    third = body_of(
        api.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}), 200
    )
    # The retired first token again: 401, and every descendant (third) dies with it.
    reuse = assert_401(
        api.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    )
    assert "already used" in reuse["detail"]
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": third["refresh_token"]}))
    # Only hashes are stored.
    stored = db.execute("SELECT token_hash FROM refresh_tokens").fetchall()
    assert len(stored) == 3
    assert all(first["refresh_token"].encode() not in row[0] for row in stored)  # type: ignore[operator]
    # Another login of the same user is untouched.
    other = sign_in(api, "rot@example.com")
    body_of(api.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]}), 200)


def test_the_same_refresh_token_presented_twice_at_once_revokes_the_login(api: Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    create_user(api, "race@example.com")
    for _ in range(5):
        token = sign_in(api, "race@example.com")["refresh_token"]
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda _, t=token: api.post("/api/auth/refresh", json={"refresh_token": t}),
                    range(2),
                )
            )
        statuses = sorted(a.status_code for a in answers)
        assert statuses in ([200, 401], [401, 401]), statuses
        # Whoever won holds a token of a revoked login: it is refused.
        for winner in (a for a in answers if a.status_code == 200):
            again = {"refresh_token": winner.json()["refresh_token"]}
            assert_401(api.post("/api/auth/refresh", json=again))


def test_an_unknown_refresh_token_is_401(api: Client) -> None:
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": "made-up"}))
    assert_problem(api.post("/api/auth/refresh", json={"refresh_token": "x", "more": 1}), 400)


def test_logout_revokes_the_access_token_and_the_logins_refresh_tokens(api: Client) -> None:
    create_user(api, "bye@example.com")
    login = sign_in(api, "bye@example.com")
    other = sign_in(api, "bye@example.com")
    headers = bearer(login["access_token"])
    assert api.post("/api/auth/logout", headers=headers).status_code == 204
    assert_401(api.get("/api/users/me", headers=headers))
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}))
    # The other login goes on.
    assert body_of(api.get("/api/users/me", headers=bearer(other["access_token"])), 200)
    body_of(api.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]}), 200)


def test_deleting_a_user_revokes_its_tokens_even_after_a_restore(
    api: Client, admin_token: str
) -> None:
    user = create_user(api, "gone@example.com")
    login = sign_in(api, "gone@example.com")
    headers = bearer(login["access_token"])
    assert api.delete(f"/api/users/{user['id']}", headers=headers).status_code == 204
    assert_401(api.get("/api/users/me", headers=headers))
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}))
    assert_401(
        api.post("/api/auth/token", json={"email": "gone@example.com", "password": PASSWORD})
    )
    restored = api.post(f"/api/users/{user['id']}/restore", headers=bearer(admin_token))
    body_of(restored, 200)
    assert_401(api.get("/api/users/me", headers=headers))  # died with the delete
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": login["refresh_token"]}))
    time.sleep(1.05)  # tokens issued in the second of the delete are refused too
    fresh = sign_in(api, "gone@example.com")
    body_of(api.get("/api/users/me", headers=bearer(fresh["access_token"])), 200)


def test_changing_a_password_needs_the_current_one_and_revokes_other_logins(
    api: Client, db: DB
) -> None:
    user = create_user(api, "pw@example.com")
    here = sign_in(api, "pw@example.com")
    elsewhere = sign_in(api, "pw@example.com")
    headers = bearer(here["access_token"])
    url = f"/api/users/{user['id']}"
    before = user_row(db, user["id"])
    # 403, not 400: the same body from an admin needs no current_password.
    assert_problem(api.patch(url, json={"password": "a brand new secret"}, headers=headers), 403)
    wrong = {"password": "a brand new secret", "current_password": "not it at all"}
    assert_problem(api.patch(url, json=wrong, headers=headers), 403)
    assert user_row(db, user["id"]) == before
    good = {"password": "a brand new secret", "current_password": PASSWORD}
    changed = body_of(api.patch(url, json=good, headers=headers), 200)
    assert "password" not in changed
    assert_401(api.post("/api/auth/token", json={"email": "pw@example.com", "password": PASSWORD}))
    sign_in(api, "pw@example.com", "a brand new secret")
    assert_401(api.post("/api/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}))
    body_of(api.post("/api/auth/refresh", json={"refresh_token": here["refresh_token"]}), 200)


def test_an_admin_sets_a_password_without_the_current_one(api: Client, admin_token: str) -> None:
    user = create_user(api, "reset@example.com")
    response = api.patch(
        f"/api/users/{user['id']}",
        json={"password": "set by an admin!"},
        headers=bearer(admin_token),
    )
    body_of(response, 200)
    sign_in(api, "reset@example.com", "set by an admin!")
