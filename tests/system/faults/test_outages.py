"""Real faults against a real `rawpost serve` and a real PostgreSQL, loopback only: backends
killed under load, the server stopped and started under load, the database down at start-up,
the pool held by long statements, SIGTERM with requests in flight.

Each test is bounded by a hard time limit and prints its figures (run with -s to see them).
Unlike tests/system/test_unavailable_*.py (the app in-process, a relay between it and
PostgreSQL), the service here is a separate process driven over real sockets.
"""

from __future__ import annotations

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from tests.helpers import DB, PASSWORD, bearer, mint_token, wait_until
from tests.support.postgres import dedicated_postgres
from tests.support.service import (
    Load,
    Service,
    app_backends_waiting_on_locks,
    app_connections,
    count_users,
    report,
    running_service,
    running_workers,
    terminate_app_backends,
    users_locked,
)
from tests.system.faults.requests import in_flight, is_unavailable


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


def test_sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_0(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    grace = 5.0
    with running_workers(tmp_path, db_url, pool_max_size=5, shutdown_grace=grace) as service:
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
