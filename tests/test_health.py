"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from yoyo import get_backend, read_migrations

from service import migrate
from service.app import create_app
from service.config import Settings, load_settings
from service.resources import MIGRATIONS_DIR
from tests.helpers import SCRAPER, TEST_ENV

Client: TypeAlias = TestClient[Litestar]
Json: TypeAlias = dict[str, Any]

MIGRATION_IDS = migrate.migration_ids()


def _app_settings(database_url: str) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={"database_url": database_url, "pool_min_size": 1, "startup_timeout": 5},
    )


def _drop_database(pg_admin_url: str, database_url: str) -> None:
    """Remove the database under the running app: its backends die, reconnects find nothing."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def empty_database(pg_admin_url: str) -> Iterator[str]:
    """A database with no schema at all, dropped afterwards."""
    name = f"rawpost_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(pg_admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def roll_back_newest_migration(database_url: str) -> str:
    """Undo the newest applied migration with yoyo; return its id."""
    backend = get_backend(migrate.yoyo_url(database_url))
    try:
        newest = backend.to_rollback(read_migrations(str(MIGRATIONS_DIR)))[:1]
        with backend.lock():
            backend.rollback_migrations(newest)
        return str(newest[0].id)
    finally:
        backend.connection.close()


def assert_retry_after(headers: Any) -> None:
    value = headers.get("retry-after", "")
    assert value.isdigit() and int(value) > 0, f"Retry-After: {value!r}"


def assert_pool_figures(pool: Json, settings: Settings) -> None:
    assert set(pool) >= {"size", "idle", "in_use", "min_size", "max_size"}, pool
    assert pool["min_size"] == settings.pool_min_size
    assert pool["max_size"] == settings.pool_max_size
    assert 0 <= pool["in_use"] <= pool["size"] <= pool["max_size"]
    assert pool["idle"] + pool["in_use"] == pool["size"]


# --- liveness ----------------------------------------------------------------------------


def test_live_is_200_and_still_answers_after_the_database_is_dropped(
    client: Client, db_url: str, pg_admin_url: str
) -> None:
    assert client.get("/health/live").status_code == 200
    _drop_database(pg_admin_url, db_url)
    # The app really has lost its database (readiness cannot be 200 any more)...
    assert client.get("/health/ready").status_code != 200
    # ...and liveness neither notices nor waits.
    for _ in range(5):
        started = time.monotonic()
        response = client.get("/health/live")
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok"}
        assert elapsed < 0.5, f"/health/live took {elapsed:.3f} s without a database"


# --- readiness ---------------------------------------------------------------------------


def test_ready_is_200_with_pool_figures_when_database_and_schema_are_current(
    client: Client, settings: Settings
) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["pending_migrations"] == []
    assert_pool_figures(body["pool"], settings)
    assert body["pool"]["size"] >= 1


def test_ready_is_503_with_retry_after_naming_the_migration_rolled_back(db_url: str) -> None:
    """The app still starts on a schema one migration behind, and says what is missing."""
    rolled_back = roll_back_newest_migration(db_url)
    assert rolled_back == MIGRATION_IDS[-1]
    settings = _app_settings(db_url)
    with TestClient(app=create_app(settings)) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503, response.text
        assert_retry_after(response.headers)
        body = response.json()
        assert body["pending_migrations"] == [rolled_back]
        assert body["status"] != "ready"
        assert_pool_figures(body["pool"], settings)
        assert client.get("/health/live").status_code == 200


def test_ready_is_503_naming_every_migration_on_an_empty_database(pg_admin_url: str) -> None:
    with empty_database(pg_admin_url) as url:
        settings = _app_settings(url)
        with TestClient(app=create_app(settings)) as client:
            response = client.get("/health/ready")
            assert response.status_code == 503, response.text
            assert_retry_after(response.headers)
            assert response.json()["pending_migrations"] == MIGRATION_IDS
            assert_pool_figures(response.json()["pool"], settings)
            assert client.get("/health/live").status_code == 200


def test_ready_is_503_with_retry_after_when_the_database_is_gone(
    client: Client, db_url: str, pg_admin_url: str, settings: Settings
) -> None:
    assert client.get("/health/ready").status_code == 200
    _drop_database(pg_admin_url, db_url)
    started = time.monotonic()
    response = client.get("/health/ready")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert_retry_after(response.headers)
    assert "traceback" not in response.text.lower()
    assert elapsed < settings.ready_timeout + 1.0
    assert_pool_figures(response.json()["pool"], settings)


# --- metrics -----------------------------------------------------------------------------


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_is_prometheus_text_with_request_and_pool_metrics(
    client: Client, settings: Settings
) -> None:
    assert client.get("/api/users").status_code == 200
    for _ in range(2):
        assert client.get(f"/api/users/{uuid.uuid4()}").status_code == 404
    response = client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in response.headers["content-type"]
    families = _families(response.text)  # raises on anything that is not Prometheus text

    pool = {s.labels["state"]: s.value for s in families["rawpost_pool_connections"].samples}
    assert families["rawpost_pool_connections"].type == "gauge"
    assert set(pool) >= {"idle", "in_use", "size", "max"}
    assert pool["max"] == settings.pool_max_size
    assert pool["idle"] + pool["in_use"] == pool["size"]

    requests = families["rawpost_requests"]
    assert requests.type == "counter"
    by_route = {
        (s.labels.get("method"), s.labels.get("path"), s.labels.get("status_code")): s.value
        for s in requests.samples
        if s.name == "rawpost_requests_total"
    }
    assert by_route.get(("GET", "/api/users", "200"), 0) >= 1, sorted(by_route)
    user_route = [k for k in by_route if k[1] and k[1].startswith("/api/users/{") and k[2] == "404"]
    assert user_route and by_route[user_route[0]] >= 2, sorted(by_route)
    assert "rawpost_request_duration_seconds" in families
    # Paths are grouped by route: ids never become label values (unbounded cardinality).
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
    assert not any(uuid_like.search(s.labels.get("path", "")) for s in requests.samples)


def test_metrics_content_type_is_one_valid_media_type(client: Client) -> None:
    """Prometheus 3 fails the scrape when Content-Type does not parse (e.g. a repeated param)."""
    content_type = client.get("/metrics", headers=SCRAPER).headers["content-type"]
    media_type, *params = (part.strip() for part in content_type.split(";"))
    assert media_type == "text/plain"
    names = [p.split("=", 1)[0].strip().lower() for p in params]
    assert len(names) == len(set(names)), f"repeated parameter in {content_type!r}"
    assert "version=0.0.4" in params


# --- OpenAPI -----------------------------------------------------------------------------

CONTRACT_ROUTES: dict[tuple[str, str], set[int]] = {
    # (method, path with ids as {id}): the problem statuses the route can answer with
    # (contract v2: 401 wherever a token is read, 403 where a known caller may be refused).
    ("POST", "/api/users"): {400, 401, 409, 413, 503},
    ("GET", "/api/users"): {400, 401, 403, 503},
    ("GET", "/api/users/me"): {400, 401, 503},
    ("GET", "/api/users/{id}"): {400, 401, 404, 503},
    ("PATCH", "/api/users/{id}"): {400, 401, 403, 404, 409, 413, 503},
    ("DELETE", "/api/users/{id}"): {400, 401, 403, 404, 503},
    ("POST", "/api/users/{id}/restore"): {400, 401, 403, 404, 409, 503},
    ("GET", "/api/users/{id}/posts"): {400, 401, 404, 503},
    ("POST", "/api/posts"): {400, 401, 403, 413, 422, 503},
    ("GET", "/api/posts"): {400, 401, 503},
    ("GET", "/api/posts/{id}"): {400, 401, 404, 503},
    ("PATCH", "/api/posts/{id}"): {400, 401, 403, 404, 413, 503},
    ("DELETE", "/api/posts/{id}"): {400, 401, 403, 404, 503},
    ("POST", "/api/posts/{id}/restore"): {400, 401, 403, 404, 503},
    ("POST", "/api/auth/token"): {400, 401, 413, 503},
    ("POST", "/api/auth/refresh"): {400, 401, 413, 503},
    ("POST", "/api/auth/logout"): {400, 401, 503},
    ("GET", "/health/live"): set(),
    ("GET", "/health/ready"): set(),
    ("GET", "/metrics"): {401, 404},
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture
def openapi(client: Client) -> Json:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document: Json = response.json()
    return document


def operations(document: Json) -> dict[tuple[str, str], Json]:
    found: dict[tuple[str, str], Json] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                found[(method.upper(), re.sub(r"\{[^}]+\}", "{id}", path))] = operation
    return found


def resolve(document: Json, schema: Json) -> Json:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def constraint(schema: Json, key: str) -> Any:
    """`key` on a property schema, or on any branch of its oneOf/anyOf."""
    if key in schema:
        return schema[key]
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        if key in branch:
            return branch[key]
    return None


def request_schema(document: Json, operation: Json) -> Json:
    content = operation["requestBody"]["content"]
    assert "application/json" in content, content
    return resolve(document, content["application/json"]["schema"])


def test_openapi_is_3_1_and_lists_every_contract_route(openapi: Json) -> None:
    assert openapi["openapi"].startswith("3.1")
    assert openapi["info"]["title"]
    missing = set(CONTRACT_ROUTES) - set(operations(openapi))
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


def test_openapi_request_bodies_carry_the_contract_constraints(openapi: Json) -> None:
    ops = operations(openapi)
    create_user = request_schema(openapi, ops[("POST", "/api/users")])
    assert set(create_user["required"]) == {"email", "name", "password"}
    email = create_user["properties"]["email"]
    assert (constraint(email, "minLength"), constraint(email, "maxLength")) == (3, 254)
    assert constraint(email, "pattern") or constraint(email, "format") == "email"
    assert constraint(create_user["properties"]["name"], "minLength") == 1

    update_user = request_schema(openapi, ops[("PATCH", "/api/users/{id}")])
    assert constraint(update_user["properties"]["email"], "maxLength") == 254
    assert not update_user.get("required")

    create_post = request_schema(openapi, ops[("POST", "/api/posts")])
    # v2: author_id is optional (left out, the post is the caller's).
    assert set(create_post["required"]) == {"title", "content"}
    props = create_post["properties"]
    assert constraint(props["author_id"], "format") == "uuid"
    assert (constraint(props["title"], "minLength"), constraint(props["title"], "maxLength")) == (
        1,
        200,
    )
    assert constraint(props["content"], "maxLength") == 100_000
    assert constraint(props["published"], "type") == "boolean"
    assert props["published"].get("default") is False

    update_post = request_schema(openapi, ops[("PATCH", "/api/posts/{id}")])
    assert constraint(update_post["properties"]["title"], "maxLength") == 200
    assert constraint(update_post["properties"]["content"], "maxLength") == 100_000
    assert not update_post.get("required")

    # Unknown fields are rejected: said by the schema or, failing that, by the description.
    said_in_prose = re.search(
        r"unknown fields?[^.]*\b(rejected|400)", openapi["info"].get("description", ""), re.I
    )
    for schema in (create_user, update_user, create_post, update_post):
        assert schema.get("additionalProperties") is False or said_in_prose, schema["title"]


def test_openapi_documents_each_routes_problem_responses_as_problem_json(openapi: Json) -> None:
    ops = operations(openapi)
    for route, statuses in CONTRACT_ROUTES.items():
        responses = ops[route]["responses"]
        for status in statuses:
            documented = responses.get(str(status))
            assert documented, f"{route} does not document {status}"
            content = documented.get("content", {})
            assert "application/problem+json" in content, f"{route} {status}: {content}"
            problem = resolve(openapi, content["application/problem+json"]["schema"])
            assert set(problem["properties"]) >= {"type", "title", "status", "detail", "errors"}
            assert set(problem["required"]) >= {"type", "title", "status", "detail"}
            if status == 503:
                said = "Retry-After" in documented.get("description", "") or any(
                    h.lower() == "retry-after" for h in documented.get("headers", {})
                )
                assert said, f"{route} 503 does not mention Retry-After"


def test_openapi_documents_ready_503_with_retry_after(openapi: Json) -> None:
    responses = operations(openapi)[("GET", "/health/ready")]["responses"]
    assert "200" in responses
    assert "503" in responses, f"/health/ready documents only {sorted(responses)}"
    documented = responses["503"]
    said = "Retry-After" in documented.get("description", "") or any(
        h.lower() == "retry-after" for h in documented.get("headers", {})
    )
    assert said


def test_openapi_documents_path_and_query_parameter_constraints(openapi: Json) -> None:
    ops = operations(openapi)
    for route, operation in ops.items():
        params = {p["name"]: p for p in operation.get("parameters", [])}
        for name, param in params.items():
            if param["in"] == "path":
                assert constraint(param["schema"], "format") == "uuid", (route, name)
        if "limit" in params:
            limit = params["limit"]["schema"]
            assert constraint(limit, "minimum") == 1, route
            assert constraint(limit, "maximum") == 100, route
            assert limit.get("default") == 20, route
    author = {p["name"]: p for p in ops[("GET", "/api/posts")]["parameters"]}["author_id"]
    assert constraint(author["schema"], "format") == "uuid"
    published = {p["name"]: p for p in ops[("GET", "/api/posts")]["parameters"]}["published"]
    assert constraint(published["schema"], "type") == "boolean"


def test_metrics_are_served_only_to_the_scraper_with_the_token(client: Client) -> None:
    assert client.get("/metrics", headers=SCRAPER).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-the-right-length"}):
        anonymous = client.get("/metrics", headers=headers)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert "rawpost_requests_total" not in anonymous.text
    # A user's access token (the client's own, an admin's) is not the scraper's token.
    assert client.get("/metrics").status_code == 401


def test_metrics_are_not_served_at_all_without_a_token_setting(db_url: str) -> None:
    settings = load_settings(
        environ={"RAWPOST_JWT_SECRET": TEST_ENV["RAWPOST_JWT_SECRET"]},
        overrides={"database_url": db_url, "pool_min_size": 1},
    )
    with TestClient(app=create_app(settings)) as bare:
        response = bare.get("/metrics", headers=SCRAPER)
        assert response.status_code == 404
        assert "RAWPOST_METRICS_TOKEN" in response.json()["detail"]
