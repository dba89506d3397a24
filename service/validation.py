"""Checks msgspec's Meta cannot express; raised errors name their field for the 400 body."""

from __future__ import annotations

from typing import TypeVar

from msgspec import UnsetType

T = TypeVar("T")


def given(value: T | UnsetType) -> T | None:
    """A PATCH field's value, or None when the client left it out (SQL keeps the old value)."""
    return None if isinstance(value, UnsetType) else value


def no_nul(field: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it up front with a clear message.
    if "\x00" in value:
        raise ValueError(f"field `{field}` must not contain a NUL character")
    return value


def trimmed(field: str, value: str, *, min_length: int, max_length: int) -> str:
    value = no_nul(field, value).strip()
    if not min_length <= len(value) <= max_length:
        raise ValueError(
            f"field `{field}` must be {min_length}..{max_length} characters after trimming"
        )
    return value
