"""Safe defaults: CORS closed unless origins are configured, and only the allowed hosts."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import Settings
from tests.helpers import assert_problem

PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def open_cors(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    changed = msgspec.structs.replace(settings, cors_origins="https://app.example")
    with TestClient(app=create_app(changed)) as client:
        yield client


def test_cors_is_closed_by_default(api: TestClient) -> None:  # type: ignore[type-arg]
    preflight = api.options("/api/posts", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    answered = api.get("/api/posts", headers={"Origin": "https://app.example"})
    assert answered.status_code == 200
    assert not [k for k in answered.headers if k.startswith("access-control-")]


def test_an_allowed_origin_may_call_and_read_the_headers_clients_need(
    open_cors: TestClient,  # type: ignore[type-arg]
) -> None:
    preflight = open_cors.options("/api/posts", headers=PREFLIGHT)
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "idempotency-key" in allowed
    answered = open_cors.get("/api/posts", headers={"Origin": "https://app.example"})
    assert answered.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {
        h.strip().lower() for h in answered.headers["access-control-expose-headers"].split(",")
    }
    assert {"location", "etag", "retry-after", "ratelimit", "ratelimit-policy"} <= exposed
    # Litestar's CORS sets `Vary: Origin`; the answer still varies by Authorization too.
    varies = {v.strip().lower() for v in answered.headers["vary"].split(",")}
    assert varies == {"origin", "authorization"}
    assert answered.headers.get_list("vary") == [answered.headers["vary"]]  # one header


def test_another_origin_gets_no_cors_grant(open_cors: TestClient) -> None:  # type: ignore[type-arg]
    preflight = open_cors.options(
        "/api/posts", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert preflight.headers.get("access-control-allow-origin") != "https://evil.example"
    answered = open_cors.get("/api/posts", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answered.headers


def test_a_host_not_in_the_allowed_list_is_refused(settings: Settings) -> None:
    changed = msgspec.structs.replace(settings, allowed_hosts="api.example, *.rawpost.test")
    with TestClient(app=create_app(changed), base_url="http://api.example") as client:
        for host in ("api.example", "API.example:8000", "eu.rawpost.test", "a.b.rawpost.test:80"):
            assert client.get("/api/posts", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "rawpost.test", "api.example.evil", "xrawpost.test"):
            refused = client.get("/api/posts", headers={"Host": host})
            problem = assert_problem(refused, 400)
            assert "RAWPOST_ALLOWED_HOSTS" in problem["detail"], host
            assert "sql" not in refused.text.lower()
