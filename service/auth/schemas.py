"""The caller, and the request Structs of the token routes."""

from __future__ import annotations

import uuid
from typing import Annotated, TypedDict

import msgspec
from msgspec import Meta

from service.validation import no_nul

Password = Annotated[
    str,
    Meta(
        min_length=12,
        max_length=128,
        description="12..128 characters, no NUL. Write-only: stored as an Argon2id hash.",
        extra_json_schema={"writeOnly": True},
    ),
]
SignInEmail = Annotated[str, Meta(min_length=1, max_length=254)]
SignInPassword = Annotated[str, Meta(min_length=1, max_length=128)]


class SignIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """JSON sign-in; the OAuth2 password form (`username`, `password`) works too."""

    email: SignInEmail
    password: SignInPassword

    def __post_init__(self) -> None:
        no_nul("email", self.email)
        no_nul("password", self.password)


class Refresh(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


ADMIN = "admin"


class Caller(msgspec.Struct, frozen=True):
    """The signed-in user a request acts for."""

    id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class Viewer(TypedDict):
    """A caller as SQL parameters: rows and fields are filtered inside the statement."""

    caller_id: uuid.UUID | None
    is_admin: bool


def viewer(caller: Caller | None) -> Viewer:
    if caller is None:
        return Viewer(caller_id=None, is_admin=False)
    return Viewer(caller_id=caller.id, is_admin=caller.is_admin)
