"""One function per file in sql/posts/; each returns Structs and raises domain errors."""

from __future__ import annotations

from uuid import UUID

import msgspec

from service.db import Connection
from service.errors import NotFoundError, UnprocessableError
from service.pagination import Cursor, keyset_args
from service.posts.schemas import Post
from service.sql import query

GET_POST = query("posts/get_post")
LIST_POSTS = query("posts/list_posts")
LIST_USER_POSTS = query("posts/list_user_posts")
INSERT_POST = query("posts/insert_post")
UPDATE_POST = query("posts/update_post")
DELETE_POST = query("posts/delete_post")
RESTORE_POST = query("posts/restore_post")


def _not_found(post_id: UUID) -> NotFoundError:
    return NotFoundError(f"post {post_id} not found")


async def get_post(conn: Connection, *, post_id: UUID) -> Post:
    row = await conn.fetchrow(GET_POST.sql, post_id)
    if row is None:
        raise _not_found(post_id)
    return msgspec.convert(row, Post)


async def list_posts(
    conn: Connection, *, cursor: Cursor | None, limit: int, published: bool | None
) -> list[Post]:
    """Up to limit + 1 visible posts after `cursor`, newest first."""
    args = {"published": published, **keyset_args(cursor, limit)}
    rows = await conn.fetch(LIST_POSTS.sql, *LIST_POSTS.args(args))
    return [msgspec.convert(row, Post) for row in rows]


async def list_user_posts(
    conn: Connection,
    *,
    author_id: UUID,
    cursor: Cursor | None,
    limit: int,
    published: bool | None,
) -> list[Post] | None:
    """Up to limit + 1 of one author's visible posts; None when the author is not visible."""
    args = {"author_id": author_id, "published": published, **keyset_args(cursor, limit)}
    rows = await conn.fetch(LIST_USER_POSTS.sql, *LIST_USER_POSTS.args(args))
    if not rows:
        return None
    return [msgspec.convert(row, Post) for row in rows if row["id"] is not None]


async def insert_post(
    conn: Connection, *, author_id: UUID, title: str, content: str, published: bool
) -> Post:
    args = {"author_id": author_id, "title": title, "content": content, "published": published}
    row = await conn.fetchrow(INSERT_POST.sql, *INSERT_POST.args(args))
    if row is None:
        raise UnprocessableError(f"author {author_id} does not exist or is deleted")
    return msgspec.convert(row, Post)


async def update_post(
    conn: Connection,
    *,
    post_id: UUID,
    title: str | None,
    content: str | None,
    published: bool | None,
) -> Post:
    args = {"post_id": post_id, "title": title, "content": content, "published": published}
    row = await conn.fetchrow(UPDATE_POST.sql, *UPDATE_POST.args(args))
    if row is None:
        raise _not_found(post_id)
    return msgspec.convert(row, Post)


async def delete_post(conn: Connection, *, post_id: UUID) -> None:
    if await conn.fetchval(DELETE_POST.sql, post_id) is None:
        raise _not_found(post_id)


async def restore_post(conn: Connection, *, post_id: UUID) -> Post:
    row = await conn.fetchrow(RESTORE_POST.sql, post_id)
    if row is None:
        raise NotFoundError(f"post {post_id} not found, or its author is deleted")
    return msgspec.convert(row, Post)
