"""create_post's inserts, coalesced: the posts created within RAWPOST_WRITE_COALESCE_MS of
each other on one worker go to the database as one statement (sql/posts/insert_posts.sql)
and one commit, and each request gets its own post, or its own 422, back. A post the batch
could not write (its author missing, deleted or locked by a change in progress), and every
post of a batch that one post's values failed, is written again on its own with
posts/insert_post.sql, which waits for a lock and tells a missing author (422) apart.

Only plain creates are gathered: one with an Idempotency-Key runs in its own transaction
with its key (service/idempotency). The routes decide who may create what before a post
gets here (repository.author_for). See docs/performance.md, "Write coalescing".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
from litestar import Request

from service import observability
from service.cache import ReadCache
from service.db.coalesce import Coalescer
from service.db.pool import Database
from service.db.session import Session
from service.errors import UnavailableError
from service.metrics import BUFFER, WRITE_BATCH_SIZE
from service.posts import repository
from service.posts.repository import NewPost
from service.posts.schemas import Post

# Posts per statement at most: the read cache's change log records up to 50 rows of a
# statement one by one, and a larger statement as "drop everything" (migration
# 0010.cache-events), which would empty every worker's cache.
MAX_BATCH = 50
# The SQLSTATE classes one post's values can cause (data exception, integrity constraint,
# a trigger's RAISE): a batch failing with one of these is written again post by post.
# Any other failure (the server read-only, out of disk or memory) fails the whole batch.
_ONE_POSTS_FAULT = ("22", "23", "P0")
_BATCH_SIZE = WRITE_BATCH_SIZE.labels("posts/insert_posts")


class _Written(NamedTuple):
    post: Post | None  # None: the author is missing or deleted
    position: int | None  # the primary's WAL position after the commit (read replicas)
    seconds: float  # the batch's time in the database
    # Being written again on its own: the request waits for this, the batch's others not.
    again: asyncio.Future[_Written | Exception] | None = None


class PostWrites:
    """One per worker (app.state.post_writes), over the worker's pool."""

    def __init__(self, db: Database, cache: ReadCache, window_ms: float) -> None:
        self._db, self._cache = db, cache
        self._batches: Coalescer[NewPost, _Written] = Coalescer(
            self._send, window=window_ms / 1000, max_items=MAX_BATCH
        )
        self._closing = False
        self._again: set[asyncio.Future[_Written | Exception]] = set()

    async def create(self, new: NewPost) -> Post:
        """The new post, gathered with others; 422 when its author is missing or deleted."""
        if self._closing:
            raise UnavailableError("the server is shutting down; retry shortly")
        written = await self._batches.submit(new)
        if written.again is not None:
            alone = await written.again
            if isinstance(alone, Exception):
                raise alone
            written = alone
        if (ctx := observability.current()) is not None:
            ctx.db_seconds += written.seconds
            if written.position is not None:
                ctx.consistency_lsn = written.position  # the Consistency-Token header
        if written.post is None:
            raise repository.author_missing(new.author_id)
        return written.post

    async def close(self) -> None:
        """Write what is gathered and refuse new posts (at shutdown, before the pool closes)."""
        self._closing = True
        await self._batches.close()
        while self._again:
            await asyncio.gather(*self._again)

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
            if len(batch) == 1 or (failed.sqlstate or "")[:2] not in _ONE_POSTS_FAULT:
                raise failed
            # One post's values failed the whole statement (nothing was inserted): each
            # alone, so only that request gets the error.
            return [self._alone(new) for new in batch]
        took = time.perf_counter() - started
        written: list[_Written | Exception] = []
        for new, post in zip(batch, posts, strict=True):
            if post is None:
                written.append(self._alone(new))
            else:
                # Here, not in the route: the post is committed even if its request is gone.
                self._cache.wrote_post(post.id, post.author_id)
                written.append(_Written(post, position, took))
        return written

    def _alone(self, new: NewPost) -> _Written:
        """`new` written again on its own, in the background: its request waits for it,
        the other requests of its batch get their answers now."""
        again = asyncio.ensure_future(self._one(new))
        self._again.add(again)
        again.add_done_callback(self._again.discard)
        return _Written(None, None, 0.0, again)

    async def _one(self, new: NewPost) -> _Written | Exception:
        """One post alone (posts/insert_post.sql): it waits for a locked author."""
        started = time.perf_counter()
        session = Session(self._db)
        try:
            post = await repository.insert_one(session, new)
        except Exception as exc:
            return exc
        finally:
            position = await session.close()
        if post is not None:
            self._cache.wrote_post(post.id, post.author_id)
        return _Written(post, position, time.perf_counter() - started)


def post_writes_of(request: Request[Any, Any, Any]) -> PostWrites | None:
    """The worker's PostWrites; None when RAWPOST_WRITE_COALESCE_MS is 0."""
    writes: PostWrites | None = request.app.state.post_writes
    return writes
