"""Keyed POSTs to a real `rawpost serve` whose connection is cut (the client hangs up, the
answer to a COMMIT is lost, the backend is killed): a retry with the same key gets the one
row, never two. Each test is bounded by a hard time limit."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import DB, PASSWORD, wait_until
from tests.support.network import relay_to, send_and_hang_up
from tests.support.service import (
    Sample,
    Service,
    app_backends_waiting_on_locks,
    count_users,
    report,
    running_service,
    terminate,
    users_locked,
)
from tests.system.faults.requests import in_flight, is_unavailable


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
