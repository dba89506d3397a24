"""Checks the auth tests share: a Bearer 401, and a user's stored row."""

from __future__ import annotations

from typing import Any

from tests.helpers import DB, assert_problem


def assert_401(response: Any) -> dict[str, Any]:
    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return problem


def user_row(db: DB, user_id: str) -> tuple[object, ...] | None:
    return db.execute(
        "SELECT email, name, password_hash, role, updated_at, deleted_at FROM users WHERE id = %s",
        (user_id,),
    ).fetchone()
