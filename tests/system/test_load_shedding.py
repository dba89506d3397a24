"""Load shedding: past RAWPOST_MAX_IN_FLIGHT /api requests a worker answers 503 with
Retry-After at once, instead of queueing without bound; health and the accepted requests
are unaffected."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.helpers import DB, wait_until
from tests.support.service import app_backends_waiting_on_locks, running_service, users_locked


def test_requests_past_the_in_flight_limit_are_answered_503_at_once(
    db_url: str, db: DB, tmp_path: Path
) -> None:
    with running_service(
        tmp_path, db_url, workers=1, max_in_flight=2, pool_max_size=4, acquire_timeout=20
    ) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        statuses: list[int] = []

        def held_request() -> None:
            statuses.append(httpx.get(f"{service.base}/api/users", timeout=30).status_code)

        with users_locked(db_url) as release:
            # Two requests wait on the lock: the worker is at its limit.
            held = [threading.Thread(target=held_request) for _ in range(2)]
            for thread in held:
                thread.start()
            wait_until(
                lambda: len(app_backends_waiting_on_locks(db)) == 2,
                timeout=10,
                what="two requests waiting on the lock",
            )
            started = time.monotonic()
            shed = httpx.get(f"{service.base}/api/posts", timeout=5)
            took = time.monotonic() - started
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert shed.headers["content-type"] == "application/problem+json"
            assert shed.json()["type"] == "/problems/overloaded"
            assert "x-request-id" in shed.headers
            assert took < 1.0, took  # answered at once, not after queueing
            # Outside /api nothing is shed: the instance still says it is alive.
            assert service.status_of("/health/live") == 200
            release()
            for thread in held:
                thread.join(30)
        # The held requests were served, and the slots are free again.
        assert statuses == [200, 200]
        assert httpx.get(f"{service.base}/api/users", timeout=5).status_code == 200
        assert service.stop() == 0
