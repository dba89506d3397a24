"""The rate-limit table shared by worker processes, the Redis store, keys and headers."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from service.config import SettingsError, load_settings
from service.ratelimit import Hit, Outcome, Policy, RateLimits, rate_headers
from service.ratelimit import store as store_module
from service.ratelimit.store import Store
from service.ratelimit.table import PROBES, SLOTS, Table
from tests.helpers import free_port
from tests.support.redis import RedisServer


def test_exactly_the_limit_passes_in_a_window_then_a_new_window_starts(tmp_path: Path) -> None:
    table = Table(str(tmp_path / "t"))
    counts = [table.hit("api:a", 60, now=100.0 + i * 0.1) for i in range(5)]
    assert [c.requests for c in counts] == [1, 2, 3, 4, 5]
    assert counts[-1].reset == pytest.approx(60 - 0.4)
    assert table.hit("api:b", 60, now=101.0).requests == 1  # another key, its own count
    assert table.hit("api:a", 60, now=160.0) == Hit(1, 60)  # the window ended at 160
    table.close()


def test_two_openings_of_one_file_share_counts_and_salt(tmp_path: Path) -> None:
    first, second = Table(str(tmp_path / "t")), Table(str(tmp_path / "t"))
    assert first.key_hash("k") == second.key_hash("k")
    assert first.hit("k", 60, now=1.0).requests == 1
    assert second.hit("k", 60, now=2.0).requests == 2
    assert Table(str(tmp_path / "other")).key_hash("k") != first.key_hash("k")
    private = Table()  # outside `rawpost serve`: a private, unlinked file
    assert private.hit("k", 60, now=1.0).requests == 1


def _hammer(path: str, hits: int) -> None:
    table = Table(path)
    for _ in range(hits):
        table.hit("api:shared", 3600)


def test_concurrent_processes_lose_no_count(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_hammer, args=(path, 2000)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert Table(path).hit("api:shared", 3600).requests == 4 * 2000 + 1


def test_expired_slots_are_reused_and_a_full_neighbourhood_evicts_the_soonest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Table(str(tmp_path / "t"))
    # Every key in the same neighbourhood: the worst case a salted hash prevents.
    monkeypatch.setattr(table, "key_hash", lambda key: 1 + int(key.split(":")[1]) * SLOTS)
    for i in range(PROBES):
        table.hit(f"k:{i}", 60 + i, now=0.0)
    assert table.evictions == 0
    table.hit("k:99", 60, now=0.0)  # every slot live: the one ending soonest is taken
    assert table.evictions == 1
    assert table.hit("k:0", 60, now=1.0).requests == 1  # it was k:0's; it starts afresh
    assert table.hit("k:99", 60, now=200.0).requests == 1  # after expiry: reused, no eviction


def _limits(**env: str) -> RateLimits:
    return RateLimits(load_settings(environ={"RAWPOST_JWT_SECRET": "x" * 40, **env}))


def _scope(peer: str, forwarded: list[str] = (), user: Any = None) -> Any:  # type: ignore[assignment]
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"type": "http", "client": (peer, 1234), "headers": headers, "user": user}


def test_the_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    untrusting = _limits()
    assert untrusting.client_address(_scope("203.0.113.9", ["1.2.3.4"])) == "203.0.113.9"
    limits = _limits(RAWPOST_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1")
    # A forged header from a client that is not a proxy: ignored.
    assert limits.client_address(_scope("203.0.113.9", ["1.2.3.4"])) == "203.0.113.9"
    # From a trusted proxy: the right-most address that is not a trusted proxy.
    chain = ["6.6.6.6, 198.51.100.7", "10.1.2.3"]
    assert limits.client_address(_scope("127.0.0.1", chain)) == "198.51.100.7"
    assert limits.client_address(_scope("10.0.0.1", ["::ffff:198.51.100.7"])) == "198.51.100.7"
    assert limits.client_address(_scope("127.0.0.1")) == "127.0.0.1"  # no header
    assert limits.client_address(_scope("127.0.0.1", ["10.0.0.2"])) == "10.0.0.2"


def test_the_caller_key_is_the_user_when_a_token_was_valid() -> None:
    class User:
        id = "u-1"

    limits = _limits()
    assert limits.caller_key(_scope("1.2.3.4", user=User())) == "user:u-1"
    assert limits.caller_key(_scope("1.2.3.4")) == "address:1.2.3.4"


def test_headers_follow_the_ietf_draft() -> None:
    api = Policy("api", 1200, 60, "")
    login = Policy("login", 10, 60, "")
    headers = dict(rate_headers([Outcome(api, Hit(3, 41.2)), Outcome(login, Hit(12, 0.2))]))
    assert headers[b"ratelimit-policy"] == b'"api";q=1200;w=60, "login";q=10;w=60'
    assert headers[b"ratelimit"] == b'"api";r=1197;t=42, "login";r=0;t=1'


def test_settings_take_a_number_or_off_and_name_the_variable() -> None:
    settings = load_settings(
        environ={"RAWPOST_RATE_LIMIT": "OFF", "RAWPOST_SIGNUP_RATE_LIMIT": "3"}
    )
    assert (settings.rate_limit, settings.login_rate_limit, settings.signup_rate_limit) == (
        None,
        10,
        3,
    )
    for env, name in [
        ({"RAWPOST_RATE_LIMIT": "lots"}, "RAWPOST_RATE_LIMIT"),
        ({"RAWPOST_LOGIN_RATE_LIMIT": "0"}, "RAWPOST_LOGIN_RATE_LIMIT"),
        ({"RAWPOST_TRUSTED_PROXIES": "10.0.0.0/8, proxy"}, "RAWPOST_TRUSTED_PROXIES"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ]:
        with pytest.raises(SettingsError, match=name):
            load_settings(environ=env)


def _failures() -> float:
    value = REGISTRY.get_sample_value("rawpost_rate_limit_redis_failures_total")
    assert value is not None
    return value


def test_redis_counts_across_stores_in_one_round_trip_window(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def run() -> list[Hit]:
        a, b = Store(Table(), redis_server.url), Store(Table(), redis_server.url)
        try:
            return [await a.hit("api:x", 60), await b.hit("api:x", 60), await a.hit("api:y", 2)]
        finally:
            await a.close()
            await b.close()

    first, second, other = asyncio.run(run())
    assert (first.requests, second.requests, other.requests) == (1, 2, 1)
    assert 59 < second.reset <= 60 and 1 < other.reset <= 2


def test_redis_down_falls_back_to_the_table_and_recovers(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "RETRY_REDIS_AFTER", 0.0)

    async def run() -> None:
        store = Store(Table(), redis_server.url)
        try:
            assert (await store.hit("api:z", 60)).requests == 1  # Redis
            redis_server.kill()
            before = _failures()
            assert (await store.hit("api:z", 60)).requests == 1  # the table's own count
            assert (await store.hit("api:z", 60)).requests == 2
            assert _failures() == before + 2
            redis_server.start()  # same port, empty
            assert (await store.hit("api:z", 60)).requests == 1  # Redis again
            assert (await store.hit("api:z", 60)).requests == 2
            assert _failures() == before + 2
        finally:
            await store.close()

    asyncio.run(run())


def test_an_unreachable_redis_costs_no_wait() -> None:
    async def run() -> float:
        store = Store(Table(), f"redis://127.0.0.1:{free_port()}/0")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(50):
            await store.hit("api:w", 60)
        await store.close()
        return loop.time() - started

    assert asyncio.run(run()) < 1.0
