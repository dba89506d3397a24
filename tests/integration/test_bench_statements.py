"""Each benchmark request runs, through the app, the statement its ceiling measures."""

from __future__ import annotations

import logging

import pytest
from litestar.testing import TestClient

from rawpost_devtools.bench import BENCHMARKS
from tests.helpers import PASSWORD


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "query", "?") for r in caplog.records if r.name == "rawpost.sql"]


def test_each_benchmark_request_runs_the_statement_its_ceiling_measures(
    client: TestClient,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = client.post(
        "/api/users", json={"email": "a@example.com", "name": "A", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    post = {"author_id": user_id, "title": "t", "content": "c", "published": True}
    assert client.post("/api/posts", json=post).status_code == 201
    requests = {
        "user_by_id": ("GET", f"/api/users/{user_id}", None),
        "posts_page": ("GET", "/api/posts?limit=20", None),
        "user_with_posts": ("GET", f"/api/users/{user_id}?include=posts", None),
        "create_post": (
            "POST",
            "/api/posts",
            {"title": "rawpost bench post", "content": "c", "published": True},
        ),
    }
    assert set(requests) == {b.name for b in BENCHMARKS}
    for b in BENCHMARKS:
        method, path, body = requests[b.name]
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="rawpost.sql"):
            response = client.request(method, path, json=body)
        assert response.status_code in (200, 201), response.text
        assert b.query in _statements(caplog), (b.name, _statements(caplog))
