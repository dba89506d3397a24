"""Sign-up stores only an argon2id hash; sign-in (JSON or the OAuth2 form) returns a bearer
pair, and a wrong email or password gives the same 401 in similar time."""

from __future__ import annotations

import statistics
import time

import jwt
import pytest

from service.auth.passwords import HASHER
from tests.helpers import (
    DB,
    PASSWORD,
    TEST_JWT_SECRET,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    sign_in,
)
from tests.integration.auth.checks import assert_401, user_row


def test_sign_up_stores_only_an_argon2id_hash_at_owasp_minimum_or_above(
    api: Client, db: DB
) -> None:
    user = create_user(api, "ada@example.com")
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
    user = create_user(api, "y@example.com")
    token = sign_in(api, "y@example.com")["access_token"]
    before = user_row(db, user["id"])
    patched = api.patch(f"/api/users/{user['id']}", json={field: "admin"}, headers=bearer(token))
    assert_problem(patched, 400)
    assert user_row(db, user["id"]) == before


def test_sign_in_with_json_returns_a_bearer_pair_that_works(api: Client) -> None:
    user = create_user(api, "ada@example.com")
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
    create_user(api, "form@example.com")
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
    create_user(api, "known@example.com")
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

    user = create_user(api, "old@example.com")
    weak = Argon2Hasher(memory_cost=8 * 1024, time_cost=1, parallelism=1).hash(PASSWORD)
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s", (weak, user["id"]))
    sign_in(api, "old@example.com")
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row is not None and row[0] != weak
    assert not HASHER.current_hasher.check_needs_rehash(str(row[0]))
    sign_in(api, "old@example.com")
