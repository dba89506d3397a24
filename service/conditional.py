"""Conditional requests (RFC 9110, section 13): an ETag on every single-resource answer,
If-None-Match on reads (304), If-Match on writes (412), and optionally 428 without it.

A tag is `"<version>-<digest>"`. The version is the resource's `updated_at` in
microseconds since 1970, in hex: every write statement moves `updated_at` strictly
forward (`GREATEST(now(), updated_at + 1 microsecond)`), so it is a version number of the
row that survives replicas, dumps and restores (unlike `xmin`). The digest is 48 bits of
BLAKE2b over the answer's body, so whatever else the representation holds gives another
tag: an email shown only to its owner and admins, the author's name in a post, a user's
posts under `?include=posts`.

If-Match is decided inside the write statement: the versions of its strong tags go to the
SQL as `if_match` and are compared with `updated_at` on the locked row, so of two writes
that read the same version, exactly one wins. Only the version is compared there: a post
whose author was renamed since is still the post the client read.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from service.errors import PreconditionFailedError, PreconditionRequiredError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        max_length=2000,
        description="Write only if the resource is still the one read: one or more `ETag`"
        " values from earlier answers, or `*` (it exists). Otherwise 412, and nothing"
        " changes. Required (428 without it) when RAWPOST_REQUIRE_IF_MATCH is on.",
    ),
]
# Read from the raw headers by tagged(), not declared as a handler parameter: Litestar's
# header parameter costs a parse of every header on each read (about 3 % of user_by_id's
# CPU in a profile). service/openapi.py documents it.
IF_NONE_MATCH_DOC = (
    "`ETag` values already held (or `*`): 304 with no body when the current"
    " representation has one of them."
)
ETAG_HEADER = [
    ResponseHeader(
        name="ETag",
        description="This representation's entity tag: send it back in If-None-Match"
        " (reads) or If-Match (writes).",
        documentation_only=True,
    )
]


# A write statement's `if_match`: the versions If-Match names, or None for any version.
Versions = list[datetime] | None


def changed_since_read(what: str) -> PreconditionFailedError:
    return PreconditionFailedError(
        f"{what} changed since the version If-Match names; read it again (its ETag)"
    )


NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None,
        description="Not Modified: If-None-Match named the current ETag; no body.",
    )
}


class _Stamp(msgspec.Struct):
    updated_at: datetime


_stamp = msgspec.json.Decoder(_Stamp).decode


def etag(body: bytes) -> str:
    """The entity tag of a single resource's JSON `body` (it has `updated_at`)."""
    version = (_stamp(body).updated_at - _EPOCH) // _MICROSECOND
    return f'"{version:x}-{hashlib.blake2b(body, digest_size=6).hexdigest()}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def if_match_versions(request: Request[Any, Any, Any], header: str | None) -> Versions:
    """What a write statement's `if_match` gets: None when any version will do (no
    If-Match, or `*`: the statement's own 404 covers a missing row), else the versions of
    the strong tags listed, possibly none (then nothing matches: 412). 428 without the
    header when RAWPOST_REQUIRE_IF_MATCH is on."""
    if header is None:
        if request.app.state.db.settings.require_if_match:
            raise PreconditionRequiredError(
                "this write needs If-Match with the ETag of the version it changes"
            )
        return None
    tags = _tags(header)
    if "*" in tags:
        return None
    versions = []
    for tag in tags:
        # Weak tags (W/"...") never match If-Match; anything unparseable matches nothing.
        version, _, _ = tag.removeprefix('"').partition("-")
        try:
            versions.append(_EPOCH + int(version, 16) * _MICROSECOND)
        except (ValueError, OverflowError):
            continue
    return versions


def if_none_match(request: Request[Any, Any, Any]) -> str | None:
    """The request's If-None-Match header, straight from the ASGI scope."""
    for name, value in request.scope["headers"]:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


def tagged(
    body: msgspec.Struct | bytes,
    *,
    status: int = 200,
    request: Request[Any, Any, Any] | None = None,
    headers: dict[str, str] | None = None,
    tag: str | None = None,
) -> Response[Any]:
    """The answer with its ETag (`tag`, if already known); to a read (`request` given),
    304 with no body when its If-None-Match names the tag."""
    encoded = body if isinstance(body, bytes) else msgspec.json.encode(body)
    if tag is None:
        tag = etag(encoded)
    held = None if request is None else if_none_match(request)
    if held is not None and _none_match_fails(held, tag):
        return Response(content=b"", status_code=304, headers={"ETag": tag})
    return Response(
        content=msgspec.Raw(encoded), status_code=status, headers={**(headers or {}), "ETag": tag}
    )


def _none_match_fails(header: str, tag: str) -> bool:
    # Weak comparison (RFC 9110, 13.1.2): W/ is ignored.
    tags = _tags(header)
    return "*" in tags or any(t.removeprefix("W/") == tag for t in tags)
