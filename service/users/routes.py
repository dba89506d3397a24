"""HTTP handlers for /api/users: parse, call one repository function, return."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Response, Router, delete, get, patch, post
from litestar.params import JSONBody, Parameter, RawBody

from service.auth.callers import CallersDep
from service.auth.repository import IssuerDep
from service.auth.security import (
    PUBLIC,
    SIGNED_IN,
    CallerRequest,
    SignedInRequest,
    admin_only,
    signed_in,
)
from service.auth.tokens import session_of
from service.cache import author_tags, cache_of, user_tags
from service.conditional import (
    ETAG_HEADER,
    NOT_MODIFIED,
    IfMatch,
    if_match_versions,
    tagged,
)
from service.db.session import ConnectionDep
from service.db.statements import Executor
from service.errors import problem_responses
from service.idempotency.repository import IdempotencyKey, Outcome, idempotent
from service.pagination import DEFAULT_LIMIT, CursorParam, Limit, decode_cursor, split_page
from service.posts import repository as posts_repository
from service.posts.schemas import PostPage
from service.ratelimit import RateLimitsDep
from service.users import repository
from service.users.guards import owner_or_admin
from service.users.schemas import User, UserCreate, UserPage, UserPatch, UserWithPosts
from service.validation import strict_json

UserId = Annotated[UUID, Parameter(description="The user's id (a UUID).")]
Include = Annotated[
    Literal["posts"] | None,
    Parameter(description="`posts` embeds the user's 20 newest posts (same single statement)."),
]
EmailFilter = Annotated[
    str | None,
    Parameter(
        max_length=254,
        description="Only the live user with this email, ignoring case. Admins only: 401"
        " anonymous, 403 for other callers.",
    ),
]
Published = Annotated[bool | None, Parameter(description="Only posts with this flag.")]


@post(
    "/",
    status_code=201,
    summary="Sign up: create a user",
    description="Returns the user (its email included) with a `Location` header pointing at"
    " it. The password is stored only as an Argon2id hash; sign in with"
    " `POST /api/auth/token`. Sign-ups are limited per client address"
    " (RAWPOST_SIGNUP_RATE_LIMIT an hour; an admin's are not counted): 429.",
    security=PUBLIC,
    responses=problem_responses(401, 409, 413, 422),
    response_headers=ETAG_HEADER,
)
async def create_user(
    conn: ConnectionDep,
    issuer: IssuerDep,
    limits: RateLimitsDep,
    request: CallerRequest,
    data: JSONBody[UserCreate],
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
) -> Response[User]:
    data = strict_json(body, UserCreate)
    await limits.check_sign_up(request)
    password_hash = await issuer.passwords.hash(data.password)

    async def run(c: Executor) -> Outcome:
        user = await repository.insert_user(
            c, email=data.email, name=data.name, password_hash=password_hash
        )
        return Outcome(201, user, f"/api/users/{user.id}")

    # The body holds the password: its Idempotency-Key hash is keyed (HMAC), never plain.
    return await idempotent(
        conn, route="POST /api/users", key=idempotency_key, body=issuer.fingerprint(body), run=run
    )


@get(
    "/",
    summary="List live users, newest first",
    description="Emails are shown only on the caller's own row (on every row to an admin).",
    security=PUBLIC,
    responses=problem_responses(401, 403),
)
async def list_users(
    conn: ConnectionDep,
    request: CallerRequest,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    email: EmailFilter = None,
) -> UserPage:
    rows = await repository.list_users(
        conn, cursor=decode_cursor(cursor), limit=limit, caller=request.user, email=email
    )
    items, next_cursor = split_page(rows, limit)
    return UserPage(items=items, next_cursor=next_cursor)


@get(
    "/me",
    summary="The signed-in caller",
    description="The caller's own user, email included.",
    guards=[signed_in],
    security=SIGNED_IN,
    responses={**problem_responses(401, 404), **NOT_MODIFIED},
    response_headers=ETAG_HEADER,
)
async def get_me(conn: ConnectionDep, request: SignedInRequest) -> Response[User]:
    user = await repository.get_user(conn, user_id=request.user.id, caller=request.user)
    return tagged(user, request=request)


@get(
    "/{user_id:str}",
    summary="Get a live user",
    description="The email only for the user itself and admins; `?include=posts` embeds the"
    " 20 newest posts the caller may see (drafts only for their author and admins).",
    security=PUBLIC,
    responses={**problem_responses(401, 404), **NOT_MODIFIED},
    response_headers=ETAG_HEADER,
)
async def get_user(
    conn: ConnectionDep,
    request: CallerRequest,
    user_id: UserId,
    include: Include = None,
) -> Response[User | UserWithPosts]:
    async def load() -> User | UserWithPosts:
        if include == "posts":
            return await repository.get_user_with_posts(conn, user_id=user_id, caller=request.user)
        return await repository.get_user(conn, user_id=user_id, caller=request.user)

    # Emails and drafts depend on the caller: cached for anonymous reads only.
    key = f"user:{user_id}:{include or ''}" if request.user is None else None
    tags = author_tags(user_id) if include == "posts" else user_tags(user_id)
    return await cache_of(request).single(request, conn, key, load, lambda _user: tags)


@patch(
    "/{user_id:str}",
    summary="Change a user's email, name and/or password",
    description="The user itself or an admin (403 for anyone else, whatever the id). Fields"
    " left out keep their value; `updated_at` moves. A new `password` needs"
    " `current_password` (403 when it is missing or wrong) unless an admin sets it, and revokes the"
    " user's other logins' refresh tokens.",
    guards=[owner_or_admin],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 409, 412, 413, 428),
    response_headers=ETAG_HEADER,
)
async def update_user(
    conn: ConnectionDep,
    issuer: IssuerDep,
    request: SignedInRequest,
    user_id: UserId,
    data: JSONBody[UserPatch],
    body: RawBody,
    if_match: IfMatch = None,
) -> Response[User]:
    data = strict_json(body, UserPatch)
    try:
        user = await repository.update_user(
            conn,
            user_id=user_id,
            patch=data,
            caller=request.user,
            passwords=issuer.passwords,
            session_id=session_of(request.auth),
            if_match=if_match_versions(request, if_match),
        )
    finally:
        cache_of(request).wrote_user(user_id)
    return tagged(user)


@delete(
    "/{user_id:str}",
    summary="Soft-delete a user",
    description="The user itself or an admin. The user and all their posts disappear from"
    " every read until restored; every token of the user is revoked.",
    guards=[owner_or_admin],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 412, 428),
)
async def delete_user(
    conn: ConnectionDep,
    callers: CallersDep,
    request: SignedInRequest,
    user_id: UserId,
    if_match: IfMatch = None,
) -> None:
    versions = if_match_versions(request, if_match)
    try:
        await repository.delete_user(conn, callers, user_id=user_id, if_match=versions)
    finally:
        cache_of(request).wrote_user(user_id)


@post(
    "/{user_id:str}/restore",
    status_code=200,
    summary="Restore a soft-deleted user",
    description="Admins only (403 for anyone else, whatever the id). A live user is returned"
    " unchanged. 409 when a live user now has its email. Tokens issued before the delete"
    " stay revoked.",
    guards=[admin_only],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
    response_headers=ETAG_HEADER,
)
async def restore_user(
    conn: ConnectionDep,
    request: SignedInRequest,
    user_id: UserId,
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> Response[User]:
    versions = if_match_versions(request, if_match)

    async def run(c: Executor) -> Outcome:
        return Outcome(200, await repository.restore_user(c, user_id=user_id, if_match=versions))

    route = f"POST /api/users/{user_id}/restore as {request.user.id}"
    try:
        return await idempotent(conn, route=route, key=idempotency_key, body=body, run=run)
    finally:
        cache_of(request).wrote_user(user_id)


@get(
    "/{user_id:str}/posts",
    summary="List a live user's posts, newest first",
    description="Drafts only for their author and admins.",
    security=PUBLIC,
    responses=problem_responses(401, 404),
)
async def list_user_posts(
    conn: ConnectionDep,
    request: CallerRequest,
    user_id: UserId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    published: Published = None,
) -> Response[PostPage]:
    after = decode_cursor(cursor)

    async def load() -> PostPage:
        rows = await posts_repository.list_user_posts(
            conn,
            author_id=user_id,
            caller=request.user,
            cursor=after,
            limit=limit,
            published=published,
        )
        if rows is None:
            raise repository.not_found(user_id)
        items, next_cursor = split_page(rows, limit)
        return PostPage(items=items, next_cursor=next_cursor)

    # Drafts are listed to their author and admins: cached for anonymous reads only.
    key = None
    if request.user is None and after is None:
        key = f"user-posts:{user_id}:{limit}:{published}"
    return await cache_of(request).page(request, conn, key, load, author_tags(user_id))


router = Router(
    "/api/users",
    route_handlers=[
        create_user,
        list_users,
        get_me,
        get_user,
        update_user,
        delete_user,
        restore_user,
        list_user_posts,
    ],
    tags=["users"],
)
