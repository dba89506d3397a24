"""Where the counts live: the instance's shared table, or a Redis every instance shares.

With REDIS_URL each check is one round trip: a Lua script (EVALSHA; redis-py loads it
again after a Redis restart) that runs the table's algorithm, a fixed window per key,
atomically. While Redis cannot be reached the instance counts in its own table instead
(limits then hold per instance, not per fleet: docs/security.md, "Rate limits"); after
a failure Redis is tried again after RETRY_REDIS_AFTER seconds, by one request at a time,
so an outage costs requests no waiting.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.ratelimit.table import Hit, Table

log = logging.getLogger("rawpost.ratelimit")

REDIS_TIMEOUT = 0.25  # seconds to connect, and to wait for an answer
RETRY_REDIS_AFTER = 1.0
LOG_EVERY = 10.0  # at most one "Redis unreachable" line per worker this often

REDIS_FAILURES = Counter(
    "rawpost_rate_limit_redis_failures_total",
    "Rate-limit checks that could not reach Redis (REDIS_URL) and were counted in the"
    " instance's own table instead.",
)

# KEYS[1]: the key; ARGV[1]: the window in milliseconds. Returns {count, ms to reset}.
_FIXED_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class Store:
    """Counts requests per key: in Redis when `redis_url` is set and Redis answers, else
    in `table`."""

    def __init__(self, table: Table, redis_url: str | None) -> None:
        self.table = table
        self._redis: aioredis.Redis | None = None
        self.local = not redis_url  # counts only in `table`
        self._script: Any = None
        if redis_url:
            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # a failure falls back at once, never waits
            )
            self._script = self._redis.register_script(_FIXED_WINDOW)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._failures_unlogged = 0
        self._logged_at = -LOG_EVERY

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, key: str, window: int) -> Hit:
        if self._redis is None:
            return self.table.hit(key, window)
        now = time.monotonic()
        if self._down_since is not None and (self._probing or now < self._retry_at):
            return self._fall_back(key, window, now, None)
        self._probing = self._down_since is not None
        try:
            count, ttl_ms = await self._script(keys=[_redis_key(key)], args=[window * 1000])
        except (TimeoutError, RedisError, OSError) as exc:
            return self._fall_back(key, window, time.monotonic(), exc)
        finally:
            self._probing = False
        if self._down_since is not None:
            log.warning(
                "Redis answers again after %.1f s: rate limits are shared again",
                now - self._down_since,
            )
            self._down_since = None
        return Hit(int(count), int(ttl_ms) / 1000)

    def _fall_back(self, key: str, window: int, now: float, exc: BaseException | None) -> Hit:
        REDIS_FAILURES.inc()
        if exc is not None:
            if self._down_since is None:
                self._down_since = now
            self._retry_at = now + RETRY_REDIS_AFTER
        self._failures_unlogged += 1
        if now - self._logged_at >= LOG_EVERY:
            log.warning(
                "Redis unreachable (%s): %d rate-limit checks counted per instance since the"
                " last line; retrying every %.0f s",
                type(exc).__name__ if exc else "still down",
                self._failures_unlogged,
                RETRY_REDIS_AFTER,
            )
            self._logged_at, self._failures_unlogged = now, 0
        return self.table.hit(key, window)


def _redis_key(key: str) -> str:
    # Hashed: emails and addresses stay out of Redis; the same in every instance.
    return "rawpost:rl:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
