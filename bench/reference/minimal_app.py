"""A minimal single-file Litestar + asyncpg app: the "no architecture at all" reference.

A measurement instrument for `rawpost bench --no-serve`, not part of the service (see
README.md next to this file). It is written the way a newcomer would write it: a plain
`asyncpg.create_pool` opened on start-up, `async with pool.acquire()` in every handler
(asyncpg's default reset on release), handlers returning dicts, Litestar's own JWTAuth
for the one write that needs a caller (the token checked on every request, no cache); no
dependency injection, no other middleware, no metrics, no retries, no problem documents.
The SQL is rawpost's own (sql/users/get_user.sql, get_user_with_posts.sql,
insert_user.sql, sql/posts/list_posts.sql, insert_post.sql), with asyncpg's `$n`
placeholders.

Environment: DATABASE_URL and RAWPOST_JWT_SECRET (both required), REFERENCE_POOL_SIZE
(default 10, per worker).
"""

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import Parameter
from litestar.security.jwt import JWTAuth, Token

JWT_SECRET = os.environ.get("RAWPOST_JWT_SECRET", "")
if not JWT_SECRET:
    raise RuntimeError("RAWPOST_JWT_SECRET is not set: the secret rawpost signs tokens with")

GET_USER = """
SELECT u.id, u.email, u.name, u.created_at, u.updated_at
FROM users AS u
WHERE u.id = $1
  AND u.deleted_at IS NULL
"""

GET_USER_WITH_POSTS = """
SELECT u.id, u.email, u.name, u.created_at, u.updated_at,
       COALESCE(recent.posts, '[]'::json) AS posts
FROM users AS u
LEFT JOIN LATERAL (
    SELECT json_agg(
               json_build_object(
                   'id', p.id,
                   'author_id', p.author_id,
                   'title', p.title,
                   'content', p.content,
                   'published', p.published,
                   'created_at', p.created_at,
                   'updated_at', p.updated_at,
                   'author', json_build_object('id', u.id, 'name', u.name)
               )
               ORDER BY p.created_at DESC, p.id DESC
           ) AS posts
    FROM (
        SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at
        FROM posts AS p
        WHERE p.author_id = u.id
          AND p.deleted_at IS NULL
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT 20
    ) AS p
) AS recent ON true
WHERE u.id = $1
  AND u.deleted_at IS NULL
"""

LIST_POSTS = """
SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
       json_build_object('id', u.id, 'name', u.name) AS author
FROM posts AS p
JOIN users AS u ON u.id = p.author_id
WHERE p.deleted_at IS NULL
  AND u.deleted_at IS NULL
  AND ($1::boolean IS NULL OR p.published = $1)
  AND (p.created_at, p.id) < (
      COALESCE($2::timestamptz, 'infinity'),
      COALESCE($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  )
ORDER BY p.created_at DESC, p.id DESC
LIMIT $4
"""

INSERT_USER = """
INSERT INTO users (email, name)
VALUES ($1, $2)
RETURNING id, email, name, created_at, updated_at
"""

INSERT_POST = """
WITH author AS (
    SELECT u.id, u.name
    FROM users AS u
    WHERE u.id = $1
      AND u.deleted_at IS NULL
    FOR SHARE
), inserted AS (
    INSERT INTO posts (author_id, title, content, published)
    SELECT author.id, $2::text, $3::text, $4::boolean
    FROM author
    RETURNING id, author_id, title, content, published, created_at, updated_at
)
SELECT i.id, i.author_id, i.title, i.content, i.published, i.created_at, i.updated_at,
       json_build_object('id', a.id, 'name', a.name) AS author
FROM inserted AS i
JOIN author AS a ON a.id = i.author_id
"""


async def retrieve_user_handler(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> str:
    # The token's user id; no lookup (INSERT_POST checks that the author is live).
    return token.sub


jwt_auth = JWTAuth[str](
    retrieve_user_handler=retrieve_user_handler,
    token_secret=JWT_SECRET,
    algorithm="HS256",
    require_claims=["sub", "exp", "iat", "jti"],
    exclude=["/schema"],
)


async def open_pool(app: Litestar) -> None:
    size = int(os.environ.get("REFERENCE_POOL_SIZE", "10"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=size, max_size=size
    )


async def close_pool(app: Litestar) -> None:
    await app.state.pool.close()


@get("/health/live", exclude_from_auth=True)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", exclude_from_auth=True)
async def ready(state: State) -> dict[str, str]:
    async with state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ready"}


@get("/api/users/{user_id:uuid}", exclude_from_auth=True)
async def get_user(state: State, user_id: UUID, include: str | None = None) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        if include == "posts":
            row = await conn.fetchrow(GET_USER_WITH_POSTS, user_id)
        else:
            row = await conn.fetchrow(GET_USER, user_id)
    if row is None:
        raise NotFoundException(f"user {user_id} not found")
    user = dict(row)
    if "posts" in user:
        user["posts"] = json.loads(user["posts"])
    return user


@get("/api/users/me")
async def get_me(request: Request[str, Token, Any], state: State) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        row = await conn.fetchrow(GET_USER, UUID(request.user))
    if row is None:
        raise NotFoundException("user not found")
    return dict(row)


@get("/api/posts", exclude_from_auth=True)
async def list_posts(
    state: State,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    cursor: str | None = None,
    published: bool | None = None,
) -> dict[str, Any]:
    before_created_at, before_id = None, None
    if cursor:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            created_at, post_id = json.loads(raw)
            before_created_at, before_id = datetime.fromisoformat(created_at), UUID(post_id)
        except (ValueError, TypeError):
            raise HTTPException(status_code=400, detail="bad cursor") from None
    async with state.pool.acquire() as conn:
        rows = await conn.fetch(LIST_POSTS, published, before_created_at, before_id, limit + 1)
    items = []
    for row in rows[:limit]:
        post = dict(row)
        post["author"] = json.loads(post["author"])
        items.append(post)
    next_cursor = None
    if len(rows) > limit:
        # rawpost's cursor: base64url of the JSON array [created_at, id], unpadded.
        last = items[-1]
        raw = msgspec.json.encode([last["created_at"], last["id"]])
        next_cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"items": items, "next_cursor": next_cursor}


@dataclass
class NewUser:
    email: str
    name: str


@post("/api/users", exclude_from_auth=True)
async def create_user(state: State, data: NewUser) -> Response[dict[str, Any]]:
    try:
        async with state.pool.acquire() as conn:
            row = await conn.fetchrow(INSERT_USER, data.email, data.name.strip())
    except asyncpg.UniqueViolationError:
        raise HTTPException(status_code=409, detail="email is already used") from None
    user = dict(row)
    return Response(user, status_code=201, headers={"Location": f"/api/users/{user['id']}"})


@dataclass
class NewPost:
    title: str
    content: str
    published: bool = False


@post("/api/posts")
async def create_post(
    request: Request[str, Token, Any], state: State, data: NewPost
) -> Response[dict[str, Any]]:
    async with state.pool.acquire() as conn:
        row = await conn.fetchrow(
            INSERT_POST, UUID(request.user), data.title, data.content, data.published
        )
    if row is None:
        raise HTTPException(status_code=422, detail="author does not exist or is deleted")
    new_post = dict(row)
    new_post["author"] = json.loads(new_post["author"])
    return Response(new_post, status_code=201, headers={"Location": f"/api/posts/{new_post['id']}"})


app = Litestar(
    route_handlers=[live, ready, get_user, get_me, list_posts, create_user, create_post],
    on_startup=[open_pool],
    on_shutdown=[close_pool],
    on_app_init=[jwt_auth.on_app_init],
)
