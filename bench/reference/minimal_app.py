"""A minimal single-file Litestar + asyncpg app: the "no architecture at all" reference.

A measurement instrument for `rawpost bench --no-serve`, not part of the service (see
README.md next to this file). It is written the way a newcomer would write it: a plain
`asyncpg.create_pool` opened on start-up, `async with pool.acquire()` in every handler
(asyncpg's default reset on release), handlers returning dicts; no dependency injection,
no middleware, no metrics, no retries, no problem documents. The SQL is rawpost's own
(sql/users/get_user.sql, get_user_with_posts.sql, insert_user.sql,
sql/posts/list_posts.sql), with asyncpg's `$n` placeholders.

Environment: DATABASE_URL (required), REFERENCE_POOL_SIZE (default 10, per worker).
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
from litestar import Litestar, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import Parameter

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


async def open_pool(app: Litestar) -> None:
    size = int(os.environ.get("REFERENCE_POOL_SIZE", "10"))
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=size, max_size=size
    )


async def close_pool(app: Litestar) -> None:
    await app.state.pool.close()


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready")
async def ready(state: State) -> dict[str, str]:
    async with state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ready"}


@get("/api/users/{user_id:uuid}")
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


@get("/api/posts")
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


@post("/api/users")
async def create_user(state: State, data: NewUser) -> Response[dict[str, Any]]:
    try:
        async with state.pool.acquire() as conn:
            row = await conn.fetchrow(INSERT_USER, data.email, data.name.strip())
    except asyncpg.UniqueViolationError:
        raise HTTPException(status_code=409, detail="email is already used") from None
    user = dict(row)
    return Response(user, status_code=201, headers={"Location": f"/api/users/{user['id']}"})


app = Litestar(
    route_handlers=[live, ready, get_user, list_posts, create_user],
    on_startup=[open_pool],
    on_shutdown=[close_pool],
)
