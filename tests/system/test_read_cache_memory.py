"""The read cache's memory: one worker, a capped cache, a scan of distinct keys (every
user once, through wrk): the worker's resident memory grows by less than the cap plus a
stated margin, and the cache's own count stays under the cap.

CI scans 25,000 keys into a 4 MB cache (a quarter of the figure docs/caching.md quotes,
in a quarter of the time); `RAWPOST_TEST_CACHE_SCAN_KEYS=100000` runs the full one
(16 MB cap): `RAWPOST_TEST_CACHE_SCAN_KEYS=100000 uv run pytest -s
tests/system/test_read_cache_memory.py`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg

from rawpost_devtools import CHECKOUT
from tests.helpers import SCRAPER, wait_until
from tests.support.service import running_workers

KEYS = int(os.environ.get("RAWPOST_TEST_CACHE_SCAN_KEYS", "25000"))
CAP_MB = max(1, KEYS * 16 // 100_000)  # 16 MB for 100,000 keys
CONNECTIONS = 16
# What else grows in a worker that has just answered 100,000 requests: the allocator's
# free lists, Python's caches, the pool's buffers (measured with the cache off: about
# 10 MB; docs/caching.md, "Memory").
MARGIN_MB = 24


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    assert found, status
    return int(found.group(1)) / 1024


def _worker_pid(server_pid: int) -> int:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=SCRAPER, timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _scan(base: str, ids_file: Path, seconds: int = 300) -> dict[str, int]:
    """wrk through every key; interrupted (it then reports) once the server has read
    them all: wrk itself always runs for its whole duration."""
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: apt-get install wrk"
    script = CHECKOUT / "bench" / "cache_scan.lua"
    command = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script), base]
    process = subprocess.Popen(
        [*command, "--", str(ids_file), "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(
            lambda: (
                _metric(base, 'rawpost_cache_lookups_total{result="miss"}') >= KEYS - CONNECTIONS
            ),
            timeout=seconds,
            what="the scan",
        )
        time.sleep(0.5)  # the last answers
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    line = next(x for x in out.splitlines() if x.startswith("RAWPOST_SCAN "))
    result: dict[str, int] = json.loads(line.removeprefix("RAWPOST_SCAN "))
    return result


def test_a_scan_of_distinct_keys_stays_within_the_cap_plus_a_margin(
    db_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_url, autocommit=True) as db:
        rows = db.execute(
            "INSERT INTO users (email, name)"
            " SELECT 'scan' || g || '@example.com', 'Scanned user number ' || g"
            " FROM generate_series(1, %s) AS g RETURNING id",
            (KEYS,),
        ).fetchall()
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("".join(f"{row[0]}\n" for row in rows))
    with running_workers(
        tmp_path, db_url, workers=1, pool_max_size=4, cache_max_mb=CAP_MB
    ) as service:
        worker = _worker_pid(service.process.pid)
        before = _rss_mb(worker)
        scanned = _scan(service.base, ids_file)
        after = _rss_mb(worker)
        held = _metric(service.base, 'rawpost_cache_size{unit="bytes"}')
        misses = _metric(service.base, 'rawpost_cache_lookups_total{result="miss"}')
        evictions = _metric(service.base, "rawpost_cache_evictions_total")
    grew = after - before
    print(
        f"\n{KEYS:,} keys through one worker, cap {CAP_MB} MB: RSS {before:.1f} -> {after:.1f} MB"
        f" (+{grew:.1f} MB); the cache counts {held / 2**20:.1f} MB; {evictions:,.0f} evictions"
    )
    # A thread that has sent its share stops, dropping what its connections still await.
    assert scanned["failed"] == 0 and scanned["answered"] >= KEYS - CONNECTIONS
    assert misses >= KEYS - CONNECTIONS  # every key was new: read once, and kept
    assert evictions > 0 and held <= CAP_MB * 2**20
    assert grew < CAP_MB + MARGIN_MB
