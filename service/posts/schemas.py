"""Request and response Structs for posts; constraints come from the HTTP contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from service.generated.posts import InsertPostsRow, PostRow
from service.validation import no_nul

Title = Annotated[str, Meta(min_length=1, max_length=200, description="1..200 characters.")]
Content = Annotated[str, Meta(max_length=100_000, description="0..100000 characters.")]


class Author(msgspec.Struct, kw_only=True):
    id: UUID
    name: str


class Post(msgspec.Struct, kw_only=True):
    id: UUID
    author_id: UUID
    title: str
    content: str
    published: bool
    created_at: datetime
    updated_at: datetime
    author: Author


def post_from(row: PostRow | InsertPostsRow) -> Post:
    """Generated row -> API Post; a statement whose columns change gets its own row type
    (or changes PostRow), which breaks this call or this body in mypy."""
    return Post(
        id=row.id,
        author_id=row.author_id,
        title=row.title,
        content=row.content,
        published=row.published,
        created_at=row.created_at,
        updated_at=row.updated_at,
        # json_build_object('id', ..., 'name', ...) in the SQL; msgspec checks its shape.
        author=msgspec.convert(row.author, Author),
    )


class PostPage(msgspec.Struct, kw_only=True):
    items: list[Post]
    next_cursor: str | None


class PostCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Left out: the caller. Another author's id: admins only (403). Never null.
    author_id: UUID | UnsetType = UNSET
    title: Title
    content: Content
    published: bool = False

    def __post_init__(self) -> None:
        no_nul("title", self.title)
        no_nul("content", self.content)


class PostPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Any of the fields; those left out keep their value."""

    title: Title | UnsetType = UNSET
    content: Content | UnsetType = UNSET
    published: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.title is UNSET and self.content is UNSET and self.published is UNSET:
            raise ValueError("give at least one of `title`, `content`, `published`")
        if not isinstance(self.title, UnsetType):
            no_nul("title", self.title)
        if not isinstance(self.content, UnsetType):
            no_nul("content", self.content)
