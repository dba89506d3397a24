"""Access tokens: tampered, expired or missing ones are 401 and change nothing; operator-minted
ones work; signing secrets are checked at start and rotate; OpenAPI declares the scheme."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings, SettingsError, check_jwt_secrets, load_settings
from tests.helpers import DB, TEST_JWT_SECRET, Client, bearer, body_of, create_user, mint_token
from tests.integration.auth.checks import assert_401, user_row


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
    user = create_user(api, "victim@example.com")
    token = forge(user["id"])
    before = user_row(db, user["id"])
    assert_401(api.get("/api/users/me", headers=bearer(token)))
    assert_401(api.get(f"/api/users/{user['id']}", headers=bearer(token)))
    assert_401(api.patch(f"/api/users/{user['id']}", json={"name": "X"}, headers=bearer(token)))
    assert_401(api.delete(f"/api/users/{user['id']}", headers=bearer(token)))
    assert_401(api.post("/api/posts", json={"title": "t", "content": ""}, headers=bearer(token)))
    assert user_row(db, user["id"]) == before
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (0,)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token abc"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_401(
    api: Client, header: str
) -> None:
    assert_401(api.get("/api/posts", headers={"Authorization": header}))


def test_a_route_that_needs_a_caller_is_401_without_a_token(api: Client, db: DB) -> None:
    user = create_user(api, "anon-target@example.com")
    before = user_row(db, user["id"])
    assert_401(api.get("/api/users/me"))
    assert_401(api.post("/api/posts", json={"title": "t", "content": ""}))
    assert_401(api.patch(f"/api/users/{user['id']}", json={"name": "X"}))
    assert_401(api.delete(f"/api/users/{user['id']}"))
    assert_401(api.post(f"/api/users/{user['id']}/restore"))
    assert_401(api.post("/api/auth/logout"))
    assert user_row(db, user["id"]) == before


def test_an_operator_minted_token_works_without_a_password(api: Client) -> None:
    user = create_user(api, "minted@example.com")
    me = body_of(api.get("/api/users/me", headers=bearer(mint_token(user["id"]))), 200)
    assert me["id"] == user["id"]


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
