"""Request and response Structs for users; constraints come from the HTTP contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from service.auth.schemas import Password
from service.posts.schemas import Post
from service.validation import EMAIL, address, no_nul, trimmed

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=EMAIL,
        description="3..254 characters shaped like local@domain, with no whitespace or"
        " control characters; unique among live users ignoring case; stored as given.",
    ),
]
Name = Annotated[
    str,
    Meta(min_length=1, description="1..100 characters after trimming surrounding whitespace."),
]

NAME_MAX = 100


class User(msgspec.Struct, kw_only=True):
    id: UUID
    # Only for the user itself and admins; left out of the response for everybody else.
    email: str | UnsetType = UNSET
    name: str
    created_at: datetime
    updated_at: datetime


class UserWithPosts(User, kw_only=True):
    posts: list[Post]


class UserColumns(Protocol):
    """What a generated row must offer to become a User (checked by mypy, not at run time)."""

    @property
    def id(self) -> UUID: ...
    @property
    def email(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class UserWithPostsColumns(UserColumns, Protocol):
    @property
    def posts(self) -> object: ...


def user_from(row: UserColumns) -> User:
    """Generated row -> API User; a column whose type changes breaks this call in mypy."""
    return User(
        id=row.id,
        email=UNSET if row.email is None else row.email,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def user_with_posts_from(row: UserWithPostsColumns) -> UserWithPosts:
    return UserWithPosts(
        id=row.id,
        email=UNSET if row.email is None else row.email,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        # Built as JSON inside PostgreSQL (see get_user_with_posts.sql); msgspec checks it.
        posts=msgspec.convert(row.posts, list[Post]),
    )


class UserPage(msgspec.Struct, kw_only=True):
    items: list[User]
    next_cursor: str | None


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    name: Name
    password: Password

    def __post_init__(self) -> None:
        address("email", self.email)
        self.name = trimmed("name", self.name, min_length=1, max_length=NAME_MAX)
        no_nul("password", self.password)


class UserPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Any of the fields; those left out keep their value. A new `password` needs the
    `current_password` too, unless an admin sets it."""

    email: Email | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    password: Password | UnsetType = UNSET
    current_password: Annotated[str, Meta(min_length=1, max_length=128)] | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.email is UNSET and self.name is UNSET and self.password is UNSET:
            raise ValueError("give at least one of `email`, `name`, `password`")
        if not isinstance(self.email, UnsetType):
            address("email", self.email)
        if not isinstance(self.name, UnsetType):
            self.name = trimmed("name", self.name, min_length=1, max_length=NAME_MAX)
        if not isinstance(self.password, UnsetType):
            no_nul("password", self.password)
        if self.password is UNSET and self.current_password is not UNSET:
            raise ValueError("field `current_password` goes only with `password`")
