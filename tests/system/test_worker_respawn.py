"""A worker killed with SIGKILL (what the kernel's OOM killer sends) is replaced: the
instance keeps serving, and /metrics neither loses nor double-counts what it counted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import SCRAPER, wait_until
from tests.support.service import Load, child_pids, report, running_workers

PATH = "/api/users?limit=1"


def _metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=SCRAPER, timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_a_killed_worker_is_respawned_while_the_other_serves_and_counts_survive(
    db_url: str, tmp_path: Path
) -> None:
    with running_workers(tmp_path, db_url) as service:
        workers = child_pids(service.process.pid)
        assert len(workers) == 2, workers
        victim = min(workers)
        with Load(service.base, [PATH], threads=4) as load:
            time.sleep(1.5)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(
                lambda: len(child_pids(service.process.pid) - {victim}) == 2,
                timeout=30,
                what="a new worker in the dead one's place",
            )
            # The replacement has started its app (its pool joins the sums), and the dead
            # worker's live gauges have left them: 2 x 3, not 3 x 3.
            service.wait_all_workers(2, pool_max_size=3, timeout=30)
            time.sleep(1.5)
        samples = load.samples
        assert service.process.poll() is None, "the instance stopped"
        ok = [s for s in samples if s.status == 200]
        failed = [s for s in samples if s.status != 200]
        report("respawn", samples, len(failed))
        # Only requests in flight on the dead worker may fail (one per load thread at most).
        assert len(failed) <= 4, failed
        assert [s for s in ok if s.started > killed_at], "nothing was served after the kill"
        assert victim not in child_pids(service.process.pid)

        # Every answered request is counted once: the dead worker's counts stay in its
        # files (counters are never held back), nothing is added twice.
        def counted() -> float:
            return _metric(
                service.base, "rawpost_requests_total", path="/api/users", status_code="200"
            )

        wait_until(lambda: counted() >= len(ok) - len(failed), timeout=5, what="the counts")
        assert len(ok) - len(failed) <= counted() <= len(ok)
        assert _metric(service.base, "rawpost_pool_connections", state="max") == 6.0
        assert service.stop() == 0
