"""One function per file in sql/users/; each returns Structs and raises domain errors."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from service.db import Connection
from service.errors import ConflictError, NotFoundError
from service.pagination import Cursor, keyset_args
from service.sql import query
from service.users.schemas import User, UserWithPosts

GET_USER = query("users/get_user")
GET_USER_WITH_POSTS = query("users/get_user_with_posts")
LIST_USERS = query("users/list_users")
LIST_USERS_BY_EMAIL = query("users/list_users_by_email")
INSERT_USER = query("users/insert_user")
UPDATE_USER = query("users/update_user")
DELETE_USER = query("users/delete_user")
RESTORE_USER = query("users/restore_user")

_EMAIL_TAKEN = "email is already used by a live user (emails are compared ignoring case)"


def not_found(user_id: UUID) -> NotFoundError:
    return NotFoundError(f"user {user_id} not found")


async def get_user(conn: Connection, *, user_id: UUID) -> User:
    row = await conn.fetchrow(GET_USER.sql, user_id)
    if row is None:
        raise not_found(user_id)
    return msgspec.convert(row, User)


async def get_user_with_posts(conn: Connection, *, user_id: UUID) -> UserWithPosts:
    row = await conn.fetchrow(GET_USER_WITH_POSTS.sql, user_id)
    if row is None:
        raise not_found(user_id)
    return msgspec.convert(row, UserWithPosts)


async def list_users(
    conn: Connection, *, cursor: Cursor | None, limit: int, email: str | None = None
) -> list[User]:
    """Up to limit + 1 users after `cursor`, newest first; see pagination.split_page."""
    if email is None:
        rows = await conn.fetch(LIST_USERS.sql, *LIST_USERS.args(keyset_args(cursor, limit)))
    else:
        args = {"email": email, **keyset_args(cursor, limit)}
        rows = await conn.fetch(LIST_USERS_BY_EMAIL.sql, *LIST_USERS_BY_EMAIL.args(args))
    return [msgspec.convert(row, User) for row in rows]


async def insert_user(conn: Connection, *, email: str, name: str) -> User:
    try:
        row = await conn.fetchrow(
            INSERT_USER.sql, *INSERT_USER.args({"email": email, "name": name})
        )
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    return msgspec.convert(row, User)


async def update_user(
    conn: Connection, *, user_id: UUID, email: str | None, name: str | None
) -> User:
    args = {"user_id": user_id, "email": email, "name": name}
    try:
        row = await conn.fetchrow(UPDATE_USER.sql, *UPDATE_USER.args(args))
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    if row is None:
        raise not_found(user_id)
    return msgspec.convert(row, User)


async def delete_user(conn: Connection, *, user_id: UUID) -> None:
    if await conn.fetchval(DELETE_USER.sql, user_id) is None:
        raise not_found(user_id)


async def restore_user(conn: Connection, *, user_id: UUID) -> User:
    try:
        row = await conn.fetchrow(RESTORE_USER.sql, user_id)
    except asyncpg.UniqueViolationError:
        raise ConflictError("cannot restore: its email is now used by another live user") from None
    if row is None:
        raise not_found(user_id)
    return msgspec.convert(row, User)
