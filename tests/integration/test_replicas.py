"""Read replicas on a real streaming standby (pg_basebackup -R of the test's own primary):
where each kind of request runs, Consistency-Token, the lag bound, failures on the
standby. The reads are signed in (an admin's token): the in-process cache keeps only
answers to reads without a token, and these must reach the database."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from service.app import create_app
from service.config import Settings, load_settings
from service.db.pool import Database, create_pool
from service.db.replicas import Replicas, replica_names
from service.db.session import Session
from service.sql import Query
from tests.helpers import (
    PASSWORD,
    TEST_ENV,
    Client,
    bearer,
    body_of,
    cache_caught_up,
    insert_admin,
    mint_token,
)
from tests.support.postgres import DedicatedPostgres, dedicated_postgres
from tests.support.replica import Standby, standby_of


@pytest.fixture(scope="module")
def primary() -> Iterator[DedicatedPostgres]:
    with dedicated_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def primary_url(primary: DedicatedPostgres) -> str:
    return primary.database("rawpost_replicas")


@pytest.fixture(scope="module")
def admin(primary_url: str) -> dict[str, str]:
    """An admin's Authorization header (the admin is on the primary before the standby)."""
    return bearer(mint_token(insert_admin(primary_url)))


@pytest.fixture(scope="module")
def module_standby(
    primary: DedicatedPostgres, primary_url: str, admin: dict[str, str]
) -> Iterator[Standby]:
    with standby_of(primary) as server:
        yield server


@pytest.fixture
def standby(module_standby: Standby, primary_url: str) -> Iterator[Standby]:
    """The module's standby, running, replaying and caught up; left that way."""
    if not module_standby.running():
        module_standby.start()
    module_standby.resume_replay()
    module_standby.wait_caught_up(primary_url)
    yield module_standby
    if not module_standby.running():
        module_standby.start()
    module_standby.resume_replay()


def replica_settings(primary_url: str, replica_url: str, **overrides: Any) -> Settings:
    return load_settings(
        environ=TEST_ENV,
        overrides={
            "database_url": primary_url,
            "replica_urls": [replica_url],
            "pool_min_size": 1,
            "startup_timeout": 5,
            **overrides,
        },
    )


def wait_takes_reads(client: Client, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        replicas = body_of(client.get("/health/ready"), 200)["replicas"]
        if replicas and replicas[0]["takes_reads"]:
            return
        assert time.monotonic() < deadline, f"the replica never took reads: {replicas}"
        time.sleep(0.02)


@contextlib.contextmanager
def replica_client(settings: Settings) -> Iterator[Client]:
    with TestClient(app=create_app(settings)) as client:
        wait_takes_reads(client)
        yield client


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reads(pool: str) -> float:
    return sample("rawpost_replica_reads_total", pool=pool)


def fallbacks(reason: str) -> float:
    return sample("rawpost_replica_fallbacks_total", reason=reason)


def sign_up(client: Client, email: str) -> tuple[dict[str, Any], str]:
    response = client.post("/api/users", json={"email": email, "name": "R", "password": PASSWORD})
    user = body_of(response, 201)
    return user, response.headers["consistency-token"]


def test_reads_go_to_the_replica_writes_and_token_routes_to_the_primary(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    settings = replica_settings(primary_url, standby.url("rawpost_replicas"), replica_max_lag=30)
    name = replica_names(settings.replica_urls)[0]
    with replica_client(settings) as client:
        before = reads(name)
        assert body_of(client.get("/api/users?limit=1", headers=admin), 200)["items"]
        assert reads(name) == before + 1

        standby.pause_replay()
        user, token = sign_up(client, "paused@replica.test")
        assert len(token) == 16 and int(token, 16) > 0
        path = f"/api/users/{user['id']}"
        # The standby has not replayed the sign-up: a read without the token is its 404.
        assert client.get(path, headers=admin).status_code == 404
        # With the token the primary answers, after waiting RAWPOST_REPLICA_WAIT.
        behind = fallbacks("behind")
        started = time.monotonic()
        assert body_of(client.get(path, headers={**admin, "Consistency-Token": token}), 200)
        assert time.monotonic() - started >= settings.replica_wait
        assert fallbacks("behind") == behind + 1

        # Sign-in and the caller look-up behind every token run on the primary: the
        # standby does not know this user yet.
        signed = client.post(
            "/api/auth/token", json={"email": "paused@replica.test", "password": PASSWORD}
        )
        own = bearer(body_of(signed, 200)["access_token"])
        assert client.get("/api/users/me", headers={**own, "Consistency-Token": token}).is_success
        # Idempotency-Key look-ups run in the write's transaction, on the primary.
        keyed = {"Idempotency-Key": "replica-key-1"}
        post = {"title": "t", "content": "c"}
        first = client.post("/api/posts", json=post, headers={**own, **keyed})
        again = client.post("/api/posts", json=post, headers={**own, **keyed})
        assert body_of(again, 201) == body_of(first, 201)
        assert again.headers["idempotent-replayed"] == "true"
        assert "consistency-token" in again.headers

        # A failed write answers no token; neither does a read.
        conflict = client.post(
            "/api/users", json={"email": "paused@replica.test", "name": "R", "password": PASSWORD}
        )
        assert conflict.status_code == 409 and "consistency-token" not in conflict.headers
        assert "consistency-token" not in client.get(path, headers=admin).headers

        standby.resume_replay()
        # Replayed: the token's read is the replica's again, without waiting.
        standby.wait_caught_up(primary_url)
        time.sleep(3 * settings.replica_poll_interval)
        before = reads(name)
        assert body_of(client.get(path, headers={**admin, "Consistency-Token": token}), 200)
        assert reads(name) == before + 1


def test_ready_stays_ready_and_reads_go_to_the_primary_while_the_replica_is_down(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    settings = replica_settings(primary_url, standby.url("rawpost_replicas"))
    name = replica_names(settings.replica_urls)[0]
    with replica_client(settings) as client:
        standby.stop()
        failed = 0
        for _ in range(20):  # the first may meet the dead connections of the pool
            failed += not client.get("/api/users?limit=5", headers=admin).is_success
        assert failed == 0
        ready = body_of(client.get("/health/ready"), 200)
        assert ready["status"] == "ready"
        assert ready["replicas"][0]["state"] == "down"
        assert ready["replicas"][0]["takes_reads"] is False
        before = reads(name)
        unavailable = fallbacks("unavailable")
        assert client.get("/api/users?limit=5", headers=admin).is_success
        assert (reads(name), fallbacks("unavailable")) == (before, unavailable + 1)

        standby.start()
        wait_takes_reads(client)
        assert client.get("/api/users?limit=5", headers=admin).is_success
        assert reads(name) == before + 1


def test_the_service_starts_with_a_replica_that_does_not_answer(
    primary_url: str, admin: dict[str, str]
) -> None:
    from tests.helpers import free_port

    settings = replica_settings(primary_url, f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with TestClient(app=create_app(settings)) as client:
        assert body_of(client.get("/api/users?limit=1", headers=admin), 200)["items"]
        ready = body_of(client.get("/health/ready"), 200)
        assert ready["status"] == "ready"
        assert ready["replicas"][0]["state"] == "down"


def test_untokened_reads_stay_within_the_lag_bound_while_replay_is_paused(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    max_lag = 0.3
    settings = replica_settings(
        primary_url, standby.url("rawpost_replicas"), replica_max_lag=max_lag
    )
    name = replica_names(settings.replica_urls)[0]
    with replica_client(settings) as client:
        user, _token = sign_up(client, "lag@replica.test")
        path = f"/api/users/{user['id']}"
        standby.wait_caught_up(primary_url)
        acked: dict[int, float] = {}  # version -> when its write was acknowledged
        worst = 0.0
        on_replica = reads(name)
        unavailable = fallbacks("unavailable")
        paused = math.inf
        version = 0
        while time.monotonic() - paused < 6 * max_lag:  # well past the bound
            if version == 10:
                standby.pause_replay()
                paused = time.monotonic()
            version += 1
            body_of(client.patch(path, json={"name": f"v{version}"}, headers=admin), 200)
            acked[version] = time.monotonic()
            asked = time.monotonic()
            seen = int(body_of(client.get(path, headers=admin), 200)["name"].removeprefix("v") or 0)
            if seen < version:
                # Stale: the first version it lacks had been acknowledged this long ago.
                worst = max(worst, asked - acked[seen + 1])
        # The bound, plus one poll interval, plus slack for the poll and the read themselves
        # on a busy 2-core machine (0.15 s failed once under a parallel run). Replay stays
        # paused for 6 x the bound, so a replica that kept reads past it would show 1.8 s.
        assert worst <= max_lag + settings.replica_poll_interval + 0.3, worst
        assert worst > 0  # the replica did answer stale reads while it was within the bound
        assert reads(name) > on_replica
        assert fallbacks("unavailable") > unavailable  # and was skipped past it
        lag = body_of(client.get("/health/ready"), 200)["replicas"][0]
        assert lag["takes_reads"] is False and lag["lag_seconds"] > max_lag


def read_query(sql: str) -> Query:
    return Query(name="test", path="test", sql=sql, params=(), source=sql, digest="", readonly=True)


async def _session_scenario(settings: Settings, primary_url: str, standby: Standby) -> None:
    pool = await create_pool(settings)
    db = Database(pool=pool, settings=settings, migrations=(), born={})
    db.replicas = replicas = Replicas.configured(settings)
    assert replicas is not None
    replica = replicas.members[0]
    slow = read_query("SELECT count(*) FROM users, pg_sleep(0.5)")
    count = read_query("SELECT count(*) FROM users")
    try:
        async with replicas.running():
            for _ in range(500):
                if replica.usable(settings.replica_max_lag):
                    break
                await asyncio.sleep(0.01)
            # use_primary(): a row only the primary has is found.
            primary = await asyncpg.connect(primary_url)
            standby.pause_replay()
            await primary.execute(
                "INSERT INTO users (email, name) VALUES ('only-primary@replica.test', 'P')"
            )
            on_replica = Session(db)
            on_replica.read_from_replicas(replicas)
            forced = Session(db)
            forced.read_from_replicas(replicas)
            forced.use_primary()
            try:
                assert await forced.fetchval(count) == await on_replica.fetchval(count) + 1
            finally:
                await on_replica.close()
                await forced.close()
            standby.resume_replay()
            standby.wait_caught_up(primary_url)

            # A recovery conflict (40001) on the standby: the read runs on the primary.
            standby.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
            standby.execute("SELECT pg_reload_conf()")
            error = fallbacks("error")
            session = Session(db)
            session.read_from_replicas(replicas)
            try:
                task = asyncio.create_task(session.fetchval(slow))
                await asyncio.sleep(0.2)  # the standby's query holds its lock on users
                await primary.execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; COMMIT")
                assert await task == await primary.fetchval("SELECT count(*) FROM users")
            finally:
                await session.close()
            assert fallbacks("error") == error + 1
            assert replica.state == "standby"  # a conflict is no outage
            await primary.close()
    finally:
        standby.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        standby.execute("SELECT pg_reload_conf()")
        await pool.close()


def test_use_primary_and_a_recovery_conflict_run_reads_on_the_primary(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    settings = replica_settings(primary_url, standby.url("rawpost_replicas"))
    asyncio.run(_session_scenario(settings, primary_url, standby))


def test_the_opt_in_cookie_carries_the_token_for_clients_that_keep_cookies(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    settings = replica_settings(
        primary_url, standby.url("rawpost_replicas"), replica_max_lag=30, consistency_cookie=True
    )
    with replica_client(settings) as client:
        standby.pause_replay()
        user, token = sign_up(client, "cookie@replica.test")
        assert client.cookies.get("rawpost_consistency") == token
        path = f"/api/users/{user['id']}"
        # No header: the cookie the client kept sends the read to the primary.
        assert body_of(client.get(path, headers=admin), 200)["id"] == user["id"]
        client.cookies.clear()
        assert client.get(path, headers=admin).status_code == 404  # the standby's answer


def test_a_replica_url_that_is_not_a_standby_gets_no_reads(
    primary_url: str, admin: dict[str, str]
) -> None:
    settings = replica_settings(primary_url, primary_url)
    with TestClient(app=create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while (state := client.get("/health/ready").json()["replicas"][0])["state"] == "down":
            assert time.monotonic() < deadline, state
            time.sleep(0.02)
        assert state["state"] == "not a standby" and state["takes_reads"] is False
        unavailable = fallbacks("unavailable")
        assert body_of(client.get("/api/users?limit=1", headers=admin), 200)["items"]
        assert fallbacks("unavailable") == unavailable + 1


def test_the_read_cache_is_filled_from_the_primary_never_from_a_lagging_standby(
    primary_url: str, standby: Standby, admin: dict[str, str]
) -> None:
    """Anonymous reads are cached; a miss reads the primary. With replay paused, a post
    changed on the primary is read back new at once: the standby's old row is never
    kept (it would be served until the TTL)."""
    settings = replica_settings(primary_url, standby.url("rawpost_replicas"), replica_max_lag=30)
    with replica_client(settings) as client:
        user, _ = sign_up(client, "cached@replica.test")
        post = body_of(
            client.post(
                "/api/posts",
                json={"title": "old", "content": "c", "published": True},
                headers=bearer(mint_token(user["id"])),
            ),
            201,
        )
        standby.wait_caught_up(primary_url)
        standby.pause_replay()
        changed = client.patch(f"/api/posts/{post['id']}", json={"title": "new"}, headers=admin)
        assert body_of(changed, 200)["title"] == "new"
        cache = client.app.state.cache
        # Trusted (else the reads bypass it, to the standby), and past the PATCH's own
        # change (else that change, heard late, drops the entry once more).
        cache_caught_up(client)
        misses = cache.counts.misses
        for _ in range(3):  # a miss, then hits: all the primary's version
            assert body_of(client.get(f"/api/posts/{post['id']}"), 200)["title"] == "new"
        assert cache.counts.misses == misses + 1
        # The same read signed in is the standby's, still the old row: replay is paused.
        assert body_of(client.get(f"/api/posts/{post['id']}", headers=admin), 200)["title"] == "old"
