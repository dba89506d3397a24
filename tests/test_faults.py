"""Real faults against a real `rawpost serve` and a real PostgreSQL, loopback only.

Backends killed under load, the server stopped and started under load, the database
down at start-up, the pool held by long statements, SIGTERM with requests in flight,
and keyed POSTs whose client or database connection is cut. Each test is bounded by a
hard time limit and prints its figures (run with -s to see them). Unlike
test_unavailable.py (the app in-process, a relay between it and PostgreSQL), the
service here is a separate process driven over real sockets.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psycopg
import pytest

from tests.faults_helpers import (
    DB,
    Load,
    Sample,
    Service,
    app_backends_waiting_on_locks,
    app_connections,
    count_users,
    dedicated_postgres,
    relay_to,
    report,
    running_service,
    send_and_hang_up,
    terminate,
    terminate_app_backends,
    timed_request,
    users_locked,
    wait_until,
)
from tests.helpers import PASSWORD, bearer, mint_token

HARD_LIMIT_SECONDS = 45


@pytest.fixture(autouse=True)
def hard_time_limit() -> Iterator[None]:
    """No fault test may hang the suite: SIGALRM fails it, and its clean-up still runs."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"fault test exceeded its hard limit of {HARD_LIMIT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def create_user(service: Service, email: str | None = None) -> str:
    response = httpx.post(
        service.base + "/api/users",
        json={
            "email": email or f"{uuid.uuid4().hex[:12]}@example.com",
            "name": "Fault",
            "password": PASSWORD,
        },
        timeout=5,
    )
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


def create_posts(service: Service, author_id: str, count: int) -> None:
    for i in range(count):
        response = httpx.post(
            service.base + "/api/posts",
            json={"title": f"post {i}", "content": "x", "published": True},
            headers=bearer(mint_token(author_id)),
            timeout=5,
        )
        assert response.status_code == 201, response.text


def is_unavailable(sample: Sample) -> bool:
    """A 503 that tells the client when to come back."""
    return sample.status == 503 and (sample.retry_after or "").isdigit()


def in_flight(method: str, url: str, **kwargs: Any) -> tuple[Sample, httpx.Response | None]:
    """One request on its own connection (as a separate client would send it)."""
    with httpx.Client(timeout=10) as client:
        return timed_request(client, method, url, **kwargs)


# --- 1. backends terminated under load ---------------------------------------------------


def test_terminating_every_pooled_connection_under_read_load_fails_no_read(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url, pool_max_size=4, acquire_timeout=2) as service:
        service.wait_status("/health/ready", 200, timeout=30)
        author = create_user(service)
        create_posts(service, author, 3)
        paths = [f"/api/users/{author}", "/api/posts"]
        rounds = killed = 0
        with Load(service.base, paths, threads=4) as load:
            time.sleep(0.3)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                killed += terminate_app_backends(db)
                rounds += 1
                time.sleep(0.15)
        samples = load.samples
        failed = [s for s in samples if s.status != 200]
        report(
            "pg_terminate_backend on every pooled connection under reads",
            samples,
            len(failed),
            rounds=rounds,
            backends_killed=killed,
        )
        assert killed >= rounds, "each round should have found pooled connections to kill"
        assert len(samples) > 100
        assert not failed, failed[:5]


# --- 2. the server stopped and started under load ----------------------------------------


def test_postgres_stopped_and_restarted_under_load_gives_503_then_recovers(
    tmp_path: Path,
) -> None:
    pool_max, acquire, connect = 4, 1.0, 1.0
    with dedicated_postgres() as pg:
        url = pg.database("rawpost_faults")
        with running_service(
            tmp_path,
            url,
            pool_max_size=pool_max,
            acquire_timeout=acquire,
            connect_timeout=connect,
            ready_timeout=0.5,
        ) as service:
            service.wait_status("/health/ready", 200, timeout=30)
            author = create_user(service)
            create_posts(service, author, 3)
            paths = [f"/api/users/{author}", "/api/posts"]
            connections: list[int] = []
            with (
                Load(service.base, paths, threads=4) as load,
                Load(service.base, ["/health/ready"], threads=1, pause=0.05) as ready,
            ):
                with psycopg.connect(url, autocommit=True) as watcher:
                    for _ in range(10):
                        connections.append(app_connections(watcher))
                        time.sleep(0.1)
                stopping = time.monotonic()
                pg.stop("fast")
                stopped = time.monotonic()
                time.sleep(3.0)
                starting = time.monotonic()
                pg.start()
                started = time.monotonic()
                with psycopg.connect(url, autocommit=True) as watcher:
                    while time.monotonic() < started + 3.5:
                        connections.append(app_connections(watcher))
                        time.sleep(0.1)
            api, health = load.samples, ready.samples

        down = [s for s in api if s.started >= stopped and s.ended <= starting]
        settled = [s for s in api if s.started >= started + 1.5]
        broken = [
            s
            for s in api
            if s.status not in (200, 503) or (s.status == 503 and not is_unavailable(s))
        ]
        first_ok = min(s.ended for s in api if s.status == 200 and s.ended >= started) - started
        ready_down = (
            min(s.ended for s in health if s.status == 503 and s.started >= stopping) - stopped
        )
        ready_up = (
            min(s.ended for s in health if s.status == 200 and s.started >= started) - started
        )
        report(
            "PostgreSQL stopped (fast) for 3 s and started again under load",
            api,
            len(broken),
            during_outage=len(down),
            outage_statuses=sorted({s.status for s in down}),
            stop_took=f"{(stopped - stopping) * 1000:.0f}ms",
            first_200_after_restart=f"{first_ok * 1000:.0f}ms",
            ready_503_after_stop=f"{ready_down * 1000:.0f}ms",
            ready_200_after_restart=f"{ready_up * 1000:.0f}ms",
            max_app_connections=max(connections),
            pool_max=pool_max,
        )
        assert not broken, broken[:5]  # never a 500, a 503 without Retry-After, or no answer
        assert len(down) > 20
        assert all(is_unavailable(s) for s in down), [s for s in down if s.status != 503][:5]
        slowest = max(s.took for s in api)
        assert slowest < acquire + connect + 1.0, f"a request took {slowest:.2f} s"
        assert first_ok < 2.0
        assert settled and all(s.status == 200 for s in settled), [
            s for s in settled if s.status != 200
        ][:5]
        assert ready_down < 1.0
        assert all(s.status == 503 for s in health if stopped <= s.started and s.ended <= starting)
        assert ready_up < 2.0
        assert max(connections) <= pool_max


# --- 3. the database down when the service starts ----------------------------------------


def test_service_started_while_the_database_is_down_waits_then_serves(tmp_path: Path) -> None:
    with dedicated_postgres() as pg:
        url = pg.database("rawpost_faults")
        pg.stop("fast")
        with running_service(tmp_path, url, startup_timeout=30, connect_timeout=1) as service:

            def attempts() -> int:
                return service.output().count("database not reachable (attempt")

            waited = wait_until(lambda: attempts() >= 2, timeout=20, what="two connect attempts")
            assert service.process.poll() is None, service.output()[-3000:]
            # Not listening yet: a load balancer sees a refused connection, not a 500.
            assert service.refuses_connections()
            pg.start()
            db_back = time.monotonic()
            serving = service.wait_status("/health/ready", 200, timeout=15)
            seen = attempts()
            report(
                "service started with the database down",
                [],
                0,
                attempts_logged=seen,
                waited_before_db_start=f"{waited:.1f}s",
                ready_after_db_start=f"{(time.monotonic() - db_back):.1f}s",
            )
            assert serving < 8.0  # the longest backoff step (5 s) + connect timeout + margin
            assert "giving up" not in service.output()
            assert service.status_of("/api/users") == 200


# --- 4. the pool held by long statements -------------------------------------------------


def test_pool_held_by_blocked_statements_answers_the_excess_503_within_acquire_timeout(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    pool_max, acquire = 2, 0.5
    with running_service(
        tmp_path, db_url, pool_min_size=pool_max, pool_max_size=pool_max, acquire_timeout=acquire
    ) as service:
        service.wait_status("/health/ready", 200, timeout=30)
        author = create_user(service)
        excess = 10 * pool_max
        paths = [f"/api/users/{author}", "/api/posts"]
        with (
            ThreadPoolExecutor(max_workers=pool_max + excess) as executor,
            users_locked(db_url) as release,
        ):
            holders = [
                executor.submit(in_flight, "GET", f"{service.base}/api/users/{author}")
                for _ in range(pool_max)
            ]
            wait_until(
                lambda: len(app_backends_waiting_on_locks(db)) == pool_max,
                timeout=10,
                what="both pooled connections to block on the lock",
            )
            futures = [
                executor.submit(in_flight, "GET", service.base + paths[i % 2])
                for i in range(excess)
            ]
            overflow = [f.result(timeout=10)[0] for f in futures]
            still_held = not any(h.done() for h in holders)
            release()
            held = [h.result(timeout=10)[0] for h in holders]
        # Recovered: the pool serves again (one by one: a burst would overload it anew).
        after = [in_flight("GET", service.base + paths[i % 2])[0] for i in range(2 * pool_max)]
        failed = [s for s in overflow if not is_unavailable(s)]
        report(
            f"pool of {pool_max} held by blocked statements, {excess} more requests",
            overflow,
            len(failed),
            min_latency=f"{min(s.took for s in overflow) * 1000:.0f}ms",
            holders=[s.status for s in held],
            after_release=sorted({s.status for s in after}),
        )
        assert still_held
        assert not failed, failed[:5]
        for s in overflow:
            assert acquire * 0.8 <= s.took < acquire + 1.0, f"503 after {s.took:.2f} s"
        assert [s.status for s in held] == [200] * pool_max
        assert all(s.status == 200 for s in after), after


# --- 5. SIGTERM with requests in flight --------------------------------------------------


def test_sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_0(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    grace = 5.0
    with running_service(
        tmp_path, db_url, workers=2, pool_max_size=5, shutdown_grace=grace
    ) as service:
        service.wait_status("/health/ready", 200, timeout=30)
        service.wait_all_workers(2, pool_max_size=5)
        author = create_user(service)
        with ThreadPoolExecutor(max_workers=4) as executor, users_locked(db_url) as release:
            requests = [
                executor.submit(in_flight, "GET", f"{service.base}/api/users/{author}")
                for _ in range(3)
            ]
            requests.append(
                executor.submit(
                    in_flight,
                    "POST",
                    f"{service.base}/api/users",
                    json={
                        "email": "inflight@example.com",
                        "name": "In Flight",
                        "password": PASSWORD,
                    },
                )
            )
            wait_until(
                lambda: len(app_backends_waiting_on_locks(db)) == 4,
                timeout=10,
                what="four requests blocked on the lock",
            )
            signalled = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            refused_after = wait_until(
                service.refuses_connections, timeout=1.0, what="new connections to be refused"
            )
            time.sleep(max(0.0, signalled + 0.5 - time.monotonic()))
            assert service.process.poll() is None, "exited with requests still in flight"
            release()
            done = [f.result(timeout=10)[0] for f in requests]
        code = service.process.wait(timeout=grace + 5)
        exited = time.monotonic() - signalled
        failed = [s for s in done if s.status not in (200, 201)]
        report(
            "SIGTERM with 4 requests in flight (lock released 0.5 s later)",
            done,
            len(failed),
            refused_new_after=f"{refused_after * 1000:.0f}ms",
            exit_code=code,
            exited_after=f"{exited:.2f}s",
        )
        assert not failed, failed
        assert [s.status for s in done] == [200, 200, 200, 201]
        assert count_users(db, "inflight@example.com") == 1
        assert code == 0, service.output()[-3000:]
        assert exited < grace


# --- 6. keyed POSTs whose connection is cut ----------------------------------------------


def keyed_post(
    service: Service, key: str, payload: dict[str, str]
) -> tuple[Sample, httpx.Response]:
    """POST /api/users with an Idempotency-Key; a retry sends the very same bytes."""
    sample, response = in_flight(
        "POST",
        f"{service.base}/api/users",
        content=encoded(payload),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert response is not None, sample.error
    return sample, response


def encoded(payload: dict[str, str]) -> bytes:
    return json.dumps(payload).encode()


def user_id_of(db: DB, email: str) -> str:
    row = db.execute("SELECT id FROM users WHERE email = %s", (email,)).fetchone()
    assert row is not None
    return str(row[0])


def test_client_hanging_up_after_a_keyed_post_then_retrying_gets_one_row(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url) as service:
        service.wait_status("/health/ready", 200, timeout=30)
        samples: list[Sample] = []

        # a) The client hangs up while its insert waits; it retries while the first runs.
        payload = {"email": "cut-client@example.com", "name": "Cut", "password": PASSWORD}
        with ThreadPoolExecutor(max_workers=1) as executor, users_locked(db_url) as release:
            hang_up = send_and_hang_up(
                service.port, "/api/users", encoded(payload), {"Idempotency-Key": "cut-client"}
            )
            wait_until(
                lambda: len(app_backends_waiting_on_locks(db)) == 1,
                timeout=10,
                what="the first request to reach the database",
            )
            hang_up()
            retry = executor.submit(keyed_post, service, "cut-client", payload)
            wait_until(
                lambda: len(app_backends_waiting_on_locks(db)) == 2,
                timeout=10,
                what="the retry to wait for the first request's key",
            )
            release()
            sample, response = retry.result(timeout=10)
        samples.append(sample)
        assert response.status_code == 201, response.text
        assert response.headers.get("idempotent-replayed") == "true"
        assert count_users(db, payload["email"]) == 1
        assert response.json()["id"] == user_id_of(db, payload["email"])

        # b) The client hangs up the moment its request is sent, then retries at once.
        payload = {"email": "cut-at-once@example.com", "name": "Cut", "password": PASSWORD}
        hang_up = send_and_hang_up(
            service.port, "/api/users", encoded(payload), {"Idempotency-Key": "cut-at-once"}
        )
        hang_up()
        sample, response = keyed_post(service, "cut-at-once", payload)
        samples.append(sample)
        assert response.status_code == 201, response.text
        replayed_at_once = response.headers.get("idempotent-replayed") == "true"
        again_sample, again = keyed_post(service, "cut-at-once", payload)
        samples.append(again_sample)
        assert again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == response.json()
        assert count_users(db, payload["email"]) == 1
        report(
            "keyed POST, client hung up, retried with its key",
            samples,
            0,
            replayed_while_waiting=True,
            replayed_after_instant_hang_up=replayed_at_once,
        )


def test_lost_commit_answer_gives_503_and_the_keyed_retry_replays_the_one_row(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    with relay_to(db_url) as relay, running_service(tmp_path, relay.url) as service:
        service.wait_status("/health/ready", 200, timeout=30)
        payload = {"email": "lost-commit@example.com", "name": "Lost", "password": PASSWORD}
        relay.cut_after_commit()
        first_sample, first = keyed_post(service, "lost-commit", payload)
        committed = count_users(db, payload["email"])
        retry_sample, retry = keyed_post(service, "lost-commit", payload)
        report(
            "keyed POST whose COMMIT answer was lost, retried with its key",
            [first_sample, retry_sample],
            0,
            cuts=relay.cuts,
            first=first.status_code,
            rows_after_first=committed,
            retry=retry.status_code,
            replayed=retry.headers.get("idempotent-replayed"),
        )
        assert relay.cuts == 1
        assert is_unavailable(first_sample), first.text  # outcome unknown: never a 500
        assert committed == 1, "the COMMIT reached PostgreSQL before the connection was cut"
        assert retry.status_code == 201, retry.text
        assert retry.headers.get("idempotent-replayed") == "true"
        assert retry.json()["id"] == user_id_of(db, payload["email"])
        assert count_users(db, payload["email"]) == 1


def test_backend_killed_during_a_keyed_post_is_retried_or_503_and_never_doubles(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    attempts = 3
    with running_service(tmp_path, db_url, retry_attempts=attempts) as service:
        service.wait_status("/health/ready", 200, timeout=30)

        def kill_waiting_backends(until: Any, limit: int) -> int:
            """Terminate each backend that blocks on the lock, up to `limit` times."""
            killed: set[int] = set()
            while not until.done() and len(killed) < limit:
                for pid in set(app_backends_waiting_on_locks(db)) - killed:
                    terminate(db, pid)
                    killed.add(pid)
                time.sleep(0.01)
            return len(killed)

        # a) Killed once before COMMIT: the whole transaction runs again, the client sees 201.
        once = {"email": "killed-once@example.com", "name": "Once", "password": PASSWORD}
        with ThreadPoolExecutor(max_workers=1) as executor:
            with users_locked(db_url) as release:
                request = executor.submit(keyed_post, service, "killed-once", once)
                kills_once = kill_waiting_backends(request, 1)
                release()
            once_sample, once_response = request.result(timeout=10)
        assert kills_once == 1
        assert once_response.status_code == 201, once_response.text
        assert count_users(db, once["email"]) == 1

        # b) Killed on every attempt: 503; nothing committed; the keyed retry makes one row.
        every = {"email": "killed-always@example.com", "name": "Always", "password": PASSWORD}
        with ThreadPoolExecutor(max_workers=1) as executor, users_locked(db_url):
            request = executor.submit(keyed_post, service, "killed-always", every)
            kills_every = kill_waiting_backends(request, attempts + 1)
            gave_up_sample, gave_up = request.result(timeout=10)
        rows_before_retry = count_users(db, every["email"])
        retry_sample, retry = keyed_post(service, "killed-always", every)
        replay_sample, replay = keyed_post(service, "killed-always", every)
        report(
            "keyed POST whose backend was terminated while it waited on a lock",
            [once_sample, gave_up_sample, retry_sample, replay_sample],
            0,
            killed_once=once_response.status_code,
            killed_every_attempt=gave_up.status_code,
            kills=kills_every,
            retry=retry.status_code,
            replay=replay.headers.get("idempotent-replayed"),
        )
        assert kills_every == attempts
        assert is_unavailable(gave_up_sample), gave_up.text
        assert rows_before_retry == 0
        assert retry.status_code == 201, retry.text
        assert retry.headers.get("idempotent-replayed") is None
        assert replay.headers.get("idempotent-replayed") == "true"
        assert count_users(db, every["email"]) == 1
