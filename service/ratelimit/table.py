"""The instance's rate-limit counts: a fixed-size table in a memory-mapped file that
every worker process maps, one `fcntl.flock` around each check.

Why hand-written: Litestar's RateLimitMiddleware and the `limits` library's memory
storage count per process (N workers let N times the limit through: Litestar issue
4700), and every library that shares counts between processes does it through a server
(Redis, memcached). A file every worker maps needs no server and costs one lock, a hash
and a few struct reads per check (docs/performance.md, "Rate limits").

Algorithm: a fixed window per key. A key's first request opens a window of `window`
seconds; its requests are counted in it (those refused too); the first request after
the window has ended opens a new one. Exactly `limit` requests pass in each window,
whichever worker answers them.

Layout: a header (magic, a random salt), then SLOTS slots of 24 bytes: the key's
64-bit hash (0: never used), the end of its window (CLOCK_MONOTONIC seconds, one clock
for every process of the machine), its count. A key lives in one of the PROBES slots
that follow its hash (linear probing). A slot whose window has ended is reused; when
all PROBES are live, the one ending soonest is taken over (its key starts afresh: a
caller can only gain from it, and only after about SLOTS live keys). The hash is keyed
with the file's salt, so nobody can choose keys that crowd out another's slots.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import secrets
import struct
import tempfile
import time
from typing import NamedTuple

SLOTS = 1 << 17  # 3 MiB of slots
PROBES = 16
_MASK = SLOTS - 1
_MAGIC = b"rawpost-rate-limits-v1\0\0"  # 24 bytes
_SALT_SIZE = 16
_HEADER = 64
_SLOT = struct.Struct("<QdI4x")
_COUNT = struct.Struct("<I")
_COUNT_OFFSET = 16
_MAX_COUNT = 2**32 - 1
SIZE = _HEADER + SLOTS * _SLOT.size
_HASHES_KEPT = 10_000


class Hit(NamedTuple):
    """A key's count in its current window (this request included), and the seconds
    until that window ends."""

    requests: int
    reset: float


class Table:
    """The table in the file at `path` (created if missing; shared with every process
    that opens the same path), or in a private file when `path` is None."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            fd, private = tempfile.mkstemp(prefix="rawpost-rate-limits-")
            os.unlink(private)  # only this process's descriptor keeps it
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)  # zero-filled: every slot unused
            self._map = mmap.mmap(fd, SIZE)
            if self._map[: len(_MAGIC)] != _MAGIC:
                self._map[len(_MAGIC) : len(_MAGIC) + _SALT_SIZE] = secrets.token_bytes(_SALT_SIZE)
                self._map[: len(_MAGIC)] = _MAGIC
            self._salt = bytes(self._map[len(_MAGIC) : len(_MAGIC) + _SALT_SIZE])
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.evictions = 0  # live keys taken over by this process (a full neighbourhood)
        self._hashes: dict[str, int] = {}  # recent keys' hashes: a keyed hash costs 1 us

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def key_hash(self, key: str) -> int:
        if (known := self._hashes.get(key)) is not None:
            return known
        if len(self._hashes) >= _HASHES_KEPT:
            self._hashes.clear()
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        h = self._hashes[key] = int.from_bytes(digest, "little") or 1  # 0: an unused slot
        return h

    def hit(self, key: str, window: float, now: float | None = None) -> Hit:
        """Count one request of `key`; one lock, one pass over at most PROBES slots."""
        h = self.key_hash(key)
        m = self._map
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if now is None:  # read under the lock: every process's clock goes one way
                now = time.monotonic()
            first = h & _MASK
            free = -1
            soonest, soonest_end = -1, float("inf")
            for i in range(PROBES):
                offset = _HEADER + ((first + i) & _MASK) * _SLOT.size
                slot_key, end, count = _SLOT.unpack_from(m, offset)
                if slot_key == h:
                    if end > now:
                        count = min(count + 1, _MAX_COUNT)
                        _COUNT.pack_into(m, offset + _COUNT_OFFSET, count)
                        return Hit(count, end - now)
                    free = offset  # its window ended: open the next one in place
                    break
                if slot_key == 0:  # never used: the key is not further on
                    if free < 0:
                        free = offset
                    break
                if end <= now:
                    if free < 0:
                        free = offset
                elif end < soonest_end:
                    soonest, soonest_end = offset, end
            if free < 0:
                free = soonest
                self.evictions += 1
            _SLOT.pack_into(m, free, h, now + window, 1)
            return Hit(1, window)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
