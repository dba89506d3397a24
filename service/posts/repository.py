"""Posts: call the generated query functions, return curated Structs, raise domain errors.

Who may change a post is decided inside each write statement (the caller's id and role
are parameters): it reports whether the caller was allowed and whether it could see the
post at all, and this module turns that into 403 (a post it can see) or 404 (one it
cannot: no existence oracle for drafts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol
from uuid import UUID

import msgspec

from service.auth.schemas import Caller, viewer
from service.conditional import Versions, changed_since_read
from service.db.statements import Executor
from service.errors import ForbiddenError, NotFoundError, UnprocessableError
from service.generated import posts as q
from service.pagination import Cursor, keyset_args
from service.posts.schemas import Post, post_from


def _not_found(post_id: UUID) -> NotFoundError:
    return NotFoundError(f"post {post_id} not found")


class _Decision(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def visible(self) -> bool: ...
    @property
    def matched(self) -> bool: ...
    @property
    def id(self) -> UUID | None: ...


def _acted(
    row: _Decision | None, post_id: UUID, not_found: NotFoundError, if_match: Versions
) -> None:
    """Raise unless the statement changed the post."""
    if row is None or not row.visible:
        raise not_found
    if not row.allowed:
        raise ForbiddenError("only the post's author or an admin may change it")
    if not row.matched or (row.id is None and if_match is not None):
        # Changed since the caller read it: before this statement, or while it waited
        # for the row's lock (the UPDATE rechecks If-Match on the locked row).
        raise changed_since_read(f"post {post_id}")
    if row.id is None:  # deleted concurrently
        raise not_found


async def get_post(conn: Executor, *, post_id: UUID, caller: Caller | None) -> Post:
    row = await q.get_post(conn, post_id=post_id, **viewer(caller))
    if row is None:
        raise _not_found(post_id)
    return post_from(row)


async def list_posts(
    conn: Executor, *, cursor: Cursor | None, limit: int, published: bool | None
) -> list[Post]:
    """Up to limit + 1 published posts after `cursor`, newest first (drafts: never)."""
    rows = await q.list_posts(conn, published=published, **keyset_args(cursor, limit))
    return [post_from(row) for row in rows]


async def list_user_posts(
    conn: Executor,
    *,
    author_id: UUID,
    caller: Caller | None,
    cursor: Cursor | None,
    limit: int,
    published: bool | None,
) -> list[Post] | None:
    """Up to limit + 1 of one author's posts the caller may see; None when the author is
    not visible."""
    rows = await q.list_user_posts(
        conn,
        author_id=author_id,
        published=published,
        **viewer(caller),
        **keyset_args(cursor, limit),
    )
    if not rows:
        return None
    # An author without posts on this page comes back as one row of NULL post columns;
    # the outer join makes every post column optional, so msgspec checks real rows.
    return [msgspec.convert(row, Post, from_attributes=True) for row in rows if row.id is not None]


def author_for(caller: Caller, author_id: UUID | None) -> UUID:
    """Whose post the caller creates: its own, or anyone's when the caller is an admin."""
    if author_id is not None and author_id != caller.id and not caller.is_admin:
        raise ForbiddenError("only an admin may create a post for another author")
    return caller.id if author_id is None else author_id


def author_missing(author: UUID) -> UnprocessableError:
    return UnprocessableError(f"author {author} does not exist or is deleted")


async def insert_post(
    conn: Executor,
    *,
    caller: Caller,
    author_id: UUID | None,
    title: str,
    content: str,
    published: bool,
) -> Post:
    """A post by the caller, or by any live author when the caller is an admin."""
    author = author_for(caller, author_id)
    post = await insert_one(conn, NewPost(author, title, content, published))
    if post is None:
        raise author_missing(author)
    return post


class NewPost(NamedTuple):
    """A post to create, for an author already allowed (author_for)."""

    author_id: UUID
    title: str
    content: str
    published: bool


async def insert_one(conn: Executor, new: NewPost) -> Post | None:
    """One post for an author already allowed (author_for): None when the author is
    missing or deleted. The statement waits for a lock on the author's row."""
    row = await q.insert_post(
        conn,
        author_id=new.author_id,
        title=new.title,
        content=new.content,
        published=new.published,
    )
    return None if row is None else post_from(row)


async def insert_posts(conn: Executor, new: Sequence[NewPost]) -> list[Post | None]:
    """Many posts in one statement (create_post requests coalesced by
    service/posts/writes.py): per item, its post, or None when its author is missing,
    deleted, or locked by a change in progress (insert_one tells which)."""
    rows = await q.insert_posts(
        conn,
        author_ids=[n.author_id for n in new],
        titles=[n.title for n in new],
        contents=[n.content for n in new],
        published=[n.published for n in new],
    )
    posts: list[Post | None] = [None] * len(new)
    for row in rows:
        posts[row.n - 1] = post_from(row)
    return posts


async def update_post(
    conn: Executor,
    *,
    caller: Caller,
    post_id: UUID,
    title: str | None,
    content: str | None,
    published: bool | None,
    if_match: Versions = None,
) -> Post:
    row = await q.update_post(
        conn,
        post_id=post_id,
        caller_id=caller.id,
        is_admin=caller.is_admin,
        title=title,
        content=content,
        published=published,
        if_match=if_match,
    )
    _acted(row, post_id, _not_found(post_id), if_match)
    return msgspec.convert(row, Post, from_attributes=True)


async def delete_post(
    conn: Executor, *, caller: Caller, post_id: UUID, if_match: Versions = None
) -> None:
    row = await q.delete_post(
        conn, post_id=post_id, caller_id=caller.id, is_admin=caller.is_admin, if_match=if_match
    )
    _acted(row, post_id, _not_found(post_id), if_match)


async def restore_post(
    conn: Executor, *, caller: Caller, post_id: UUID, if_match: Versions = None
) -> Post:
    row = await q.restore_post(
        conn, post_id=post_id, caller_id=caller.id, is_admin=caller.is_admin, if_match=if_match
    )
    missing = NotFoundError(f"post {post_id} not found, or its author is deleted")
    _acted(row, post_id, missing, if_match)
    return msgspec.convert(row, Post, from_attributes=True)
