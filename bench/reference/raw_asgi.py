"""The frameworkless floor: rawpost's benchmark routes as one raw ASGI callable.

A measurement instrument for `rawpost bench --no-serve`, not part of the service and not a
product (see README.md next to this file): what Python on this machine can do with the
same statements and the same JSON when nothing but an ASGI server, asyncpg and msgspec
stands between the socket and PostgreSQL. Routing is string comparison; pooled connections
skip asyncpg's reset query (an open transaction is still rolled back); responses are
msgspec Structs, so the bytes match rawpost's (timestamps in UTC with a `Z`, problem
documents for errors). Session settings are rawpost's own (service/db/pool.py), so both
run the statements under the same planner settings. Bearer tokens are checked with PyJWT
on every request, with no cache of verified tokens (rawpost's cache is its own lever).

Routes: GET /health/live, GET /health/ready, GET /api/users/{id}[?include=posts],
GET /api/users/me, GET /api/posts[?limit=&cursor=&published=], POST /api/posts,
POST /api/users.

Environment: DATABASE_URL and RAWPOST_JWT_SECRET (both required), REFERENCE_POOL_SIZE
(default 10, per worker). It imports rawpost's `service.sql` for the statements, so run it
from rawpost's environment.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias
from urllib.parse import unquote_plus
from uuid import UUID

import asyncpg
import jwt
import msgspec
from msgspec import UNSET, UnsetType

from service.db.pool import SERVER_SETTINGS as RAWPOST_SETTINGS
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

# rawpost's session settings (service/db/pool.py), so the same statements run with the
# same plans; only application_name differs, to tell the two apart in pg_stat_activity.
SERVER_SETTINGS = {**RAWPOST_SETTINGS, "application_name": "rawpost-reference-raw"}
BODY_LIMIT = 1_048_576
# rawpost's access tokens (service/auth/tokens.py): HS256 only, these claims required.
ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti"]
MAX_AUTHORIZATION = 2048  # rawpost's limit on the header (service/auth/security.py)
# rawpost's cursor (service/pagination.py): the last row's created_at in microseconds since
# 1970 and its id, 24 bytes in base64url without padding.
CURSOR_KEY = struct.Struct(">q16s")
CURSOR_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# rawpost's own statements, read from sql/ as rawpost reads them (named parameters
# become $1.. in the order of `Query.params`): the same SQL, byte for byte.
GET_USER = QUERIES["users/get_user"].sql  # caller_id, is_admin, user_id
GET_USER_WITH_POSTS = QUERIES["users/get_user_with_posts"].sql  # caller_id, is_admin, user_id
LIST_POSTS = QUERIES["posts/list_posts"].sql  # published, before_created_at, before_id, limit
INSERT_USER = QUERIES["users/insert_user"].sql  # email, name, password_hash
INSERT_POST = QUERIES["posts/insert_post"].sql  # author_id, title, content, published
PARAMS = {
    "users/get_user": ("caller_id", "is_admin", "user_id"),
    "users/get_user_with_posts": ("caller_id", "is_admin", "user_id"),
    "posts/list_posts": ("published", "before_created_at", "before_id", "limit"),
    "users/insert_user": ("email", "name", "password_hash"),
    "posts/insert_post": ("author_id", "title", "content", "published"),
}
for _name, _params in PARAMS.items():
    if QUERIES[_name].params != _params:  # the positional calls below bind in this order
        raise RuntimeError(f"sql/{_name}.sql now takes {QUERIES[_name].params}: update raw_asgi")


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


class User(msgspec.Struct, kw_only=True):
    id: UUID
    email: str | UnsetType = UNSET  # left out unless the caller is the user
    name: str
    created_at: datetime
    updated_at: datetime


class UserWithPosts(User, kw_only=True):
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


Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Content = Annotated[str, msgspec.Meta(max_length=100_000)]


class NewPost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """rawpost's PostCreate (service/posts/schemas.py)."""

    author_id: UUID | UnsetType = UNSET
    title: Title
    content: Content
    published: bool = False


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
decode_new_post = msgspec.json.Decoder(NewPost).decode

LIVE = encode(Live("ok"))
READY = encode(Live("ready"))
JSON = [(b"content-type", b"application/json")]
PROBLEM = [(b"content-type", b"application/problem+json")]
WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="rawpost"')

pool: Pool | None = None
secret = ""  # RAWPOST_JWT_SECRET, read at start-up


class HTTPError(Exception):
    def __init__(self, status: int, title: str, detail: str, slug: str = "") -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.slug = slug or title.lower().replace(" ", "-")


def bad_request(detail: str) -> HTTPError:
    return HTTPError(400, "Bad Request", detail)


def invalid_body(detail: str) -> HTTPError:
    return HTTPError(400, "Bad Request", detail, "validation")


def unauthorized(detail: str) -> HTTPError:
    return HTTPError(401, "Unauthorized", detail)


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


async def read_body(receive: Receive) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > BODY_LIMIT:
            raise HTTPError(413, "Content Too Large", "the body is over the limit")
    return body


def caller_id(scope: Scope) -> UUID:
    """The `sub` of the request's bearer token, verified now (no cache of verified tokens)."""
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    if header is None:
        raise unauthorized("this route needs a signed-in caller: send a bearer token")
    if len(header) > MAX_AUTHORIZATION:
        raise unauthorized("the Authorization header is too long to be a token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header must be `Bearer <access token>`")
    try:
        claims = jwt.decode(
            token.strip(), secret, algorithms=ALGORITHMS, options={"require": REQUIRED_CLAIMS}
        )
        return UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        raise unauthorized("the access token is malformed, expired or badly signed") from None


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    if not CURSOR_PATTERN.fullmatch(cursor):
        raise bad_request("cursor is not valid; use next_cursor from a previous page")
    try:
        micros, id_bytes = CURSOR_KEY.unpack(base64.urlsafe_b64decode(cursor + "="))
    except (binascii.Error, ValueError, struct.error):
        raise bad_request("cursor is not valid; use next_cursor from a previous page") from None
    try:
        created_at = EPOCH + micros * MICROSECOND
    except OverflowError:
        created_at = (datetime.min if micros < 0 else datetime.max).replace(tzinfo=UTC)
    return created_at, UUID(bytes=id_bytes)


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
        # Anonymous, as the benchmark asks: no caller, not an admin (no email in the answer).
        statement = GET_USER_WITH_POSTS if include else GET_USER
        row = await conn.fetchrow(statement, None, False, user_id)
    if row is None:
        raise HTTPError(404, "Not Found", f"user {user_id} not found")
    if include:
        return encode(
            UserWithPosts(
                id=row[0],
                name=row[2],
                created_at=row[3],
                updated_at=row[4],
                posts=decode_posts(row[5]),
            )
        )
    return encode(User(id=row[0], name=row[2], created_at=row[3], updated_at=row[4]))


async def get_me(scope: Scope) -> bytes:
    user_id = caller_id(scope)
    assert pool is not None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(GET_USER, user_id, False, user_id)
    if row is None:
        raise unauthorized("the access token's user no longer exists")
    return encode(User(id=row[0], email=row[1], name=row[2], created_at=row[3], updated_at=row[4]))


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
    if (cursor := params.get("cursor")) is not None:
        before = decode_cursor(cursor)
    assert pool is not None
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_POSTS, published, *before, limit + 1)
    items = [
        RowPost(r[0], r[1], r[2], r[3], r[4], r[5], r[6], decode_author(r[7])) for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        micros = (last.created_at - EPOCH) // MICROSECOND
        raw = CURSOR_KEY.pack(micros, last.id.bytes)
        next_cursor = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return encode(PostPage(items, next_cursor))


async def create_user(receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    try:
        data = decode_new_user(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise invalid_body(str(exc)) from None
    name = data.name.strip()
    if not 1 <= len(name) <= 100 or "\x00" in name:
        raise invalid_body("name: 1..100 characters after trimming, no NUL")
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            # No password (contract v1's body): a user who cannot sign in.
            row = await conn.fetchrow(INSERT_USER, data.email, name, None)
    except asyncpg.UniqueViolationError:
        raise HTTPError(409, "Conflict", "email is already used by a live user") from None
    assert row is not None
    user = User(id=row[0], email=row[1], name=row[2], created_at=row[3], updated_at=row[4])
    headers = [*JSON, (b"location", f"/api/users/{user.id}".encode())]
    await respond(send, 201, encode(user), headers)


async def create_post(scope: Scope, receive: Receive, send: Send) -> None:
    author_id = caller_id(scope)  # before the body, as rawpost's middleware does
    body = await read_body(receive)
    try:
        data = decode_new_post(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise invalid_body(str(exc)) from None
    if "\x00" in data.title or "\x00" in data.content:
        raise invalid_body("title and content must not contain a NUL character")
    if not isinstance(data.author_id, UnsetType) and data.author_id != author_id:
        # rawpost lets admins post for others; this app looks up no roles.
        raise HTTPError(403, "Forbidden", "only an admin may create a post for another author")
    assert pool is not None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(INSERT_POST, author_id, data.title, data.content, data.published)
    if row is None:
        raise HTTPError(
            422,
            "Unprocessable Content",
            f"author {author_id} does not exist or is deleted",
            "unprocessable",
        )
    post = RowPost(row[0], row[1], row[2], row[3], row[4], row[5], row[6], decode_author(row[7]))
    headers = [*JSON, (b"location", f"/api/posts/{post.id}".encode())]
    await respond(send, 201, encode(post), headers)


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    try:
        if path == "/api/users/me" and method == "GET":
            body = await get_me(scope)
        elif path.startswith("/api/users/") and method == "GET":
            body = await get_user(path[11:], query_params(scope))
        elif path == "/api/posts" and method == "GET":
            body = await list_posts(query_params(scope))
        elif path == "/api/posts" and method == "POST":
            await create_post(scope, receive, send)
            return
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
        problem = Problem(f"/problems/{exc.slug}", exc.title, exc.status, exc.detail)
        headers = PROBLEM if exc.status != 401 else [*PROBLEM, WWW_AUTHENTICATE]
        await respond(send, exc.status, encode(problem), headers)
        return
    except Exception:
        problem = Problem("/problems/internal", "Internal Server Error", 500, "unexpected error")
        await respond(send, 500, encode(problem), PROBLEM)
        return
    await respond(send, 200, body)


async def lifespan(receive: Receive, send: Send) -> None:
    global pool, secret
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            size = int(os.environ.get("REFERENCE_POOL_SIZE", "10"))
            for name in ("DATABASE_URL", "RAWPOST_JWT_SECRET"):
                if not os.environ.get(name):
                    text = f"{name} is not set: raw_asgi needs DATABASE_URL and RAWPOST_JWT_SECRET"
                    await send({"type": "lifespan.startup.failed", "message": text})
                    return
            secret = os.environ["RAWPOST_JWT_SECRET"]
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
