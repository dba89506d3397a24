"""Keyset pagination: opaque base64url cursors over (created_at, id), newest first."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Protocol, TypedDict, TypeVar
from uuid import UUID

import msgspec
from litestar.params import Parameter

from service.errors import BadRequestError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Limit = Annotated[
    int,
    Parameter(
        ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})."
    ),
]
CursorParam = Annotated[
    str | None,
    Parameter(
        max_length=200,
        description="Opaque `next_cursor` from the previous page; omit for the first page.",
    ),
]


class Cursor(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The last row of a page: the next page starts strictly after it."""

    created_at: datetime
    id: UUID


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> UUID: ...


K = TypeVar("K", bound=Keyed)


def encode_cursor(row: Keyed) -> str:
    raw = msgspec.json.encode(Cursor(created_at=row.created_at, id=row.id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(value: str | None) -> Cursor | None:
    """Parse a client's cursor; anything forged or corrupt is a 400."""
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        cursor = msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequestError("cursor is not valid; use next_cursor from a previous page") from None
    if cursor.created_at.tzinfo is None:
        raise BadRequestError("cursor is not valid; use next_cursor from a previous page")
    return cursor


class Keyset(TypedDict):
    """The keyword arguments every list statement takes (see sql/*/list_*.sql)."""

    before_created_at: datetime | None
    before_id: UUID | None
    limit: int


def keyset_args(cursor: Cursor | None, limit: int) -> Keyset:
    """Keyset arguments for the page after `cursor`; one extra row tells if more follow."""
    return {
        "before_created_at": cursor.created_at if cursor else None,
        "before_id": cursor.id if cursor else None,
        "limit": limit + 1,
    }


def split_page(rows: list[K], limit: int) -> tuple[list[K], str | None]:
    """Cut the extra row off; return the page and the cursor to the next one (or None)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None
