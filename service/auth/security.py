"""Bearer authentication with Litestar's OAuth2PasswordBearerAuth, and the guards.

Litestar's JWT middleware answers 401 to any request without a token. rawpost's reads
are public but caller-aware (an owner sees its email and drafts), so the middleware
here lets a request without an Authorization header through as anonymous
(`request.user` is None) and leaves "a caller is required" to the `signed_in` guard. A
header that is present but not a valid, live, unrevoked bearer token is a 401 on every
route. Tokens are verified with the current secret, then the previous one (rotation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTCookieAuthenticationMiddleware, OAuth2PasswordBearerAuth, Token
from litestar.types import Receive, Scope, Send

from service.auth.callers import Callers
from service.auth.schemas import Caller
from service.auth.tokens import ALGORITHM, Keys
from service.errors import (
    DomainError,
    ForbiddenError,
    TooManyRequestsError,
    UnauthorizedError,
    handle_exception,
)
from service.ratelimit import RateLimits

TOKEN_URL = "/api/auth/token"  # noqa: S105 (a path, not a password)
SCHEME = "BearerToken"


# rawpost's access tokens are about 250 characters; anything much longer is refused
# before it is parsed or looked up.
MAX_AUTHORIZATION = 2048


class BearerMiddleware(JWTCookieAuthenticationMiddleware):
    """The header only (no cookie: no CSRF surface); no header means anonymous."""

    __slots__ = ("keys", "limits")

    def __init__(
        self, *args: Any, keys: Keys, limits: RateLimits | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # One Keys (and so one cache of verified tokens) for every route's instance.
        self.keys = keys
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Litestar's, except that a refused token is answered here rather than raised
        past the request-context middleware around this one (so the 401 gets its request
        id, security headers and metrics), after counting it against the client address's
        API limit (429 once over: guessing tokens is limited like any other request)."""
        if should_bypass_middleware(
            exclude_http_methods=self.exclude_http_methods,
            exclude_opt_key=self.exclude_opt_key,
            exclude_path_pattern=self.exclude,
            scope=scope,
            scopes=self.scopes,
        ):
            await self.app(scope, receive, send)
            return
        try:
            result = await self.authenticate_request(ASGIConnection(scope))
        except UnauthorizedError as refused:
            error: DomainError = refused
            headers: list[tuple[bytes, bytes]] = []
            if self.limits is not None:
                try:
                    headers = await self.limits.check_refused_token(scope)
                except TooManyRequestsError as over:
                    error = over
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = handle_exception(request, error)
            for name, value in headers:
                response.headers[name.decode()] = value.decode()
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)
            return
        scope["user"] = result.user
        scope["auth"] = result.auth
        await self.app(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get(self.auth_header)
        if header is None:
            return AuthenticationResult(user=None, auth=None)
        if len(header) > MAX_AUTHORIZATION:
            raise UnauthorizedError(
                f"the Authorization header is over {MAX_AUTHORIZATION} characters: not a token"
            )
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not encoded.strip():
            raise UnauthorizedError("the Authorization header must be `Bearer <access token>`")
        return await self.authenticate_token(encoded.strip(), connection)

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        try:
            token = self.keys.decode(encoded_token)
        except NotAuthorizedException as exc:
            raise UnauthorizedError(exc.detail) from None
        user = await self.retrieve_user_handler(token, connection)
        if user is None or (
            self.revoked_token_handler and await self.revoked_token_handler(token, connection)
        ):
            raise UnauthorizedError("the access token was revoked or its user no longer exists")
        return AuthenticationResult(user=user, auth=token)


def _callers(connection: ASGIConnection[Any, Any, Any, Any]) -> Callers:
    callers: Callers = connection.app.state.callers
    return callers


async def retrieve_caller(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Caller | None:
    return await _callers(connection).caller_for(token)


async def token_revoked(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return _callers(connection).revoked(token)


@dataclass
class BearerAuth(OAuth2PasswordBearerAuth[Caller | None, Token]):
    """OAuth2PasswordBearerAuth whose middleware verifies with `keys`: the current secret,
    then the previous one, through one cache of verified tokens."""

    keys: Keys | None = None
    limits: RateLimits | None = None

    @property
    def middleware(self) -> DefineMiddleware:
        middleware = super().middleware
        middleware.kwargs["keys"] = self.keys or Keys(current=self.token_secret)
        middleware.kwargs["limits"] = self.limits
        return middleware


def bearer_auth(
    secret: str, previous_secret: str | None, limits: RateLimits | None = None
) -> BearerAuth:
    return BearerAuth(
        limits=limits,
        token_secret=secret,
        keys=Keys(current=secret, previous=previous_secret),
        token_url=TOKEN_URL,
        retrieve_user_handler=retrieve_caller,
        revoked_token_handler=token_revoked,
        authentication_middleware_class=BearerMiddleware,
        algorithm=ALGORITHM,
        openapi_security_scheme_name=SCHEME,
        description="An access token from `POST /api/auth/token` (the Authorize button signs"
        " in with email and password), sent as `Authorization: Bearer <token>`.",
        # Only what goes under /api is authenticated; health, metrics and docs are not.
        exclude=["^/health", "^/metrics", "^/schema"],
    )


# --- guards: who may act (which rows they see is decided in the SQL) ----------------------


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    user: Caller | None = connection.scope.get("user")
    return user


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """401 without a caller. Guards are coroutines: Litestar runs a plain function guard
    in a thread pool, which cost create_post a sixth of its throughput (docs/performance.md)."""
    if caller_of(connection) is None:
        raise UnauthorizedError("this route needs a signed-in caller: send a bearer token")


def require_admin(caller: Caller | None, what: str = "this") -> None:
    """401 without a caller, 403 unless the caller is an admin."""
    if caller is None:
        raise UnauthorizedError(f"{what} needs a signed-in admin: send a bearer token")
    if not caller.is_admin:
        raise ForbiddenError(f"only an admin may do {what}")


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The route is for admins (require_admin)."""
    require_admin(caller_of(connection))


# Per route: who may use it, for the OpenAPI document.
PUBLIC: list[dict[str, list[str]]] = [{}, {SCHEME: []}]  # anonymous, or with a token
SIGNED_IN: list[dict[str, list[str]]] = [{SCHEME: []}]


# What a handler declares to learn its caller, `request.user`: a CallerRequest (None for
# anonymous), or a SignedInRequest on routes whose `signed_in` guard refused anonymous.
# Not a dependency: a second one beside `conn` makes Litestar resolve them in an anyio
# task group, which cost 16 % of user_by_id's throughput (docs/performance.md).
CallerRequest: TypeAlias = Request[Caller | None, Token | None, Any]
SignedInRequest: TypeAlias = Request[Caller, Token, Any]
