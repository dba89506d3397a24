"""The cache of public reads: answers that do not depend on the caller, kept in each
worker's memory (docs/caching.md).

Cached: the first page of `GET /api/posts` (with or without `author_id`), and, without a
token, the first page of `GET /api/users/{id}/posts` and single posts and users (with
or without `?include=posts`). Everything else, and any read with a `Consistency-Token`,
goes to the database. An entry's tags name the rows it shows; a change to a row drops
every entry tagged with it:

| change                   | drops                                                 |
|--------------------------|-------------------------------------------------------|
| post P by author A       | P, A's lists and embedded posts, the feed             |
| user U                   | U, every answer showing U (U's posts, lists), the feed |

Changes arrive three ways: this worker's own writes drop their entries before the
answer leaves (`wrote_post`, `wrote_user`); the instance's other workers' writes arrive
through the bus (`service.cache.bus`) before the next lookup; everything else (other
instances, the CLI, psql) through the database's change log, polled 20 times a second
(`service.cache.channel`).
While the channel is not trusted, every read bypasses the cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response

from service.background import in_background
from service.cache.bus import Bus
from service.cache.channel import Channel
from service.cache.store import Store
from service.conditional import etag, tagged
from service.config import CACHE_BUS_ENV, Settings
from service.db.replicas import requested_position
from service.db.session import Session
from service.metrics import (
    CACHE_CHANNEL_UP,
    CACHE_EVICTIONS,
    CACHE_INVALIDATIONS,
    CACHE_LOOKUPS,
    CACHE_SIZE,
)

log = logging.getLogger("rawpost.cache")

S = TypeVar("S", bound=msgspec.Struct)
Tags = tuple[str, ...]

FEED = "feed"
ANY_AUTHOR = "posts-of"  # every list or embed of one author's posts


def user_tags(user_id: UUID) -> Tags:
    return (f"u:{user_id}",)


def author_tags(author_id: UUID) -> Tags:
    """An answer listing the author's posts (with the author's name)."""
    return (f"u:{author_id}", f"posts-of:{author_id}", ANY_AUTHOR)


def post_tags(post_id: UUID, author_id: UUID) -> Tags:
    return (f"p:{post_id}", f"u:{author_id}")


def _drops(event: str) -> Tags | None:
    """The tags a change drops; None: everything."""
    kind, _, rest = event.partition(":")
    if kind == "p":
        post, _, author = rest.partition(":")
        return (f"p:{post}", f"posts-of:{author}" if author else ANY_AUTHOR, FEED)
    if kind == "u":
        return (f"u:{rest}", FEED)
    return None


class Counts(msgspec.Struct):
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    invalidations: int = 0  # changes applied
    dropped: int = 0  # entries they dropped


class ReadCache:
    """One worker's cache; `serving()` runs its channel for the app's lifespan."""

    def __init__(self, settings: Settings, bus_path: str | None = None) -> None:
        self.enabled = settings.cache
        self._cookie = settings.consistency_cookie
        self.store = Store(settings.cache_max_mb * 1024 * 1024, settings.cache_ttl)
        self.counts = Counts()
        self._published = Counts()
        self._evictions_published = 0
        self.channel: Channel | None = None
        self._bus = Bus(bus_path) if self.enabled and bus_path else None
        if not self.enabled or not settings.database_url:
            return
        self.channel = Channel(
            settings.database_url,
            connect_timeout=settings.connect_timeout,
            slow_query_ms=settings.slow_query_ms,
            on_event=self.heard,
            on_lost=self._lost,
            on_ready=self._ready,
        )

    @classmethod
    def for_worker(cls, settings: Settings) -> ReadCache:
        return cls(settings, os.environ.get(CACHE_BUS_ENV) or None)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        try:
            if self.channel is None:
                yield
                return
            async with in_background(self.channel.run(), "rawpost-cache-channel"):
                yield
        finally:
            if self._bus is not None:
                self._bus.close()

    def publish(self) -> None:
        """Add what was counted since the last call to the metrics (once a second: a
        counter's update in the multiprocess files costs more than the cache's hit)."""
        now, then = self.counts, self._published
        for result, count, before in (
            ("hit", now.hits, then.hits),
            ("miss", now.misses, then.misses),
            ("bypass", now.bypasses, then.bypasses),
        ):
            if count > before:
                CACHE_LOOKUPS.labels(result).inc(count - before)
        if now.invalidations > then.invalidations:
            CACHE_INVALIDATIONS.labels("changes").inc(now.invalidations - then.invalidations)
        if now.dropped > then.dropped:
            CACHE_INVALIDATIONS.labels("entries").inc(now.dropped - then.dropped)
        if self.store.evictions > self._evictions_published:
            CACHE_EVICTIONS.inc(self.store.evictions - self._evictions_published)
            self._evictions_published = self.store.evictions
        self._published = msgspec.structs.replace(now)
        CACHE_SIZE.labels("entries").set(len(self.store))
        CACHE_SIZE.labels("bytes").set(self.store.bytes)
        CACHE_CHANNEL_UP.set(1 if self.channel is not None and self.channel.trusted() else 0)

    # --- changes -------------------------------------------------------------------

    def heard(self, payload: str) -> None:
        """A notification: one or more changes, comma-separated."""
        for event in payload.split(","):
            self._apply(event)

    def _apply(self, event: str) -> None:
        tags = _drops(event)
        self.counts.invalidations += 1
        self.counts.dropped += self.store.clear() if tags is None else self.store.drop(tags)

    def _changed(self, event: str) -> None:
        if not self.enabled:
            return
        self._apply(event)
        if self._bus is not None:
            self._bus.publish(event)

    def wrote_post(self, post_id: UUID, author_id: UUID | None) -> None:
        """This worker changed (or may have changed) the post: drop it here and tell the
        instance's other workers, before the answer leaves."""
        self._changed(f"p:{post_id}:{author_id or ''}")

    def wrote_user(self, user_id: UUID) -> None:
        self._changed(f"u:{user_id}")

    def _lost(self) -> None:
        log.warning("cache invalidation channel lost: reads bypass the cache")
        self.store.clear()

    def _ready(self) -> None:
        self.store.clear()  # changes made while nobody listened are unknown
        log.info("cache invalidation channel listening: cache on")

    # --- reads ---------------------------------------------------------------------

    def usable(self, request: Request[Any, Any, Any]) -> bool:
        """Whether this read may be answered from, and fill, the cache."""
        if not self.enabled:
            return False
        if self._bus is not None and self._bus.pending():
            for event in self._bus.read():
                self._apply(event)
        if (
            self.channel is None
            or not self.channel.trusted()
            or _names_a_write(request, self._cookie)
        ):
            self.counts.bypasses += 1
            return False
        return True

    async def single(
        self,
        request: Request[Any, Any, Any],
        conn: Session,
        key: str | None,
        load: Callable[[], Awaitable[S]],
        tags: Callable[[S], Tags],
    ) -> Response[Any]:
        """A single user or post, with its ETag (304 on If-None-Match)."""
        if key is None or not self.usable(request):
            return tagged(await load(), request=request)
        entry = self.store.get(key)
        if entry is not None:
            self.counts.hits += 1
            return tagged(entry.body, request=request, tag=entry.etag)
        self.counts.misses += 1
        start = self.store.seq
        # A standby may not have replayed a change this worker already heard of: what is
        # kept is read from the primary (docs/caching.md).
        conn.use_primary()
        value = await load()
        body = msgspec.json.encode(value)
        tag = etag(body)
        if self.channel is not None and self.channel.trusted():
            self.store.put(key, body, tag, tags(value), start)
        return tagged(body, request=request, tag=tag)

    async def page(
        self,
        request: Request[Any, Any, Any],
        conn: Session,
        key: str | None,
        load: Callable[[], Awaitable[msgspec.Struct]],
        tags: Tags,
    ) -> Response[Any]:
        """A page of a list."""
        if key is None or not self.usable(request):
            return Response(content=await load())
        entry = self.store.get(key)
        if entry is not None:
            self.counts.hits += 1
            return Response(content=msgspec.Raw(entry.body))
        self.counts.misses += 1
        start = self.store.seq
        # A standby may not have replayed a change this worker already heard of: what is
        # kept is read from the primary (docs/caching.md).
        conn.use_primary()
        body = msgspec.json.encode(await load())
        if self.channel is not None and self.channel.trusted():
            self.store.put(key, body, None, tags, start)
        return Response(content=msgspec.Raw(body))


def _names_a_write(request: Request[Any, Any, Any], cookie: bool) -> bool:
    # A client that names the write it must see (read replicas, docs/scaling.md), by
    # header or by the opt-in cookie, gets the database, whatever this worker has heard.
    if any(name == b"consistency-token" for name, _ in request.scope["headers"]):
        return True
    return cookie and requested_position(request.scope, cookie=True) > 0


def cache_of(request: Request[Any, Any, Any]) -> ReadCache:
    cache: ReadCache = request.app.state.cache
    return cache
