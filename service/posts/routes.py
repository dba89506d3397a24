"""HTTP handlers for /api/posts: parse, call one repository function, return."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Response, Router, delete, get, patch, post
from litestar.params import JSONBody, Parameter, RawBody

from service.auth.security import PUBLIC, SIGNED_IN, CallerRequest, SignedInRequest, signed_in
from service.cache import FEED, author_tags, cache_of, post_tags
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
from service.posts import repository
from service.posts.repository import NewPost
from service.posts.schemas import Post, PostCreate, PostPage, PostPatch
from service.posts.writes import post_writes_of
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
    description="By the caller; `author_id` left out means the caller, and another author's"
    " id is for admins only (403). Returns the post with its author and a `Location`"
    " header. 422 when the author does not exist or is deleted.",
    guards=[signed_in],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 413, 422),
    response_headers=ETAG_HEADER,
)
async def create_post(
    conn: ConnectionDep,
    request: SignedInRequest,
    data: JSONBody[PostCreate],
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
) -> Response[Post]:
    data = strict_json(body, PostCreate)
    created: list[Post] = []
    # Without a key: gathered with other creates into one statement (posts/writes.py).
    writes = post_writes_of(request) if idempotency_key is None else None

    async def run(c: Executor) -> Outcome:
        if writes is not None:  # which drops the post from the read cache itself
            author = repository.author_for(request.user, given(data.author_id))
            post = await writes.create(NewPost(author, data.title, data.content, data.published))
        else:
            post = await repository.insert_post(
                c,
                caller=request.user,
                author_id=given(data.author_id),
                title=data.title,
                content=data.content,
                published=data.published,
            )
            created.append(post)
        return Outcome(201, post, f"/api/posts/{post.id}")

    # Keys are the caller's own: another caller's key never replays this response.
    route = f"POST /api/posts as {request.user.id}"
    try:
        return await idempotent(conn, route=route, key=idempotency_key, body=body, run=run)
    finally:
        for post in created:  # even when the commit's outcome is unknown (503)
            cache_of(request).wrote_post(post.id, post.author_id)


@get(
    "/",
    summary="List published posts, newest first",
    description="Published posts only, whoever asks (authors find their drafts under"
    " `GET /api/users/{id}/posts`); `published=false` gives an empty page. Posts of"
    " soft-deleted users are not listed.",
    security=PUBLIC,
    responses=problem_responses(401),
)
async def list_posts(
    conn: ConnectionDep,
    request: CallerRequest,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    author_id: AuthorFilter = None,
    published: Published = None,
) -> Response[PostPage]:
    after = decode_cursor(cursor)

    async def load() -> PostPage:
        if author_id is None:
            rows = await repository.list_posts(conn, cursor=after, limit=limit, published=published)
        else:
            rows = (
                await repository.list_user_posts(
                    conn,
                    author_id=author_id,
                    caller=None,  # drafts are not listed here, even to their author
                    cursor=after,
                    limit=limit,
                    published=published,
                )
                or []
            )
        items, next_cursor = split_page(rows, limit)
        return PostPage(items=items, next_cursor=next_cursor)

    # The same for every caller: the first page is cached, whoever asks.
    key = None if after is not None else f"feed:{limit}:{published}:{author_id or ''}"
    tags = (FEED,) if author_id is None else author_tags(author_id)
    return await cache_of(request).page(request, conn, key, load, tags)


@get(
    "/{post_id:str}",
    summary="Get a visible post",
    description="A draft only for its author and admins (404 for everybody else).",
    security=PUBLIC,
    responses={**problem_responses(401, 404), **NOT_MODIFIED},
    response_headers=ETAG_HEADER,
)
async def get_post(
    conn: ConnectionDep,
    request: CallerRequest,
    post_id: PostId,
) -> Response[Post]:
    async def load() -> Post:
        return await repository.get_post(conn, post_id=post_id, caller=request.user)

    # A draft is visible to its author and admins only: cached for anonymous reads.
    key = f"post:{post_id}" if request.user is None else None
    return await cache_of(request).single(
        request, conn, key, load, lambda post: post_tags(post.id, post.author_id)
    )


@patch(
    "/{post_id:str}",
    summary="Change a post's title, content and/or published flag",
    description="Its author or an admin (403 for others on a published post, 404 on a"
    " draft). Fields left out keep their value; `updated_at` moves.",
    guards=[signed_in],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 412, 413, 428),
    response_headers=ETAG_HEADER,
)
async def update_post(
    conn: ConnectionDep,
    request: SignedInRequest,
    post_id: PostId,
    data: JSONBody[PostPatch],
    body: RawBody,
    if_match: IfMatch = None,
) -> Response[Post]:
    data = strict_json(body, PostPatch)
    author = None
    try:
        post = await repository.update_post(
            conn,
            caller=request.user,
            post_id=post_id,
            title=given(data.title),
            content=given(data.content),
            published=given(data.published),
            if_match=if_match_versions(request, if_match),
        )
        author = post.author_id
    finally:
        cache_of(request).wrote_post(post_id, author)
    return tagged(post)


@delete(
    "/{post_id:str}",
    summary="Soft-delete a post",
    description="Its author or an admin (403 for others on a published post, 404 on a draft).",
    guards=[signed_in],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 412, 428),
)
async def delete_post(
    conn: ConnectionDep, request: SignedInRequest, post_id: PostId, if_match: IfMatch = None
) -> None:
    versions = if_match_versions(request, if_match)
    try:
        await repository.delete_post(conn, caller=request.user, post_id=post_id, if_match=versions)
    finally:
        cache_of(request).wrote_post(post_id, None)  # None: its author is not known here


@post(
    "/{post_id:str}/restore",
    status_code=200,
    summary="Restore a soft-deleted post",
    description="Its author or an admin (403 for others on a published post, 404 on a"
    " draft). A live post is returned unchanged. 404 when the post does not exist or its"
    " author is soft-deleted (restore the user first).",
    guards=[signed_in],
    security=SIGNED_IN,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    response_headers=ETAG_HEADER,
)
async def restore_post(
    conn: ConnectionDep,
    request: SignedInRequest,
    post_id: PostId,
    body: RawBody,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> Response[Post]:
    versions = if_match_versions(request, if_match)

    async def run(c: Executor) -> Outcome:
        post = await repository.restore_post(
            c, caller=request.user, post_id=post_id, if_match=versions
        )
        return Outcome(200, post)

    route = f"POST /api/posts/{post_id}/restore as {request.user.id}"
    try:
        return await idempotent(conn, route=route, key=idempotency_key, body=body, run=run)
    finally:
        cache_of(request).wrote_post(post_id, None)


router = Router(
    "/api/posts",
    route_handlers=[create_post, list_posts, get_post, update_post, delete_post, restore_post],
    tags=["posts"],
)
