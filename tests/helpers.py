"""Assertions and aliases shared by the HTTP tests."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeAlias

import httpx
import psycopg
from litestar import Litestar
from litestar.testing import TestClient

Client: TypeAlias = TestClient[Litestar]
DB: TypeAlias = psycopg.Connection[tuple[object, ...]]

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def body_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The JSON body, after checking the status."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


def parse_ts(value: str) -> datetime:
    """An RFC 3339 UTC timestamp ending in `Z`, parsed."""
    assert RFC3339_UTC.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
