"""Rate limits through the app: 429 with Retry-After, the RateLimit headers, sign-in per
email, sign-up per address, trusted proxies, and `off`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.config import load_settings
from tests.helpers import (
    PASSWORD,
    TEST_ENV,
    Client,
    assert_problem,
    bearer,
    body_of,
    create_user,
    insert_admin,
    mint_token,
)

Limited = Callable[..., Any]


def _from_peer(app: ASGIApp, host: str) -> ASGIApp:
    """The app as seen from a client at `host` (TestClient's peer is "testclient")."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        seen: Any = {**scope, "client": (host, 40000)}
        await app(seen, receive, send)

    return wrapped


@contextmanager
def limited_client(db_url: str, *, peer: str = "127.0.0.1", **env: str) -> Iterator[Client]:
    settings = load_settings(
        environ={**TEST_ENV, **env},
        overrides={"database_url": db_url, "pool_min_size": 1, "startup_timeout": 5},
    )
    app: Any = _from_peer(create_app(settings), peer)
    with TestClient(app=app) as client:
        yield client


def _sign_up(client: Client, email: str, **headers: str) -> Any:
    body = {"email": email, "name": "Someone", "password": PASSWORD}
    return client.post("/api/users", json=body, headers=headers)


def test_over_the_limit_a_caller_gets_429_with_retry_after_and_headers(db_url: str) -> None:
    with limited_client(db_url, RAWPOST_RATE_LIMIT="3") as client:
        for left in (2, 1, 0):
            response = client.get("/api/posts")
            body_of(response, 200)
            assert response.headers["ratelimit-policy"] == '"api";q=3;w=60'
            assert re.fullmatch(rf'"api";r={left};t=(60|59)', response.headers["ratelimit"])
        refused = client.get("/api/users")  # any /api route: one count per caller
        body = assert_problem(refused, 429)
        assert body["type"] == "/problems/too-many-requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-policy"] == '"api";q=3;w=60'
        assert refused.headers["ratelimit"].startswith('"api";r=0;t=')
        assert refused.headers["x-request-id"]
        # Not /api: never limited, no headers.
        live = client.get("/health/live")
        assert live.status_code == 200 and "ratelimit" not in live.headers
        # A signed-in caller is counted as its user, not as its address.
        user = insert_admin(db_url, "limits-admin@rawpost.test")
        signed = client.get("/api/posts", headers=bearer(mint_token(user)))
        body_of(signed, 200)
        assert signed.headers["ratelimit"].startswith('"api";r=2;')


def test_sign_in_is_limited_per_email_whatever_the_address(db_url: str) -> None:
    with limited_client(
        db_url,
        RAWPOST_RATE_LIMIT="off",
        RAWPOST_LOGIN_RATE_LIMIT="2",
        RAWPOST_TRUSTED_PROXIES="127.0.0.1",
    ) as client:
        create_user(client, "ada@example.com")
        tries = [
            client.post(
                "/api/auth/token",
                json={"email": "ada@example.com", "password": "wrong password here"},
                headers={"X-Forwarded-For": "198.51.100.1"},
            ),
            client.post(  # the OAuth2 form counts for the same email, any case
                "/api/auth/token",
                data={"username": "ADA@example.com", "password": "wrong password here"},
                headers={"X-Forwarded-For": "198.51.100.2"},
            ),
        ]
        assert [t.status_code for t in tries] == [401, 401]
        assert tries[1].headers["ratelimit-policy"] == '"login";q=2;w=60'
        assert tries[1].headers["ratelimit"].startswith('"login";r=0;t=')
        third = client.post(
            "/api/auth/token",
            json={"email": "Ada@Example.com", "password": PASSWORD},  # right, but too many
            headers={"X-Forwarded-For": "203.0.113.3"},
        )
        assert_problem(third, 429)
        assert 1 <= int(third.headers["retry-after"]) <= 60
        assert third.headers["ratelimit"].startswith('"login";r=0;t=')
        # Another email is not affected.
        create_user(client, "bob@example.com")
        other = client.post(
            "/api/auth/token", json={"email": "bob@example.com", "password": PASSWORD}
        )
        body_of(other, 200)


def test_both_limits_are_listed_on_a_sign_in(db_url: str) -> None:
    with limited_client(db_url, RAWPOST_RATE_LIMIT="100", RAWPOST_LOGIN_RATE_LIMIT="5") as client:
        response = client.post(
            "/api/auth/token", json={"email": "x@example.com", "password": "wrong password here"}
        )
        assert_problem(response, 401)
        assert response.headers["ratelimit-policy"] == '"api";q=100;w=60, "login";q=5;w=60'
        assert re.fullmatch(r'"api";r=99;t=\d+, "login";r=4;t=\d+', response.headers["ratelimit"])


def test_sign_up_is_limited_per_forwarded_address_from_a_trusted_proxy(db_url: str) -> None:
    with limited_client(
        db_url,
        RAWPOST_RATE_LIMIT="off",
        RAWPOST_SIGNUP_RATE_LIMIT="2",
        RAWPOST_TRUSTED_PROXIES="127.0.0.0/8",
    ) as client:
        one = {"X-Forwarded-For": "198.51.100.1"}
        body_of(_sign_up(client, "a1@example.com", **one), 201)
        created = _sign_up(client, "a2@example.com", **one)
        body_of(created, 201)
        assert created.headers["ratelimit-policy"] == '"signup";q=2;w=3600'
        refused = _sign_up(client, "a3@example.com", **one)
        assert_problem(refused, 429)
        assert 3500 < int(refused.headers["retry-after"]) <= 3600
        # Another client behind the same proxy has its own count.
        body_of(_sign_up(client, "b1@example.com", **{"X-Forwarded-For": "198.51.100.2"}), 201)
        # An admin creating accounts is not counted.
        admin = bearer(mint_token(insert_admin(db_url, "signup-admin@rawpost.test")))
        body_of(_sign_up(client, "a4@example.com", **one, **admin), 201)


def test_a_forged_forwarded_header_from_an_untrusted_peer_is_ignored(db_url: str) -> None:
    with limited_client(
        db_url,
        peer="192.0.2.10",
        RAWPOST_SIGNUP_RATE_LIMIT="2",
        RAWPOST_TRUSTED_PROXIES="127.0.0.1",
    ) as client:
        for n in range(2):
            forged = {"X-Forwarded-For": f"198.51.100.{n}"}
            body_of(_sign_up(client, f"f{n}@example.com", **forged), 201)
        assert_problem(_sign_up(client, "f9@example.com", **{"X-Forwarded-For": "1.1.1.1"}), 429)


def test_off_disables_each_limit(db_url: str) -> None:
    with limited_client(
        db_url,
        RAWPOST_RATE_LIMIT="off",
        RAWPOST_LOGIN_RATE_LIMIT="off",
        RAWPOST_SIGNUP_RATE_LIMIT="1",
    ) as client:
        for _ in range(5):
            response = client.post(
                "/api/auth/token", json={"email": "x@example.com", "password": "wrong password!!"}
            )
            assert_problem(response, 401)
            assert "ratelimit" not in response.headers  # no limit applied to this one
        assert "ratelimit" not in client.get("/api/posts").headers
    with limited_client(db_url) as client:  # TEST_ENV: all three off
        for n in range(4):
            body_of(_sign_up(client, f"o{n}@example.com"), 201)
        assert "ratelimit" not in client.get("/api/posts").headers


def test_openapi_declares_429_on_the_limited_routes(client: Client) -> None:
    schema = body_of(client.get("/schema/openapi.json"), 200)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api"):
                assert "429" in operation["responses"], (method, path)
            else:
                assert "429" not in operation["responses"], (method, path)


def test_refused_tokens_count_against_their_address_so_guessing_is_limited(
    db_url: str,
) -> None:
    with limited_client(db_url, RAWPOST_RATE_LIMIT="3") as client:
        for n, left in enumerate((2, 1, 0)):
            refused = client.get("/api/posts", headers=bearer(f"guess-{n}"))
            assert_problem(refused, 401)
            # Answered inside the request context: a request id and the limit's headers.
            assert refused.headers["x-request-id"]
            assert refused.headers["x-content-type-options"] == "nosniff"
            assert refused.headers["ratelimit"] == f'"api";r={left};t=60'
        # The address is over: the next guess, and an anonymous request, are refused.
        for headers in (bearer("guess-3"), {}):
            over = client.get("/api/posts", headers=headers)
            assert_problem(over, 429)
            assert int(over.headers["retry-after"]) > 0
