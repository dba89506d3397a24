"""create_post's inserts, coalesced: the posts created within RAWPOST_WRITE_COALESCE_MS of
each other on one worker go to the database as one statement (sql/posts/insert_posts.sql)
and one commit, and each request gets its own post, or its own 422, back.

Only plain creates are gathered: one with an Idempotency-Key runs in its own transaction
with its key (service/idempotency). The routes decide who may create what before a post
gets here (repository.author_for). See docs/performance.md, "Write coalescing".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
from litestar import Request

from service import observability
from service.db import failures
from service.db.coalesce import Coalescer
from service.db.pool import Database
from service.db.session import Session
from service.metrics import BUFFER, WRITE_BATCH_SIZE
from service.posts import repository
from service.posts.schemas import Post

# Posts per statement at most: a bigger batch waits longer for its commit.
MAX_BATCH = 64
_BATCH_SIZE = WRITE_BATCH_SIZE.labels("posts/insert_posts")


class NewPost(NamedTuple):
    author_id: UUID
    title: str
    content: str
    published: bool


class _Written(NamedTuple):
    post: Post | None  # None: the author is missing or deleted
    position: int | None  # the primary's WAL position after the commit (read replicas)
    seconds: float  # the batch's time in the database


class PostWrites:
    """One per worker (app.state.post_writes), over the worker's pool."""

    def __init__(self, db: Database, window_ms: float) -> None:
        self._db = db
        self._batches: Coalescer[NewPost, _Written] = Coalescer(
            self._send, window=window_ms / 1000, max_items=MAX_BATCH
        )

    async def create(self, new: NewPost) -> Post:
        """The new post, gathered with others; 422 when its author is missing or deleted."""
        written = await self._batches.submit(new)
        if (ctx := observability.current()) is not None:
            ctx.db_seconds += written.seconds
            if written.position is not None:
                ctx.consistency_lsn = written.position  # the Consistency-Token header
        if written.post is None:
            raise repository.author_missing(new.author_id)
        return written.post

    async def close(self) -> None:
        await self._batches.close()

    async def _send(self, batch: list[NewPost]) -> Sequence[_Written | Exception]:
        BUFFER.observe(_BATCH_SIZE, len(batch))
        started = time.perf_counter()
        session = Session(self._db)
        failed: asyncpg.PostgresError | None = None
        try:
            posts = await repository.insert_posts(session, batch)
        except asyncpg.PostgresError as exc:
            failed = exc
        finally:
            position = await session.close()
        if failed is not None:
            if len(batch) == 1 or failures.is_unavailable(failed):
                raise failed
            # One post's values failed the whole statement (nothing was inserted): each
            # alone, so only that request gets the error.
            return [await self._one(new) for new in batch]
        took = time.perf_counter() - started
        return [_Written(post, position, took) for post in posts]

    async def _one(self, new: NewPost) -> _Written | Exception:
        started = time.perf_counter()
        session = Session(self._db)
        try:
            posts = await repository.insert_posts(session, [new])
        except Exception as exc:
            return exc
        finally:
            position = await session.close()
        return _Written(posts[0], position, time.perf_counter() - started)


def post_writes_of(request: Request[Any, Any, Any]) -> PostWrites | None:
    """The worker's PostWrites; None when RAWPOST_WRITE_COALESCE_MS is 0."""
    writes: PostWrites | None = request.app.state.post_writes
    return writes
