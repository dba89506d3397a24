"""Users: call the generated query functions, return curated Structs, raise domain errors."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.db import Executor
from service.errors import ConflictError, NotFoundError
from service.generated import users as q
from service.pagination import Cursor, keyset_args
from service.users.schemas import User, UserWithPosts, user_from, user_with_posts_from

_EMAIL_TAKEN = "email is already used by a live user (emails are compared ignoring case)"


def not_found(user_id: UUID) -> NotFoundError:
    return NotFoundError(f"user {user_id} not found")


async def get_user(conn: Executor, *, user_id: UUID) -> User:
    row = await q.get_user(conn, user_id=user_id)
    if row is None:
        raise not_found(user_id)
    return user_from(row)


async def get_user_with_posts(conn: Executor, *, user_id: UUID) -> UserWithPosts:
    row = await q.get_user_with_posts(conn, user_id=user_id)
    if row is None:
        raise not_found(user_id)
    return user_with_posts_from(row)


async def list_users(
    conn: Executor, *, cursor: Cursor | None, limit: int, email: str | None = None
) -> list[User]:
    """Up to limit + 1 users after `cursor`, newest first; see pagination.split_page."""
    keyset = keyset_args(cursor, limit)
    if email is None:
        return [user_from(row) for row in await q.list_users(conn, **keyset)]
    return [user_from(row) for row in await q.list_users_by_email(conn, email=email, **keyset)]


async def insert_user(conn: Executor, *, email: str, name: str) -> User:
    try:
        row = await q.insert_user(conn, email=email, name=name)
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    assert row is not None  # INSERT ... VALUES ... RETURNING always returns its row
    return user_from(row)


async def update_user(
    conn: Executor, *, user_id: UUID, email: str | None, name: str | None
) -> User:
    try:
        row = await q.update_user(conn, user_id=user_id, email=email, name=name)
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    if row is None:
        raise not_found(user_id)
    return user_from(row)


async def delete_user(conn: Executor, *, user_id: UUID) -> None:
    if await q.delete_user(conn, user_id=user_id) is None:
        raise not_found(user_id)


async def restore_user(conn: Executor, *, user_id: UUID) -> User:
    try:
        row = await q.restore_user(conn, user_id=user_id)
    except asyncpg.UniqueViolationError:
        raise ConflictError("cannot restore: its email is now used by another live user") from None
    if row is None:
        raise not_found(user_id)
    return user_from(row)
