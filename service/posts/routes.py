"""HTTP handlers for /api/posts: parse, call one repository function, return."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Response, Router, delete, get, patch, post
from litestar.params import JSONBody, Parameter, RawBody

from service.db import ConnectionDep, Executor
from service.errors import problem_responses
from service.idempotency.repository import IdempotencyKey, Outcome, idempotent
from service.pagination import DEFAULT_LIMIT, CursorParam, Limit, decode_cursor, split_page
from service.posts import repository
from service.posts.schemas import Post, PostCreate, PostPage, PostPatch
from service.validation import given, strict_json

PostId = Annotated[UUID, Parameter(description="The post's id (a UUID).")]
AuthorFilter = Annotated[
    UUID | None,
    Parameter(description="Only this author's posts (an unknown author gives an empty page)."),
]
Published = Annotated[bool | None, Parameter(description="Only posts with this flag.")]


@post(
    "/",
    status_code=201,
    summary="Create a post",
    description="Returns the post with its author and a `Location` header. 422 when the"
    " author does not exist or is deleted.",
    responses=problem_responses(413, 422),
)
async def create_post(
    conn: ConnectionDep,
    data: JSONBody[PostCreate],
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
) -> Response[Post]:
    data = strict_json(body, PostCreate)

    async def run(c: Executor) -> Outcome:
        post = await repository.insert_post(
            c,
            author_id=data.author_id,
            title=data.title,
            content=data.content,
            published=data.published,
        )
        return Outcome(201, post, f"/api/posts/{post.id}")

    return await idempotent(conn, route="POST /api/posts", key=idempotency_key, body=body, run=run)


@get(
    "/",
    summary="List visible posts, newest first",
    description="Posts of soft-deleted users are not listed.",
    responses=problem_responses(),
)
async def list_posts(
    conn: ConnectionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    author_id: AuthorFilter = None,
    published: Published = None,
) -> PostPage:
    after = decode_cursor(cursor)
    if author_id is None:
        rows = await repository.list_posts(conn, cursor=after, limit=limit, published=published)
    else:
        rows = (
            await repository.list_user_posts(
                conn, author_id=author_id, cursor=after, limit=limit, published=published
            )
            or []
        )
    items, next_cursor = split_page(rows, limit)
    return PostPage(items=items, next_cursor=next_cursor)


@get("/{post_id:str}", summary="Get a visible post", responses=problem_responses(404))
async def get_post(conn: ConnectionDep, post_id: PostId) -> Post:
    return await repository.get_post(conn, post_id=post_id)


@patch(
    "/{post_id:str}",
    summary="Change a post's title, content and/or published flag",
    description="Fields left out keep their value; `updated_at` moves.",
    responses=problem_responses(404, 413),
)
async def update_post(
    conn: ConnectionDep, post_id: PostId, data: JSONBody[PostPatch], body: RawBody
) -> Post:
    data = strict_json(body, PostPatch)
    return await repository.update_post(
        conn,
        post_id=post_id,
        title=given(data.title),
        content=given(data.content),
        published=given(data.published),
    )


@delete("/{post_id:str}", summary="Soft-delete a post", responses=problem_responses(404))
async def delete_post(conn: ConnectionDep, post_id: PostId) -> None:
    await repository.delete_post(conn, post_id=post_id)


@post(
    "/{post_id:str}/restore",
    status_code=200,
    summary="Restore a soft-deleted post",
    description="A live post is returned unchanged. 404 when the post does not exist or its"
    " author is soft-deleted (restore the user first).",
    responses=problem_responses(404, 422),
)
async def restore_post(
    conn: ConnectionDep, post_id: PostId, body: RawBody, idempotency_key: IdempotencyKey = None
) -> Response[Post]:
    async def run(c: Executor) -> Outcome:
        return Outcome(200, await repository.restore_post(c, post_id=post_id))

    route = f"POST /api/posts/{post_id}/restore"
    return await idempotent(conn, route=route, key=idempotency_key, body=body, run=run)


router = Router(
    "/api/posts",
    route_handlers=[create_post, list_posts, get_post, update_post, delete_post, restore_post],
    tags=["posts"],
)
