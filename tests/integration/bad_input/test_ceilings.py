"""Every input has a ceiling: past it a clear 4xx, and the service keeps serving."""

from __future__ import annotations

from litestar.testing import TestClient

from service.auth.security import MAX_AUTHORIZATION
from service.observability import MAX_QUERY_PARAMETERS
from tests.helpers import assert_problem


def test_a_query_string_with_too_many_parameters_is_a_400(
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    many = "&".join(f"p{i}=1" for i in range(MAX_QUERY_PARAMETERS + 1))
    body = assert_problem(api.get(f"/api/posts?{many}"), 400)
    assert str(MAX_QUERY_PARAMETERS) in body["detail"]
    # Up to the ceiling the route answers as usual (unknown parameters are ignored).
    enough = "&".join(f"p{i}=1" for i in range(MAX_QUERY_PARAMETERS))
    assert api.get(f"/api/posts?{enough}").status_code == 200


def test_an_oversize_authorization_header_is_a_401_before_any_parsing(
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    huge = "Bearer " + "a" * MAX_AUTHORIZATION
    response = api.get("/api/posts", headers={"Authorization": huge})
    body = assert_problem(response, 401)
    assert "over" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.get("/api/posts").status_code == 200


def test_json_nested_past_the_decoder_s_depth_is_a_400(
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    for depth in (1_000, 100_000):
        response = api.post(
            "/api/users",
            content=b"[" * depth + b"]" * depth,
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 400)
    assert api.get("/api/posts").status_code == 200
