"""Rate limits across processes: exactly N a minute pass, not N per worker, for one
instance of two workers (the shared table) and two instances sharing one Redis; Redis
killed and restarted under load."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

from service.ratelimit.store import _redis_key
from tests.helpers import SCRAPER, bearer, insert_admin, mint_token, wait_until
from tests.support.redis import RedisServer
from tests.support.service import Load, Service, report, running_service

LIMIT = 30


def _statuses(
    bases: list[str], requests: int, *, headers: dict[str, str] | None = None
) -> Counter[int]:
    """`requests` GETs spread over `bases`, 8 at a time, each on a fresh connection (so
    the kernel spreads them over the workers too)."""

    def one(n: int) -> int:
        url = f"{bases[n % len(bases)]}/api/users?limit=1"
        return httpx.get(url, headers=headers or {}, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(requests)))


def _started(service: Service) -> None:
    service.wait_status("/health/ready", 200, timeout=60)
    service.wait_all_workers(2, pool_max_size=3)


def test_one_instance_of_two_workers_lets_exactly_the_limit_through(
    db_url: str, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url, workers=2, pool_max_size=3, rate_limit=LIMIT) as service:
        _started(service)
        statuses = _statuses([service.base], 3 * LIMIT)
        assert statuses == {200: LIMIT, 429: 2 * LIMIT}, statuses


def test_two_instances_sharing_redis_let_exactly_the_limit_through(
    db_url: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    settings: dict[str, object] = {
        "workers": 2,
        "pool_max_size": 3,
        "rate_limit": LIMIT,
        "redis_url": redis_server.url,
    }
    with (
        running_service(tmp_path, db_url, **settings) as first,
        running_service(tmp_path, db_url, **settings) as second,
    ):
        _started(first)
        _started(second)
        statuses = _statuses([first.base, second.base], 4 * LIMIT)
        assert statuses == {200: LIMIT, 429: 3 * LIMIT}, statuses


def test_redis_killed_and_restarted_under_load(
    db_url: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    """While Redis is down the instance counts in its own table (every request answered,
    200 or 429, none waits); once Redis is back, it counts there again."""
    with running_service(
        tmp_path,
        db_url,
        workers=2,
        pool_max_size=3,
        rate_limit=LIMIT,
        redis_url=redis_server.url,
    ) as service:
        _started(service)
        store = redis.Redis(port=redis_server.port)
        assert _statuses([service.base], LIMIT + 5) == {200: LIMIT, 429: 5}
        assert store.dbsize() == 1  # the address's count lives in Redis

        with Load(service.base, ["/api/users?limit=1"], threads=4) as load:
            time.sleep(0.5)
            redis_server.kill()
            time.sleep(3)
        report("redis down", load.samples, 0)
        outage = Counter(s.status for s in load.samples)
        assert set(outage) <= {200, 429}, outage  # never a 5xx, never unanswered
        # The instance's own table: exactly LIMIT more for the address, over both workers.
        assert outage[200] == LIMIT, outage
        assert max(s.took for s in load.samples) < 2.0

        with Load(service.base, ["/api/users?limit=1"], threads=4) as load:
            redis_server.start()  # same port, empty
            time.sleep(2)
        report("redis back", load.samples, 0)
        back = Counter(s.status for s in load.samples)
        # The table's count is spent; Redis's fresh window lets LIMIT through at most.
        assert set(back) <= {200, 429} and back[200] <= LIMIT, back

        # Back: a signed-in caller's requests are counted in Redis again, on both workers.
        token = mint_token(insert_admin(db_url, "probe@rawpost.test"))
        user_key = _redis_key(f"api:user:{_user_id(token)}")

        def redis_failures() -> float:
            lines = httpx.get(f"{service.base}/metrics", headers=SCRAPER).text.splitlines()
            name = "rawpost_rate_limit_redis_failures_total "
            found = [line for line in lines if line.startswith(name)]
            return float(found[0].split()[1]) if found else 0.0

        def counted_in_redis() -> bool:
            # A worker still marked down probes Redis with one request; others it answers
            # meanwhile are counted in its table (and in the failures counter). Back means
            # a round of fresh connections, over both workers, with no such fallback.
            _statuses([service.base], 4, headers=bearer(token))
            before, failed = int(store.get(user_key) or 0), redis_failures()
            _statuses([service.base], 20, headers=bearer(token))
            return int(store.get(user_key) or 0) == before + 20 and redis_failures() == failed

        wait_until(counted_in_redis, timeout=15, what="both workers to count in Redis again")
        # And the address's limit applies again, from Redis (a fresh window there).
        store.delete(_redis_key("api:address:127.0.0.1"))
        assert _statuses([service.base], LIMIT + 5) == {200: LIMIT, 429: 5}
        assert redis_failures() > 0
        assert "Redis unreachable" in service.output()
        assert "Redis answers again" in service.output()


def _user_id(token: str) -> str:
    import jwt

    sub: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return sub
