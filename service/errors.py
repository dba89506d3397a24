"""Domain errors and the single mapper that turns any exception into an RFC 9457 problem.

DomainError
├── BadRequestError          400  (bad cursor, NUL byte caught by PostgreSQL, ...)
├── UnauthorizedError        401  (no token where one is needed, or a bad one)
├── ForbiddenError           403  (a known caller who may not do this to a visible row)
├── NotFoundError            404
├── ConflictError            409  (unique violation)
├── UnprocessableError       422  (foreign key, deleted author)
├── TooManyRequestsError     429  (a rate limit: service/ratelimit)
└── UnavailableError         503  (database unreachable, pool exhausted, timeouts)
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from service import observability
from service.db import failures

log = logging.getLogger("rawpost.errors")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 1


class DomainError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequestError(DomainError):
    status, slug, title = 400, "bad-request", "Bad Request"


class UnauthorizedError(DomainError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class ForbiddenError(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFoundError(DomainError):
    status, slug, title = 404, "not-found", "Not Found"


class ConflictError(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class UnprocessableError(DomainError):
    status, slug, title = 422, "unprocessable", "Unprocessable Content"


class PreconditionFailedError(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition Failed"


class PreconditionRequiredError(DomainError):
    status, slug, title = 428, "precondition-required", "Precondition Required"


class TooManyRequestsError(DomainError):
    status, slug, title = 429, "too-many-requests", "Too Many Requests"

    def __init__(
        self, detail: str, *, retry_after: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.headers = {**(headers or {}), "Retry-After": str(retry_after)}


class UnavailableError(DomainError):
    status, slug, title = 503, "unavailable", "Service Unavailable"


class FieldError(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem document; `errors` only for validation failures."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


_BY_KIND: dict[failures.Kind, tuple[type[DomainError], str]] = {
    failures.Kind.CONFLICT: (ConflictError, "a live row already uses this value"),
    failures.Kind.UNPROCESSABLE: (UnprocessableError, "the referenced row does not exist"),
    failures.Kind.BAD_VALUE: (
        BadRequestError,
        "a value is not valid for its field (e.g. contains a NUL byte)",
    ),
    failures.Kind.UNAVAILABLE: (UnavailableError, "the database is unavailable; retry shortly"),
    # A table or column the SQL files need is missing: migrations are pending.
    failures.Kind.SCHEMA_BEHIND: (
        UnavailableError,
        "the database schema is not migrated yet; retry shortly",
    ),
    failures.Kind.BUG: (DomainError, "unexpected database error"),
}


def from_database(exc: BaseException) -> DomainError:
    """The domain error a database failure stands for; the driver's text never leaks."""
    error, detail = _BY_KIND[failures.classify(exc)]
    return error(detail)


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    headers = dict(headers or {})
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if status == 401:
        # RFC 6750: the scheme the client should use.
        headers["WWW-Authenticate"] = 'Bearer realm="rawpost"'

    return Response(
        Problem(type=f"/problems/{slug}", title=title, status=status, detail=detail, errors=errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")


def _validation_errors(exc: ValidationException) -> list[FieldError]:
    errors: list[FieldError] = []
    extra: Any = exc.extra
    for item in extra if isinstance(extra, list) else []:
        message = str(item.get("message", "invalid value")) if isinstance(item, dict) else str(item)
        key = str(item.get("key", "")) if isinstance(item, dict) else ""
        if key in ("", "data"):
            # Whole-body errors ("Object contains unknown field `x`") name the field in the text.
            m = _FIELD_IN_MESSAGE.search(message)
            key = m.group(1) if m else "body"
        errors.append(FieldError(field=key, message=message))
    return errors


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """The one place where exceptions become HTTP responses."""
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        # Litestar groups a handler's error with its dependencies' clean-up errors.
        return handle_exception(request, exc.exceptions[0])
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "the request is invalid"
        if not errors and exc.detail:
            # Litestar's own 400s (malformed JSON) carry a safe, useful detail.
            detail = exc.detail
        return problem_response(400, "Bad Request", detail, "validation", errors or None)
    if isinstance(exc, UnicodeDecodeError):
        return problem_response(400, "Bad Request", "the body is not valid UTF-8", "validation")
    if isinstance(exc, RecursionError):
        return problem_response(400, "Bad Request", "the JSON is nested too deeply", "validation")
    if isinstance(exc, TooManyRequestsError):
        return problem_response(exc.status, exc.title, exc.detail, exc.slug, headers=exc.headers)
    if (isinstance(exc, DomainError) and exc.status < 500) or isinstance(exc, UnavailableError):
        return problem_response(exc.status, exc.title, exc.detail, exc.slug)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        title = _TITLES.get(exc.status_code, "Client Error")
        # Keep the exception's own headers, e.g. `Allow` on a 405.
        return problem_response(
            exc.status_code, title, exc.detail or title, _slug(title), headers=exc.headers
        )
    mapped = from_database(exc)
    if isinstance(mapped, UnavailableError):
        log.warning(
            "database unavailable (%s) answered as 503",
            getattr(exc, "sqlstate", None) or type(exc).__name__,
            extra=_request_extra(request),
        )
    if mapped.status != 500:
        return handle_exception(request, mapped)
    request_id = _request_extra(request)["request_id"]
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal Server Error",
        f"unexpected error; quote request id {request_id} when reporting it",
        "internal",
    )


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    412: "Precondition Failed",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
}


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def _request_extra(request: Request[Any, Any, Any]) -> dict[str, str]:
    # The id the middleware gave this request (and sends back in X-Request-ID).
    ctx = observability.current()
    return {"request_id": ctx.request_id if ctx else uuid.uuid4().hex}


_DOCUMENTED = {
    400: "Malformed JSON, wrong types, unknown or missing fields, a value outside its"
    " constraints, a bad cursor or query parameter, or an invalid UUID in the path.",
    401: "No bearer token where the route needs a caller, or a token that is malformed,"
    " expired, badly signed, revoked, or whose user is deleted (on any route: a token sent"
    " to a public route is checked too). Carries `WWW-Authenticate: Bearer`.",
    403: "The caller is known but may not do this to a row it can see.",
    404: "The row does not exist, is soft-deleted, or is a draft the caller may not see.",
    409: "Unique violation: the email is already used by a live user (ignoring case).",
    413: "The request body is over the configured limit (RAWPOST_BODY_LIMIT, default 1 MiB).",
    412: "`If-Match` named none of the current representation's versions: the row changed"
    " since the caller read it (decided inside the write statement). Read it again.",
    422: "Well-formed but semantically invalid, e.g. a post for an author that does not exist.",
    428: "RAWPOST_REQUIRE_IF_MATCH is on and the request has no `If-Match`.",
    429: "Over a rate limit (RAWPOST_RATE_LIMIT per caller on every /api route; sign-ins per"
    " email, sign-ups per address): retry after the `Retry-After` seconds. Every /api"
    " response carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-"
    "headers-10) while a limit is on.",
    503: "The worker is at RAWPOST_MAX_IN_FLIGHT requests (`/problems/overloaded`, answered"
    " at once), or the database is unreachable or no pooled connection was free within the acquire"
    " timeout; retry after the `Retry-After` seconds.",
}


def problem_responses(*statuses: int, limited: bool = True) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem documents a route can answer with: 400 and 503
    always, 429 on the rate-limited routes (all of /api)."""
    return {
        status: ResponseSpec(
            data_container=Problem, description=_DOCUMENTED[status], media_type=PROBLEM_JSON
        )
        for status in sorted({400, 503, *statuses, *((429,) if limited else ())})
    }


__all__ = [
    "PROBLEM_JSON",
    "BadRequestError",
    "ConflictError",
    "DomainError",
    "FieldError",
    "ForbiddenError",
    "NotFoundError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "Problem",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnavailableError",
    "UnprocessableError",
    "handle_exception",
]
