"""Keyset pagination: opaque base64url cursors over (created_at, id), newest first."""

from __future__ import annotations

import base64
import binascii
import struct
from datetime import UTC, datetime, timedelta
from typing import Annotated, NamedTuple, Protocol, TypedDict, TypeVar
from uuid import UUID

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
# A cursor is the last row's key in 24 bytes, base64url without padding: created_at as
# microseconds since the Unix epoch (signed, big-endian), then the id. Every string of this
# shape decodes to a position in the list, so the OpenAPI pattern says exactly which
# cursors are accepted; any other string is a 400.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{32}$"
_KEY = struct.Struct(">q16s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

CursorParam = Annotated[
    str | None,
    Parameter(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` from the previous page; omit for the first page. Any 32"
        " base64url characters name a position in the list (one made up only starts the page"
        " elsewhere); anything else is a 400.",
    ),
]


class Cursor(NamedTuple):
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
    micros = (row.created_at - _EPOCH) // _MICROSECOND
    raw = _KEY.pack(micros, row.id.bytes)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(value: str | None) -> Cursor | None:
    """Parse a client's cursor (its shape was checked against CURSOR_PATTERN)."""
    if value is None:
        return None
    try:
        micros, id_bytes = _KEY.unpack(base64.urlsafe_b64decode(value + "="))
    except (binascii.Error, ValueError, struct.error):
        raise BadRequestError("cursor is not valid; use next_cursor from a previous page") from None
    # Past what a datetime holds: clamp; no row is older than year 1 or newer than 9999.
    try:
        created_at = _EPOCH + micros * _MICROSECOND
    except OverflowError:
        created_at = _FIRST if micros < 0 else _LAST
    return Cursor(created_at, UUID(bytes=id_bytes))


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
