"""Users: call the generated query functions, return curated Structs, raise domain errors."""

from __future__ import annotations

import uuid
from typing import Protocol, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from service.auth.callers import Callers
from service.auth.passwords import Passwords
from service.auth.schemas import Caller, viewer
from service.auth.security import require_admin
from service.conditional import Versions, changed_since_read
from service.db.statements import Executor
from service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from service.generated import auth as auth_q
from service.generated import users as q
from service.pagination import Cursor, keyset_args
from service.users.schemas import User, UserPatch, UserWithPosts, user_from, user_with_posts_from
from service.validation import given

_EMAIL_TAKEN = "email is already used by a live user (emails are compared ignoring case)"


def not_found(user_id: UUID) -> NotFoundError:
    return NotFoundError(f"user {user_id} not found")


async def get_user(conn: Executor, *, user_id: UUID, caller: Caller | None) -> User:
    row = await q.get_user(conn, user_id=user_id, **viewer(caller))
    if row is None:
        raise not_found(user_id)
    return user_from(row)


async def get_user_with_posts(
    conn: Executor, *, user_id: UUID, caller: Caller | None
) -> UserWithPosts:
    row = await q.get_user_with_posts(conn, user_id=user_id, **viewer(caller))
    if row is None:
        raise not_found(user_id)
    return user_with_posts_from(row)


async def list_users(
    conn: Executor,
    *,
    cursor: Cursor | None,
    limit: int,
    caller: Caller | None,
    email: str | None = None,
) -> list[User]:
    """Up to limit + 1 users after `cursor`, newest first; see pagination.split_page.
    Looking a user up by email is for admins only (401 anonymous, 403 otherwise)."""
    keyset = keyset_args(cursor, limit)
    if email is None:
        return [user_from(row) for row in await q.list_users(conn, **viewer(caller), **keyset)]
    require_admin(caller, "a look-up by email")
    return [user_from(row) for row in await q.list_users_by_email(conn, email=email, **keyset)]


async def insert_user(conn: Executor, *, email: str, name: str, password_hash: str) -> User:
    try:
        row = await q.insert_user(conn, email=email, name=name, password_hash=password_hash)
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    assert row is not None  # INSERT ... VALUES ... RETURNING always returns its row
    return user_from(row)


async def update_user(
    conn: Executor,
    *,
    user_id: UUID,
    patch: UserPatch,
    caller: Caller,
    passwords: Passwords,
    session_id: uuid.UUID | None,
    if_match: Versions = None,
) -> User:
    """Change a user (the route's guard let only the user itself or an admin through).

    A new password needs the current one, unless an admin sets it; it revokes every
    refresh token of the user except those of the caller's own login.
    """
    password_hash = None
    if (password := given(patch.password)) is not None:
        if not caller.is_admin:
            current = given(patch.current_password)
            if current is None:
                # Not a 400: the same body is valid from an admin, so it is a matter of
                # who asks (the OpenAPI document cannot make the field depend on the caller).
                raise ForbiddenError(
                    "a new password needs `current_password`, unless an admin sets it"
                )
            row = await auth_q.get_credentials(conn, email=None, user_id=user_id)
            ok, _ = await passwords.verify(current, row.password_hash if row else None)
            if row is None:
                raise not_found(user_id)
            if not ok:
                raise ForbiddenError("current_password is wrong")
        password_hash = await passwords.hash(password)
    try:
        updated = await q.update_user(
            conn,
            user_id=user_id,
            email=given(patch.email),
            name=given(patch.name),
            password_hash=password_hash,
            keep_family=session_id if caller.id == user_id else None,
            if_match=if_match,
        )
    except asyncpg.UniqueViolationError:
        raise ConflictError(_EMAIL_TAKEN) from None
    # After _acted the row has its columns (they are NULL only when nothing changed).
    return msgspec.convert(_acted(updated, user_id, if_match), User, from_attributes=True)


class _Decision(Protocol):
    @property
    def matched(self) -> bool: ...
    @property
    def id(self) -> UUID | None: ...


D = TypeVar("D", bound=_Decision)


def _acted(row: D | None, user_id: UUID, if_match: Versions) -> D:
    """The statement's row when it changed the user; 404 or 412 otherwise."""
    if row is None:
        raise not_found(user_id)
    if not row.matched or (row.id is None and if_match is not None):
        # Changed since the caller read it: before this statement, or while it waited
        # for the row's lock (the UPDATE rechecks If-Match on the locked row).
        raise changed_since_read(f"user {user_id}")
    if row.id is None:  # deleted concurrently
        raise not_found(user_id)
    return row


async def delete_user(
    conn: Executor, callers: Callers, *, user_id: UUID, if_match: Versions = None
) -> None:
    """Soft-delete; the trigger on users revokes every token of the user (docs/security.md)."""
    _acted(await q.delete_user(conn, user_id=user_id, if_match=if_match), user_id, if_match)
    callers.forget(user_id)  # here at once; other workers at their next poll


async def restore_user(conn: Executor, *, user_id: UUID, if_match: Versions = None) -> User:
    try:
        row = await q.restore_user(conn, user_id=user_id, if_match=if_match)
    except asyncpg.UniqueViolationError:
        raise ConflictError("cannot restore: its email is now used by another live user") from None
    return msgspec.convert(_acted(row, user_id, if_match), User, from_attributes=True)


async def update_user_role(conn: Executor, *, email: str, role: str) -> UUID | None:
    """Operators only (`rawpost users promote|demote`); the id, or None for no live user."""
    return await q.update_user_role(conn, email=email, role=role)


async def update_user_password(conn: Executor, *, email: str, password_hash: str) -> UUID | None:
    """Operators only (`rawpost users set-password`); revokes the user's refresh tokens."""
    return await q.update_user_password(conn, email=email, password_hash=password_hash)
