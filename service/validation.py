"""Checks msgspec's Meta cannot express; raised errors name their field for the 400 body."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from litestar.exceptions import ValidationException
from msgspec import UnsetType

T = TypeVar("T")

# The patterns below go into the OpenAPI document, where clients' validators read them
# with ECMA-262 regular expressions and the fuzzer with Python's: spelled out so that both
# agree with what the checks here accept. Python's whitespace (str.isspace, what
# str.strip() trims), which `\s` would spell differently in each engine:
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"
_ADDRESS_PART = rf"[^@{WHITESPACE}\x00-\x1f\x7f-\x9f]+"
EMAIL = rf"^{_ADDRESS_PART}@{_ADDRESS_PART}$"
EMAIL_RE = re.compile(EMAIL)


def given(value: T | UnsetType) -> T | None:
    """A PATCH field's value, or None when the client left it out (SQL keeps the old value)."""
    return None if isinstance(value, UnsetType) else value


def no_nul(field: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it up front with a clear message.
    if "\x00" in value:
        raise ValueError(f"field `{field}` must not contain a NUL character")
    return value


def address(field: str, value: str) -> str:
    # msgspec checks EMAIL with re.search, where `$` also matches before a final newline.
    if EMAIL_RE.fullmatch(value) is None:
        raise ValueError(
            f"field `{field}` must look like local@domain, with no whitespace or control characters"
        )
    return value


def trimmed(field: str, value: str, *, min_length: int, max_length: int) -> str:
    value = no_nul(field, value).strip()
    if not min_length <= len(value) <= max_length:
        raise ValueError(
            f"field `{field}` must be {min_length}..{max_length} characters after trimming"
        )
    return value


def trimmed_pattern(max_length: int) -> str:
    """The strings `trimmed(..., min_length=1, max_length=max_length)` accepts, as a
    pattern for the OpenAPI document."""
    return (
        rf"^[{WHITESPACE}]*[^{WHITESPACE}\x00]"
        rf"(?:[^\x00]{{0,{max_length - 2}}}[^{WHITESPACE}\x00])?[{WHITESPACE}]*$"
    )


_AT_PATH = re.compile(r"^(.*) - at `\$\.?([^`]*)`$")


def strict_json(body: bytes, type_: type[T]) -> T:
    """Decode a request body with no type coercion.

    Litestar validates `data` leniently ("true" and 1 pass as a bool); the contract says a
    wrong type is a 400, so the route decodes the raw body again, strictly, and uses that.
    """
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        message, field = str(exc), "data"  # "data": errors.py finds the field in the text
        if m := _AT_PATH.match(message):
            message, field = m.group(1), m.group(2) or "data"
        raise ValidationException(
            detail="Validation failed", extra=[{"message": message, "key": field}]
        ) from None
    except msgspec.DecodeError as exc:
        # Routes that read only the raw body (the token route) meet malformed JSON here;
        # the others have had Litestar parse it first.
        raise ValidationException(
            detail="Validation failed", extra=[{"message": f"malformed JSON: {exc}", "key": "body"}]
        ) from None
