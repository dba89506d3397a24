"""The entries of one worker's read cache: an LRU bounded in bytes, with a TTL, whose
entries are dropped by tag (the rows an answer shows).

Plain Python on one event loop: no locks. `Store.put` is told the invalidation sequence
number it read before its database read began (`start`), and refuses to keep an answer
that a change heard since may have made stale; so an entry is only ever older than the
newest change this worker has heard of by the time the change takes to arrive.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

import msgspec

# Bytes counted for an entry besides its body and key: the Entry object, the LRU's link,
# the tag index's set slots and tag strings (measured: docs/caching.md, "Memory").
ENTRY_OVERHEAD = 800
# Tags dropped are remembered (to refuse answers read before the drop) up to this many;
# then the memory is reset and every read in flight is refused once.
MAX_DROPPED = 50_000


class Entry(msgspec.Struct):
    body: bytes
    etag: str | None
    tags: tuple[str, ...]
    expires: float  # monotonic
    size: int


class Store:
    """Entries by key, least recently used first."""

    def __init__(self, max_bytes: int, ttl: float) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.bytes = 0
        self.seq = 0  # invalidations applied (and resets): moves on every drop
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._dropped: dict[str, int] = {}  # tag -> seq of its last drop
        self._floor = 0  # answers read before this seq are refused (after a reset)
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: str, body: bytes, etag: str | None, tags: tuple[str, ...], start: int
    ) -> bool:
        """Keep `body` under `key` unless a drop since `start` touched one of `tags`."""
        if start < self._floor or any(self._dropped.get(t, -1) > start for t in tags):
            return False
        size = len(body) + len(key) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self._remove(key)
        self._entries[key] = Entry(body, etag, tags, time.monotonic() + self.ttl, size)
        self.bytes += size
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while self.bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))
            self.evictions += 1
        return True

    def drop(self, tags: Iterable[str]) -> int:
        """Drop every entry with one of `tags`; returns how many."""
        self.seq += 1
        dropped = 0
        for tag in tags:
            self._dropped[tag] = self.seq
            for key in self._by_tag.pop(tag, ()):
                if key in self._entries:
                    self._remove(key)
                    dropped += 1
        if len(self._dropped) > MAX_DROPPED:
            self._dropped.clear()
            self._floor = self.seq
        return dropped

    def clear(self) -> int:
        """Drop everything, and refuse every answer read before now."""
        dropped = len(self._entries)
        self._entries.clear()
        self._by_tag.clear()
        self._dropped.clear()
        self.bytes = 0
        self.seq += 1
        self._floor = self.seq
        return dropped

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
