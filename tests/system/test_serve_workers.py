"""`rawpost serve` with several worker processes: one port, and metrics summed over all."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import SCRAPER, wait_until
from tests.support.service import child_pids, running_workers


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _users_200(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "rawpost_requests_total"
        and dict(labels).get("path") == "/api/users"
        and dict(labels).get("status_code") == "200"
    )


def test_two_workers_share_the_port_and_metrics_add_up_over_both(
    db_url: str, tmp_path: Path
) -> None:
    with running_workers(tmp_path, db_url) as service:
        # Each request on a fresh connection, so the kernel spreads them over the workers.
        for _ in range(40):
            assert httpx.get(f"{service.base}/api/users?limit=1").status_code == 200
        # Each worker moves its figures into the shared files within a second.
        wait_until(
            lambda: (
                _users_200(_samples(httpx.get(f"{service.base}/metrics", headers=SCRAPER).text))
                == 40
            ),
            timeout=5,
            what="both workers' requests in /metrics",
        )
        scrapes = [
            _samples(httpx.get(f"{service.base}/metrics", headers=SCRAPER).text) for _ in range(8)
        ]
        # Whichever worker answers the scrape, it reports all 40 requests ...
        assert [_users_200(s) for s in scrapes] == [40.0] * 8
        # ... and both workers' pools: each publishes its own figures (max 3 apiece).
        assert {s["rawpost_pool_connections", (("state", "max"),)] for s in scrapes} == {6.0}
        assert all(s["rawpost_build_info", _build_labels(s)] == 1.0 for s in scrapes)
        workers = child_pids(service.process.pid)
        assert len(workers) == 2, workers
        # Both write their figures into one folder of memory-mapped files.
        folders = {path.parent for pid in workers for path in _mapped_metric_files(pid)}
        assert len(folders) == 1, folders
        (folder,) = folders
        assert {int(f.stem.rpartition("_")[2]) for f in folder.glob("*.db")} >= workers
        assert service.stop() == 0
    # The shared metrics folder goes with the server: the next start counts from zero.
    assert not Path(folder).exists()


def _build_labels(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> tuple[tuple[str, str], ...]:
    (labels,) = [labels for name, labels in samples if name == "rawpost_build_info"]
    return labels


def _mapped_metric_files(pid: int) -> set[Path]:
    """prometheus_client's multiprocess files a process has mapped (Linux /proc)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split()[-1]) for line in lines if line.endswith(".db")}
