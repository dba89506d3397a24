"""Accounts and tokens (contract v2): sign-up, sign-in, refresh, logout, tampering, rotation.

Every test goes through the real app over HTTP on a real PostgreSQL; an attack checks the
contract's status and that the database shows nothing changed.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.auth.passwords import HASHER
from service.config import Settings, SettingsError, check_jwt_secrets, load_settings
from tests.helpers import (
    DB,
    PASSWORD,
    TEST_ENV,
    TEST_JWT_SECRET,
    Client,
    assert_problem,
    bearer,
    body_of,
    mint_token,
)


def sign_up(api: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    body = {"email": email, "name": email.split("@")[0], "password": password}
    return body_of(api.post("/api/users", json=body), 201)


def sign_in(api: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    return body_of(api.post("/api/auth/token", json={"email": email, "password": password}), 200)


def assert_401(response: Any) -> dict[str, Any]:
    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return problem


def user_row(db: DB, user_id: str) -> tuple[object, ...] | None:
    return db.execute(
        "SELECT email, name, password_hash, role, updated_at, deleted_at FROM users WHERE id = %s",
        (user_id,),
    ).fetchone()


# --- sign-up and sign-in ------------------------------------------------------------------


def test_sign_up_stores_only_an_argon2id_hash_at_owasp_minimum_or_above(
    api: Client, db: DB
) -> None:
    user = sign_up(api, "ada@example.com")
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row is not None
    stored = str(row[0])
    assert PASSWORD not in stored
    assert stored.startswith("$argon2id$")
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2 and int(params["p"]) >= 1
    assert "password" not in user


@pytest.mark.parametrize("password", ["short", "x" * 129, "twelve chars\x00"])
def test_sign_up_with_a_password_outside_its_constraints_is_400_and_stores_nothing(
    api: Client, db: DB, password: str
) -> None:
    body = {"email": "weak@example.com", "name": "Weak", "password": password}
    assert_problem(api.post("/api/users", json=body), 400)
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


@pytest.mark.parametrize("field", ["role", "id", "password_hash", "created_at", "deleted_at"])
def test_fields_a_client_may_not_set_are_unknown_fields(api: Client, db: DB, field: str) -> None:
    body = {"email": "x@example.com", "name": "X", "password": PASSWORD, field: "admin"}
    problem = assert_problem(api.post("/api/users", json=body), 400)
    assert problem["errors"][0]["field"] == field
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    user = sign_up(api, "y@example.com")
    token = sign_in(api, "y@example.com")["access_token"]
    before = user_row(db, user["id"])
    patched = api.patch(f"/api/users/{user['id']}", json={field: "admin"}, headers=bearer(token))
    assert_problem(patched, 400)
    assert user_row(db, user["id"]) == before


def test_sign_in_with_json_returns_a_bearer_pair_that_works(api: Client) -> None:
    user = sign_up(api, "ada@example.com")
    response = api.post("/api/auth/token", json={"email": "ADA@example.com", "password": PASSWORD})
    pair = body_of(response, 200)
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(pair["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"] and {"exp", "iat", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900
    me = body_of(api.get("/api/users/me", headers=bearer(pair["access_token"])), 200)
    assert me == user


def test_sign_in_with_the_oauth2_password_form_as_the_docs_send_it(api: Client) -> None:
    sign_up(api, "form@example.com")
    form = {"grant_type": "password", "username": "form@example.com", "password": PASSWORD}
    pair = body_of(api.post("/api/auth/token", data=form), 200)
    assert body_of(api.get("/api/users/me", headers=bearer(pair["access_token"])), 200)
    assert_problem(
        api.post("/api/auth/token", data={**form, "grant_type": "client_credentials"}), 400
    )
    assert_problem(api.post("/api/auth/token", data={**form, "extra": "x"}), 400)
    assert_401(api.post("/api/auth/token", data={**form, "password": "wrong password!"}))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[]", "application/json"),
        (b"--x\r\n", "multipart/form-data; boundary=x"),
        (b"email=a", "text/plain"),
        (b"username=a&username=b&password=x", "application/x-www-form-urlencoded"),
    ],
)
def test_a_malformed_sign_in_body_is_400(api: Client, body: bytes, content_type: str) -> None:
    response = api.post("/api/auth/token", content=body, headers={"content-type": content_type})
    problem = assert_problem(response, 400)
    assert "Traceback" not in problem["detail"]


def test_a_sign_up_idempotency_hash_is_keyed_not_a_plain_digest_of_the_password(
    api: Client, db: DB
) -> None:
    import hashlib
    import json

    body = json.dumps({"email": "k@example.com", "name": "K", "password": PASSWORD}).encode()
    headers = {"content-type": "application/json", "Idempotency-Key": "signup-1"}
    body_of(api.post("/api/users", content=body, headers=headers), 201)
    replay = api.post("/api/users", content=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    (stored,) = db.execute("SELECT request_hash FROM idempotency_keys").fetchall()
    assert stored[0] != hashlib.sha256(body).hexdigest()


def test_wrong_email_and_wrong_password_give_the_same_401_in_similar_time(api: Client) -> None:
    sign_up(api, "known@example.com")
    wrong_password = {"email": "known@example.com", "password": "not the password"}
    unknown_email = {"email": "nobody@example.com", "password": "not the password"}
    a = assert_401(api.post("/api/auth/token", json=wrong_password))
    b = assert_401(api.post("/api/auth/token", json=unknown_email))
    assert a == b
    took: dict[str, list[float]] = {"password": [], "email": []}
    for _ in range(7):  # interleaved, medians: the machine is shared and noisy
        for name, body in (("password", wrong_password), ("email", unknown_email)):
            started = time.perf_counter()
            api.post("/api/auth/token", json=body)
            took[name].append(time.perf_counter() - started)
    ratio = statistics.median(took["email"]) / statistics.median(took["password"])
    # Both verify one Argon2id hash (tens of ms); skipping it would make the ratio ~0.1.
    assert 0.5 < ratio < 2.0, took


def test_a_user_without_a_password_cannot_sign_in(api: Client, db: DB) -> None:
    db.execute("INSERT INTO users (email, name) VALUES ('legacy@example.com', 'Legacy')")
    response = api.post(
        "/api/auth/token", json={"email": "legacy@example.com", "password": PASSWORD}
    )
    assert_401(response)


def test_a_stored_hash_with_old_parameters_is_upgraded_at_sign_in(api: Client, db: DB) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    user = sign_up(api, "old@example.com")
    weak = Argon2Hasher(memory_cost=8 * 1024, time_cost=1, parallelism=1).hash(PASSWORD)
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s", (weak, user["id"]))
    sign_in(api, "old@example.com")
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row is not None and row[0] != weak
    assert not HASHER.current_hasher.check_needs_rehash(str(row[0]))
    sign_in(api, "old@example.com")


# --- tampered and dead tokens -------------------------------------------------------------


def _forge_none(user_id: str) -> str:
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + 900, "jti": "x"}
    return jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda uid: _forge_none(uid), id="alg-none"),
        pytest.param(lambda uid: mint_token(uid, secret="another-key-" + "k" * 40), id="other-key"),
        pytest.param(lambda uid: mint_token(uid, issued_at=int(time.time()) - 1000), id="expired"),
        pytest.param(lambda uid: mint_token(uid)[:-4] + "AAAA", id="bad-signature"),
        pytest.param(lambda uid: "not.a.jwt", id="malformed"),
        pytest.param(
            lambda uid: jwt.encode(
                {"sub": uid, "iat": int(time.time()), "exp": int(time.time()) + 900},
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="no-jti",
        ),
        pytest.param(lambda uid: mint_token(str(uuid.uuid4())), id="unknown-user"),
        pytest.param(lambda uid: mint_token("not-a-uuid"), id="sub-not-a-uuid"),
    ],
)
def test_tampered_tokens_are_401_on_reads_and_writes_and_change_nothing(
    api: Client, db: DB, forge: Any
) -> None:
    user = sign_up(api, "victim@example.com")
    token = forge(user["id"])
    before = user_row(db, user["id"])
    assert_401(api.get("/api/users/me", headers=bearer(token)))
    assert_401(api.get(f"/api/users/{user['id']}", headers=bearer(token)))
    assert_401(api.patch(f"/api/users/{user['id']}", json={"name": "X"}, headers=bearer(token)))
    assert_401(api.delete(f"/api/users/{user['id']}", headers=bearer(token)))
    assert_401(api.post("/api/posts", json={"title": "t", "content": ""}, headers=bearer(token)))
    assert user_row(db, user["id"]) == before
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (0,)


def test_a_verified_token_kept_by_the_worker_is_refused_once_it_expires(api: Client) -> None:
    user = sign_up(api, "short@example.com")
    token = bearer(mint_token(user["id"], ttl=2))
    assert api.get("/api/users/me", headers=token).status_code == 200  # verified, kept
    assert api.get("/api/users/me", headers=token).status_code == 200  # from the cache
    time.sleep(2.1)
    assert_401(api.get("/api/users/me", headers=token))


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token abc"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_401(
    api: Client, header: str
) -> None:
    assert_401(api.get("/api/posts", headers={"Authorization": header}))


def test_a_route_that_needs_a_caller_is_401_without_a_token(api: Client, db: DB) -> None:
    user = sign_up(api, "anon-target@example.com")
    before = user_row(db, user["id"])
    assert_401(api.get("/api/users/me"))
    assert_401(api.post("/api/posts", json={"title": "t", "content": ""}))
    assert_401(api.patch(f"/api/users/{user['id']}", json={"name": "X"}))
    assert_401(api.delete(f"/api/users/{user['id']}"))
    assert_401(api.post(f"/api/users/{user['id']}/restore"))
    assert_401(api.post("/api/auth/logout"))
    assert user_row(db, user["id"]) == before


def test_an_operator_minted_token_works_without_a_password(api: Client) -> None:
    user = sign_up(api, "minted@example.com")
    me = body_of(api.get("/api/users/me", headers=bearer(mint_token(user["id"]))), 200)
    assert me["id"] == user["id"]


# --- refresh and logout -------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_login(
    api: Client, db: DB
) -> None:
    sign_up(api, "rot@example.com")
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

    sign_up(api, "race@example.com")
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
    sign_up(api, "bye@example.com")
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
    user = sign_up(api, "gone@example.com")
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
    user = sign_up(api, "pw@example.com")
    here = sign_in(api, "pw@example.com")
    elsewhere = sign_in(api, "pw@example.com")
    headers = bearer(here["access_token"])
    url = f"/api/users/{user['id']}"
    before = user_row(db, user["id"])
    assert_problem(api.patch(url, json={"password": "a brand new secret"}, headers=headers), 400)
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
    user = sign_up(api, "reset@example.com")
    response = api.patch(
        f"/api/users/{user['id']}",
        json={"password": "set by an admin!"},
        headers=bearer(admin_token),
    )
    body_of(response, 200)
    sign_in(api, "reset@example.com", "set by an admin!")


def test_a_role_change_committed_late_is_still_seen_within_a_second(
    api: Client, db_url: str
) -> None:
    user = sign_up(api, "late@example.com")
    headers = bearer(mint_token(user["id"]))
    lookup = {"email": "late@example.com"}
    assert_problem(api.get("/api/users", params=lookup, headers=headers), 403)
    with psycopg.connect(db_url) as conn:  # one transaction, open for 2.5 s
        conn.execute("UPDATE users SET role = 'admin' WHERE id = %s", (user["id"],))
        time.sleep(2.5)  # the workers poll a dozen times meanwhile
    time.sleep(1.0)
    assert body_of(api.get("/api/users", params=lookup, headers=headers), 200)["items"]


# --- secrets and rotation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is not set"),
        ("short", "too short"),
        ("change-me-to-32-or-more-random-bytes", "example"),
    ],
)
def test_a_missing_short_or_example_secret_stops_the_start_naming_it(
    settings: Settings, value: str | None, message: str
) -> None:
    import msgspec

    bad = msgspec.structs.replace(settings, jwt_secret=value)
    with pytest.raises(
        SettingsError, match=f"RAWPOST_JWT_SECRET .*{message}|RAWPOST_JWT_SECRET is {message}"
    ):
        check_jwt_secrets(bad)
    with pytest.raises(SettingsError):
        create_app(bad)


def test_tokens_signed_with_the_previous_secret_work_until_it_is_dropped(db_url: str) -> None:
    old, new = "the-old-secret-" + "o" * 30, "the-new-secret-" + "n" * 30
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, name) VALUES ('r@x.io', 'R') RETURNING id"
        ).fetchone()
    assert row is not None
    old_token = mint_token(row[0], secret=old)

    def app(**secrets: str) -> TestClient:  # type: ignore[type-arg]
        settings = load_settings(
            environ={}, overrides={"database_url": db_url, "pool_min_size": 1, **secrets}
        )
        return TestClient(app=create_app(settings))

    with app(jwt_secret=new, jwt_previous_secret=old) as rotated:
        assert body_of(rotated.get("/api/users/me", headers=bearer(old_token)), 200)
        assert body_of(
            rotated.get("/api/users/me", headers=bearer(mint_token(row[0], secret=new))), 200
        )
    with app(jwt_secret=new) as after:
        assert_401(after.get("/api/users/me", headers=bearer(old_token)))


def test_the_test_environment_uses_a_valid_secret() -> None:
    check_jwt_secrets(load_settings(environ=TEST_ENV))


# --- the OpenAPI document -----------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_and_each_routes_security(api: Client) -> None:
    doc = body_of(api.get("/schema/openapi.json"), 200)
    scheme = doc["components"]["securitySchemes"]["BearerToken"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/auth/token"
    paths = doc["paths"]
    assert paths["/api/posts"]["post"]["security"] == [{"BearerToken": []}]
    assert paths["/api/posts"]["get"]["security"] == [{}, {"BearerToken": []}]
    assert paths["/api/users/me"]["get"]["security"] == [{"BearerToken": []}]
    assert "401" in paths["/api/posts"]["post"]["responses"]
    token_body = paths["/api/auth/token"]["post"]["requestBody"]["content"]
    assert set(token_body) == {"application/json", "application/x-www-form-urlencoded"}
    user = doc["components"]["schemas"]["User"]
    assert "email" not in user.get("required", [])
