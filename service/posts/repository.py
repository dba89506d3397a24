"""Posts: call the generated query functions, return curated Structs, raise domain errors."""

from __future__ import annotations

from uuid import UUID

import msgspec

from service.db import Executor
from service.errors import NotFoundError, UnprocessableError
from service.generated import posts as q
from service.pagination import Cursor, keyset_args
from service.posts.schemas import Post, post_from


def _not_found(post_id: UUID) -> NotFoundError:
    return NotFoundError(f"post {post_id} not found")


async def get_post(conn: Executor, *, post_id: UUID) -> Post:
    row = await q.get_post(conn, post_id=post_id)
    if row is None:
        raise _not_found(post_id)
    return post_from(row)


async def list_posts(
    conn: Executor, *, cursor: Cursor | None, limit: int, published: bool | None
) -> list[Post]:
    """Up to limit + 1 visible posts after `cursor`, newest first."""
    rows = await q.list_posts(conn, published=published, **keyset_args(cursor, limit))
    return [post_from(row) for row in rows]


async def list_user_posts(
    conn: Executor,
    *,
    author_id: UUID,
    cursor: Cursor | None,
    limit: int,
    published: bool | None,
) -> list[Post] | None:
    """Up to limit + 1 of one author's visible posts; None when the author is not visible."""
    rows = await q.list_user_posts(
        conn, author_id=author_id, published=published, **keyset_args(cursor, limit)
    )
    if not rows:
        return None
    # An author without posts on this page comes back as one row of NULL post columns;
    # the outer join makes every post column optional, so msgspec checks real rows.
    return [msgspec.convert(row, Post, from_attributes=True) for row in rows if row.id is not None]


async def insert_post(
    conn: Executor, *, author_id: UUID, title: str, content: str, published: bool
) -> Post:
    row = await q.insert_post(
        conn, author_id=author_id, title=title, content=content, published=published
    )
    if row is None:
        raise UnprocessableError(f"author {author_id} does not exist or is deleted")
    return post_from(row)


async def update_post(
    conn: Executor,
    *,
    post_id: UUID,
    title: str | None,
    content: str | None,
    published: bool | None,
) -> Post:
    row = await q.update_post(
        conn, post_id=post_id, title=title, content=content, published=published
    )
    if row is None:
        raise _not_found(post_id)
    return post_from(row)


async def delete_post(conn: Executor, *, post_id: UUID) -> None:
    if await q.delete_post(conn, post_id=post_id) is None:
        raise _not_found(post_id)


async def restore_post(conn: Executor, *, post_id: UUID) -> Post:
    row = await q.restore_post(conn, post_id=post_id)
    if row is None:
        raise NotFoundError(f"post {post_id} not found, or its author is deleted")
    return post_from(row)
