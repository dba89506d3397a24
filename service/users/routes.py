"""HTTP handlers for /api/users: parse, call one repository function, return."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from litestar import Response, Router, delete, get, patch, post
from litestar.params import JSONBody, Parameter, RawBody

from service.db import ConnectionDep, Executor
from service.errors import problem_responses
from service.idempotency.repository import IdempotencyKey, Outcome, idempotent
from service.pagination import DEFAULT_LIMIT, CursorParam, Limit, decode_cursor, split_page
from service.posts import repository as posts_repository
from service.posts.schemas import PostPage
from service.users import repository
from service.users.schemas import User, UserCreate, UserPage, UserPatch, UserWithPosts
from service.validation import given, strict_json

UserId = Annotated[UUID, Parameter(description="The user's id (a UUID).")]
Include = Annotated[
    Literal["posts"] | None,
    Parameter(description="`posts` embeds the user's 20 newest posts (same single statement)."),
]
EmailFilter = Annotated[
    str | None,
    Parameter(max_length=254, description="Only the live user with this email, ignoring case."),
]
Published = Annotated[bool | None, Parameter(description="Only posts with this flag.")]


@post(
    "/",
    status_code=201,
    summary="Create a user",
    description="Returns the user with a `Location` header pointing at it.",
    responses=problem_responses(409, 413, 422),
)
async def create_user(
    conn: ConnectionDep,
    data: JSONBody[UserCreate],
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
) -> Response[User]:
    data = strict_json(body, UserCreate)

    async def run(c: Executor) -> Outcome:
        user = await repository.insert_user(c, email=data.email, name=data.name)
        return Outcome(201, user, f"/api/users/{user.id}")

    return await idempotent(conn, route="POST /api/users", key=idempotency_key, body=body, run=run)


@get("/", summary="List live users, newest first", responses=problem_responses())
async def list_users(
    conn: ConnectionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    email: EmailFilter = None,
) -> UserPage:
    rows = await repository.list_users(conn, cursor=decode_cursor(cursor), limit=limit, email=email)
    items, next_cursor = split_page(rows, limit)
    return UserPage(items=items, next_cursor=next_cursor)


@get("/{user_id:str}", summary="Get a live user", responses=problem_responses(404))
async def get_user(
    conn: ConnectionDep, user_id: UserId, include: Include = None
) -> User | UserWithPosts:
    if include == "posts":
        return await repository.get_user_with_posts(conn, user_id=user_id)
    return await repository.get_user(conn, user_id=user_id)


@patch(
    "/{user_id:str}",
    summary="Change a user's email and/or name",
    description="Fields left out keep their value; `updated_at` moves.",
    responses=problem_responses(404, 409, 413),
)
async def update_user(
    conn: ConnectionDep, user_id: UserId, data: JSONBody[UserPatch], body: RawBody
) -> User:
    data = strict_json(body, UserPatch)
    return await repository.update_user(
        conn, user_id=user_id, email=given(data.email), name=given(data.name)
    )


@delete(
    "/{user_id:str}",
    summary="Soft-delete a user",
    description="The user and all their posts disappear from every read until restored.",
    responses=problem_responses(404),
)
async def delete_user(conn: ConnectionDep, user_id: UserId) -> None:
    await repository.delete_user(conn, user_id=user_id)


@post(
    "/{user_id:str}/restore",
    status_code=200,
    summary="Restore a soft-deleted user",
    description="A live user is returned unchanged. 409 when a live user now has its email.",
    responses=problem_responses(404, 409, 422),
)
async def restore_user(
    conn: ConnectionDep, user_id: UserId, body: RawBody, idempotency_key: IdempotencyKey = None
) -> Response[User]:
    async def run(c: Executor) -> Outcome:
        return Outcome(200, await repository.restore_user(c, user_id=user_id))

    route = f"POST /api/users/{user_id}/restore"
    return await idempotent(conn, route=route, key=idempotency_key, body=body, run=run)


@get(
    "/{user_id:str}/posts",
    summary="List a live user's posts, newest first",
    responses=problem_responses(404),
)
async def list_user_posts(
    conn: ConnectionDep,
    user_id: UserId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    published: Published = None,
) -> PostPage:
    rows = await posts_repository.list_user_posts(
        conn, author_id=user_id, cursor=decode_cursor(cursor), limit=limit, published=published
    )
    if rows is None:
        raise repository.not_found(user_id)
    items, next_cursor = split_page(rows, limit)
    return PostPage(items=items, next_cursor=next_cursor)


router = Router(
    "/api/users",
    route_handlers=[
        create_user,
        list_users,
        get_user,
        update_user,
        delete_user,
        restore_user,
        list_user_posts,
    ],
    tags=["users"],
)
