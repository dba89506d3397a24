"""The frameworkless floor: rawpost's benchmark routes as one raw ASGI callable.

A measurement instrument for `rawpost bench --no-serve`, not part of the service and not a
product (see README.md next to this file): what Python on this machine can do with the
same statements and the same JSON when nothing but an ASGI server, asyncpg and msgspec
stands between the socket and PostgreSQL. Routing is string comparison; pooled connections
skip asyncpg's reset query (an open transaction is still rolled back); responses are
msgspec Structs, so the bytes match rawpost's (timestamps in UTC with a `Z`, problem
documents for errors). Session settings are rawpost's own (service/db.py), so both run
the statements under the same planner settings.

Routes: GET /health/live, GET /health/ready, GET /api/users/{id}[?include=posts],
GET /api/posts[?limit=&cursor=&published=], POST /api/users.

Environment: DATABASE_URL (required), REFERENCE_POOL_SIZE (default 10, per worker). It
imports rawpost's `service.sql` for the statements, so run it from rawpost's environment.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias
from urllib.parse import unquote_plus
from uuid import UUID

import asyncpg
import msgspec

from service.sql import QUERIES

if TYPE_CHECKING:
    _Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    _Connection = asyncpg.Connection
    Pool = asyncpg.Pool

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

# rawpost's session settings (service/db.py: SERVER_SETTINGS), so the same statements run
# with the same plans; only application_name differs, to tell the two apart in pg_stat_activity.
SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "application_name": "rawpost-reference-raw",
    "enable_memoize": "off",
}
BODY_LIMIT = 1_048_576

# rawpost's own statements, read from sql/ as rawpost reads them (named parameters
# become $1.. in the order of `Query.params`): the same SQL, byte for byte.
GET_USER = QUERIES["users/get_user"].sql  # user_id
GET_USER_WITH_POSTS = QUERIES["users/get_user_with_posts"].sql  # user_id
LIST_POSTS = QUERIES["posts/list_posts"].sql  # published, before_created_at, before_id, limit
INSERT_USER = QUERIES["users/insert_user"].sql  # email, name


class NoResetConnection(_Connection):
    """Released to the pool without asyncpg's reset query (nothing here sets session state)."""

    def get_reset_query(self) -> str:
        return ""


# -- JSON shapes (field order as rawpost's Structs) -----------------------------------------


class Author(msgspec.Struct):
    id: str
    name: str


class Post(msgspec.Struct):
    id: str
    author_id: str
    title: str
    content: str
    published: bool
    created_at: datetime
    updated_at: datetime
    author: Author


class User(msgspec.Struct):
    id: UUID
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


class UserWithPosts(msgspec.Struct):
    id: UUID
    email: str
    name: str
    created_at: datetime
    updated_at: datetime
    posts: list[Post]


class RowPost(msgspec.Struct):
    id: UUID
    author_id: UUID
    title: str
    content: str
    published: bool
    created_at: datetime
    updated_at: datetime
    author: Author


class PostPage(msgspec.Struct):
    items: list[RowPost]
    next_cursor: str | None


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[
        str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
    ]
    name: str


class Problem(msgspec.Struct):
    type: str
    title: str
    status: int
    detail: str


class Live(msgspec.Struct):
    status: str


encode = msgspec.json.Encoder().encode
decode_posts = msgspec.json.Decoder(list[Post]).decode
decode_author = msgspec.json.Decoder(Author).decode
decode_new_user = msgspec.json.Decoder(NewUser).decode
decode_cursor = msgspec.json.Decoder(tuple[datetime, UUID]).decode

LIVE = encode(Live("ok"))
READY = encode(Live("ready"))
JSON = [(b"content-type", b"application/json")]
PROBLEM = [(b"content-type", b"application/problem+json")]

pool: Pool | None = None


class HTTPError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def bad_request(detail: str) -> HTTPError:
    return HTTPError(400, "Bad Request", detail)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] = JSON,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def query_params(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return {}
    params = {}
    for pair in raw.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        params[unquote_plus(key)] = unquote_plus(value)
    return params


# -- routes -------------------------------------------------------------------------------


async def ready() -> bytes:
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return READY


async def get_user(raw_id: str, params: dict[str, str]) -> bytes:
    try:
        user_id = UUID(raw_id)
    except ValueError:
        raise bad_request("user_id: not a valid UUID") from None
    include = params.get("include")
    if include not in (None, "posts"):
        raise bad_request("include: expected `posts`")
    assert pool is not None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(GET_USER_WITH_POSTS if include else GET_USER, user_id)
    if row is None:
        raise HTTPError(404, "Not Found", f"user {user_id} not found")
    if include:
        return encode(UserWithPosts(row[0], row[1], row[2], row[3], row[4], decode_posts(row[5])))
    return encode(User(*row))


async def list_posts(params: dict[str, str]) -> bytes:
    try:
        limit = int(params.get("limit", "20"))
    except ValueError:
        raise bad_request("limit: expected an integer") from None
    if not 1 <= limit <= 100:
        raise bad_request("limit: expected 1..100")
    flag = params.get("published")
    if flag not in (None, "true", "false"):
        raise bad_request("published: expected true or false")
    published = None if flag is None else flag == "true"
    before: tuple[datetime, UUID] | tuple[None, None] = (None, None)
    if cursor := params.get("cursor"):
        try:
            before = decode_cursor(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise bad_request("cursor is not valid; use next_cursor from a previous page") from None
    assert pool is not None
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_POSTS, published, *before, limit + 1)
    items = [
        RowPost(r[0], r[1], r[2], r[3], r[4], r[5], r[6], decode_author(r[7])) for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        raw = encode((last.created_at, last.id))
        next_cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return encode(PostPage(items, next_cursor))


async def create_user(receive: Receive, send: Send) -> None:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > BODY_LIMIT:
            raise HTTPError(413, "Content Too Large", "the body is over the limit")
    try:
        data = decode_new_user(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise bad_request(str(exc)) from None
    name = data.name.strip()
    if not 1 <= len(name) <= 100 or "\x00" in name:
        raise bad_request("name: 1..100 characters after trimming, no NUL")
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(INSERT_USER, data.email, name)
    except asyncpg.UniqueViolationError:
        raise HTTPError(409, "Conflict", "email is already used by a live user") from None
    assert row is not None
    user = User(*row)
    headers = [*JSON, (b"location", f"/api/users/{user.id}".encode())]
    await respond(send, 201, encode(user), headers)


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    try:
        if path.startswith("/api/users/") and method == "GET":
            body = await get_user(path[11:], query_params(scope))
        elif path == "/api/posts" and method == "GET":
            body = await list_posts(query_params(scope))
        elif path == "/api/users" and method == "POST":
            await create_user(receive, send)
            return
        elif path == "/health/live" and method == "GET":
            body = LIVE
        elif path == "/health/ready" and method == "GET":
            body = await ready()
        else:
            raise HTTPError(404, "Not Found", f"no route {method} {path}")
    except HTTPError as exc:
        slug = exc.title.lower().replace(" ", "-")
        problem = Problem(f"/problems/{slug}", exc.title, exc.status, exc.detail)
        await respond(send, exc.status, encode(problem), PROBLEM)
        return
    except Exception:
        problem = Problem("/problems/internal", "Internal Server Error", 500, "unexpected error")
        await respond(send, 500, encode(problem), PROBLEM)
        return
    await respond(send, 200, body)


async def lifespan(receive: Receive, send: Send) -> None:
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            size = int(os.environ.get("REFERENCE_POOL_SIZE", "10"))
            try:
                pool = await asyncpg.create_pool(
                    os.environ["DATABASE_URL"],
                    min_size=size,
                    max_size=size,
                    connection_class=NoResetConnection,
                    server_settings=SERVER_SETTINGS,
                )
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if pool is not None:
                await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
