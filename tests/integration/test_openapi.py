"""The OpenAPI document: 3.1, every contract route, its constraints, and problem responses
as application/problem+json."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, TypeAlias

import msgspec
import pytest

from service.auth.schemas import Refresh, SignIn
from service.posts.schemas import PostCreate, PostPatch
from service.users.schemas import Email, UserCreate, UserPatch
from service.validation import address, trimmed
from tests.helpers import Client

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

Json: TypeAlias = dict[str, Any]

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


# --- exact enough for a fuzzer: what the document admits, the service accepts ----------


def test_every_request_body_refuses_unknown_fields_in_the_document_and_the_code(
    openapi: Json,
) -> None:
    bodies = request_body_components(openapi)
    assert {"UserCreate", "UserPatch", "PostCreate", "PostPatch", "Refresh"} <= bodies
    for name in bodies:
        assert openapi["components"]["schemas"][name]["additionalProperties"] is False, name
    for struct in (UserCreate, UserPatch, PostCreate, PostPatch, Refresh, SignIn):
        assert struct.__struct_config__.forbid_unknown_fields, struct.__name__


def request_body_components(document: Json) -> set[str]:
    names = set()
    for operation in operations(document).values():
        for media in operation.get("requestBody", {}).get("content", {}).values():
            if ref := media["schema"].get("$ref"):
                names.add(ref.rsplit("/", 1)[1])
    return names


# Letters, every kind of whitespace str.strip() trims and \s spells differently, controls,
# NUL, '@' and a character outside the BMP: what trimming and the email rule turn on.
_ALPHABET = "ab@.\x00\x01\x1f\x7f\x85\x9f\xa0\u200b\u2028\u3000\ufeff\t\n\r \U0001f600"


def _samples(count: int, longest: int) -> list[str]:
    rng = random.Random(1176)
    return [
        "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, longest))) for _ in range(count)
    ] + ["x", " x ", "a@b", "a@b\n", "a b@c", " " * 5, "y" * 100, " " + "y" * 100 + " "]


def _accepts(check: Callable[..., object], *args: object, **kwargs: object) -> bool:
    try:
        check(*args, **kwargs)
    except ValueError:
        return False
    return True


def test_name_and_email_patterns_admit_exactly_what_the_service_accepts(openapi: Json) -> None:
    schemas = openapi["components"]["schemas"]
    name_pattern = schemas["UserCreate"]["properties"]["name"]["pattern"]
    assert schemas["UserPatch"]["properties"]["name"]["pattern"] == name_pattern
    for value in _samples(3000, 12) + ["z" * n for n in (99, 100, 101)]:
        admitted = re.search(name_pattern, value) is not None
        accepted = _accepts(trimmed, "name", value, min_length=1, max_length=100)
        assert admitted == accepted, repr(value)

    email = schemas["UserCreate"]["properties"]["email"]
    for value in _samples(3000, 8):
        # The document's pattern as a JSON Schema validator reads it (the whole string:
        # `$` does not match before a final newline there), and the length bounds.
        admitted = (
            re.fullmatch(email["pattern"].removesuffix("$"), value) is not None
            and email["minLength"] <= len(value) <= email["maxLength"]
        )
        accepted = _accepts(msgspec.convert, {"email": value}, _EmailOnly)
        assert admitted == accepted, repr(value)


class _EmailOnly(msgspec.Struct):
    email: Email

    def __post_init__(self) -> None:
        address("email", self.email)


def test_patch_bodies_need_a_change_and_current_password_goes_with_password(
    openapi: Json,
) -> None:
    schemas = openapi["components"]["schemas"]
    for name, fields in (
        ("UserPatch", {"email", "name", "password"}),
        ("PostPatch", {"title", "content", "published"}),
    ):
        assert schemas[name]["minProperties"] == 1
        assert {tuple(branch["required"]) for branch in schemas[name]["anyOf"]} == {
            (field,) for field in fields
        }
    assert schemas["UserPatch"]["dependentRequired"] == {"current_password": ["password"]}


def test_a_user_with_posts_is_also_a_user_so_the_answer_is_any_of_them(openapi: Json) -> None:
    answer = operations(openapi)[("GET", "/api/users/{id}")]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert "oneOf" not in schema
    assert {branch["$ref"].rsplit("/", 1)[1] for branch in schema["anyOf"]} == {
        "User",
        "UserWithPosts",
    }


def test_options_lists_every_method_the_document_has_for_the_path(
    openapi: Json, client: Client
) -> None:
    some_id = "9a4f6c1e-3b8d-4f2a-9c7e-5d1b2a3c4e5f"
    for path, item in openapi["paths"].items():
        documented = {m.upper() for m in item if m in HTTP_METHODS} | {"OPTIONS"}
        response = client.options(re.sub(r"\{[^}]+\}", some_id, path))
        assert response.status_code == 204, (path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == documented, path


def test_the_consistency_token_is_a_header_of_the_reads_and_an_answer_of_the_writes(
    openapi: Json,
) -> None:
    reads = writes = 0
    for path, item in openapi["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method not in HTTP_METHODS or method == "options":
                continue
            if method in ("get", "head"):
                names = [p["name"] for p in operation.get("parameters", [])]
                taken = "Consistency-Token" in names
                assert taken == (not path.startswith("/api/auth")), (method, path)
                reads += taken
            else:
                for status, answer in operation["responses"].items():
                    if status.startswith("2"):
                        assert "Consistency-Token" in answer.get("headers", {}), (method, path)
                        writes += 1
    assert reads >= 5 and writes >= 8
