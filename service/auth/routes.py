"""HTTP handlers for /api/auth: sign in, refresh, log out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import Request, Response, Router, post
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody, RawBody

from service.auth import repository
from service.auth.callers import CallersDep
from service.auth.repository import IssuerDep
from service.auth.schemas import Caller, Refresh, SignIn
from service.auth.security import PUBLIC, SIGNED_IN, signed_in
from service.auth.tokens import TokenPair, session_of
from service.db.session import ConnectionDep
from service.errors import problem_responses
from service.ratelimit import RateLimitsDep
from service.validation import NO_NUL, strict_json

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749: token responses are never cached
# OAuth2 password-grant fields a client may send besides username and password.
_OAUTH2_EXTRAS = {"grant_type", "scope", "client_id", "client_secret"}


def _string(max_length: int) -> Schema:
    return Schema(type=OpenAPIType.STRING, min_length=1, max_length=max_length, pattern=NO_NUL)


@dataclass
class _SignInOperation(Operation):
    """Documents both bodies the token route takes (Litestar documents one)."""

    def __post_init__(self) -> None:
        json_body = Schema(
            type=OpenAPIType.OBJECT,
            properties={"email": _string(254), "password": _string(128)},
            required=["email", "password"],
            additional_properties=False,
        )
        form_body = Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "grant_type": Schema(type=OpenAPIType.STRING, const="password"),
                "username": _string(254),
                "password": _string(128),
                "scope": Schema(type=OpenAPIType.STRING),
                "client_id": Schema(type=OpenAPIType.STRING),
                "client_secret": Schema(type=OpenAPIType.STRING),
            },
            required=["username", "password"],
            additional_properties=False,
        )
        self.request_body = RequestBody(
            content={
                "application/json": OpenAPIMediaType(schema=json_body),
                FORM: OpenAPIMediaType(schema=form_body),
            },
            required=True,
        )


def _sign_in_body(content_type: str, body: bytes) -> SignIn:
    if content_type.split(";")[0].strip().lower() != FORM:
        return strict_json(body, SignIn)
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise _bad("body", "not a valid form body") from None
    unknown = set(fields) - _OAUTH2_EXTRAS - {"username", "password"}
    if unknown:
        raise _bad(sorted(unknown)[0], "unknown field")
    if any(len(values) > 1 for values in fields.values()):
        raise _bad("body", "each field at most once")
    if fields.get("grant_type", ["password"]) != ["password"]:
        raise _bad("grant_type", "only the `password` grant is supported")
    form = {
        "email": fields.get("username", [None])[0],
        "password": fields.get("password", [None])[0],
    }
    try:
        return msgspec.convert({k: v for k, v in form.items() if v is not None}, SignIn)
    except msgspec.ValidationError as exc:
        raise _bad("username" if "email" in str(exc) else "password", str(exc)) from None


def _bad(field: str, message: str) -> ValidationException:
    return ValidationException(
        detail="Validation failed", extra=[{"key": field, "message": message}]
    )


@post(
    "/token",
    status_code=200,
    summary="Sign in: a new login's access and refresh tokens",
    description="JSON `{email, password}`, or the OAuth2 password form (`grant_type=password"
    "&username=...&password=...`) as the interactive docs' Authorize button sends it. A wrong"
    " email and a wrong password give the same 401. The response is never cached. Attempts"
    " are limited per email (RAWPOST_LOGIN_RATE_LIMIT a minute, whatever the address): 429.",
    operation_class=_SignInOperation,
    security=PUBLIC,
    responses=problem_responses(401, 413),
)
async def issue_token(
    conn: ConnectionDep,
    issuer: IssuerDep,
    limits: RateLimitsDep,
    request: Request[Any, Any, Any],
    body: RawBody,
) -> Response[TokenPair]:
    credentials = _sign_in_body(request.headers.get("content-type", ""), body)
    await limits.check_sign_in(request, credentials.email)
    pair = await repository.sign_in(
        conn, issuer, email=credentials.email, password=credentials.password
    )
    return Response(pair, headers=NO_STORE)


@post(
    "/refresh",
    status_code=200,
    summary="Trade a refresh token for a new pair",
    description="Single use: the presented token is retired. Presenting a retired token"
    " again revokes every refresh token of its login (401).",
    security=PUBLIC,
    responses=problem_responses(401, 413),
)
async def refresh_token(
    conn: ConnectionDep, issuer: IssuerDep, data: JSONBody[Refresh], body: RawBody
) -> Response[TokenPair]:
    data = strict_json(body, Refresh)
    pair = await repository.refresh(conn, issuer, refresh_token=data.refresh_token)
    return Response(pair, headers=NO_STORE)


@post(
    "/logout",
    status_code=204,
    summary="Log out this login",
    description="Revokes the login's refresh tokens and the access token presented, on every"
    " worker and instance within a second. No body.",
    guards=[signed_in],
    security=SIGNED_IN,
    responses=problem_responses(401),
)
async def log_out(
    conn: ConnectionDep, callers: CallersDep, request: Request[Caller, Any, Any]
) -> None:
    token = request.auth
    await repository.log_out(
        conn,
        callers,
        caller=request.user,
        jti=str(token.jti),
        expires_at=token.exp,
        session_id=session_of(token),
    )


router = Router("/api/auth", route_handlers=[issue_token, refresh_token, log_out], tags=["auth"])
