"""Read replicas through `rawpost serve` with two workers, on a real streaming standby:
read-your-writes across workers, and a standby stopped and started again under wrk."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rawpost_devtools.bench.wrk import parse_wrk
from service.db.replicas import replica_names
from tests.helpers import PASSWORD, SCRAPER, bearer
from tests.support.postgres import DedicatedPostgres, dedicated_postgres
from tests.support.replica import Standby, standby_of
from tests.support.service import Service, running_workers

DATABASE = "rawpost_replicas"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, Standby]]:
    """A primary with a migrated database, and its standby."""
    primary: DedicatedPostgres
    with dedicated_postgres() as primary:
        url = primary.database(DATABASE)
        with standby_of(primary) as standby:
            yield url, standby


@pytest.fixture
def standby(servers: tuple[str, Standby]) -> Iterator[Standby]:
    _, server = servers
    yield server
    if not server.running():
        server.start()


def metric(service: Service, name: str, **labels: str) -> float:
    text = httpx.get(service.base + "/metrics", headers=SCRAPER, timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def replica_reads(service: Service, standby: Standby) -> float:
    name = replica_names((standby.url(DATABASE),))[0]
    return metric(service, "rawpost_replica_reads_total", pool=name)


def signed_up(http: httpx.Client, email: str) -> tuple[str, dict[str, str]]:
    """A new user's id and Authorization header."""
    user = http.post("/api/users", json={"email": email, "name": "R", "password": PASSWORD})
    assert user.status_code == 201, user.text
    token = http.post("/api/auth/token", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return user.json()["id"], bearer(token.json()["access_token"])


def test_a_write_then_a_read_with_its_token_sees_the_write_200_times(
    servers: tuple[str, Standby], standby: Standby, tmp_path: Path
) -> None:
    primary_url, _ = servers
    with (
        # A longer wait than the default, so that a loaded machine's slow replay does not
        # leave the standby too few reads to prove anything.
        running_workers(
            tmp_path, primary_url, replica_urls=standby.url(DATABASE), replica_wait=0.2
        ) as service,
        httpx.Client(base_url=service.base, timeout=10) as http,
    ):
        _, own = signed_up(http, "ryw@replica.test")
        before = replica_reads(service, standby)
        stale = []
        post_id = ""
        for i in range(200):
            if i % 2 == 0:  # a new row: the read must not miss it
                wrote = http.post(
                    "/api/posts", json={"title": f"t{i}", "content": "c"}, headers=own
                )
                assert wrote.status_code == 201, wrote.text
                post_id = wrote.json()["id"]
            else:  # a changed row: the read must not see the old one
                wrote = http.patch(f"/api/posts/{post_id}", json={"title": f"t{i}"}, headers=own)
                assert wrote.status_code == 200, wrote.text
            token = wrote.headers["consistency-token"]
            read = http.get(f"/api/posts/{post_id}", headers={**own, "Consistency-Token": token})
            if read.status_code != 200 or read.json()["title"] != f"t{i}":
                stale.append((i, read.status_code, read.text[:100]))
        on_replica = replica_reads(service, standby) - before
        waits = metric(service, "rawpost_replica_token_wait_seconds_count")
        waited = metric(service, "rawpost_replica_token_wait_seconds_sum")
        print(f"\n[read-your-writes] 200 tokened reads: {on_replica:.0f} on the replica,"
              f" {waits:.0f} waited for it, {waited / max(waits, 1) * 1000:.1f} ms"
              " on average")  # fmt: skip
        assert stale == []
        # Not vacuous: the standby served reads with tokens (the rest waited too long).
        assert on_replica >= 50


def test_the_standby_stopped_under_load_fails_no_read_and_takes_reads_again(
    servers: tuple[str, Standby], standby: Standby, tmp_path: Path
) -> None:
    wrk = shutil.which("wrk")
    assert wrk is not None, "wrk is not installed: apt-get install wrk"
    primary_url, _ = servers
    with (
        running_workers(tmp_path, primary_url, replica_urls=standby.url(DATABASE)) as service,
        httpx.Client(base_url=service.base, timeout=10) as http,
    ):
        user_id, own = signed_up(http, "load@replica.test")
        # Signed in: every read reaches the database (no cache keeps an answer to a token).
        command = [
            wrk, "-t2", "-c8", "-d10s", "--latency",
            "-H", f"Authorization: {own['Authorization']}",
            f"{service.base}/api/users/{user_id}?include=posts",
        ]  # fmt: skip
        outcome: dict[str, str] = {}

        def load() -> None:
            done = subprocess.run(command, capture_output=True, text=True, timeout=40)
            outcome["out"] = done.stdout + done.stderr

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(2.5)
        served_before_stop = replica_reads(service, standby)
        standby.stop("fast")
        time.sleep(2.5)
        while_down = replica_reads(service, standby)
        standby.start()
        restarted = time.monotonic()
        while replica_reads(service, standby) <= while_down:
            assert time.monotonic() - restarted < 5, "the standby took no reads again"
            time.sleep(0.1)
        back_after = time.monotonic() - restarted
        thread.join(30)
        result = parse_wrk(outcome["out"])
        fallbacks = metric(service, "rawpost_replica_fallbacks_total", reason="error")
        print(
            f"\n[standby stop/start under wrk] {result.requests} reads, {result.errors} failed,"
            f" {fallbacks:.0f} re-run on the primary, reads again {back_after:.2f} s after start"
        )
        assert served_before_stop > 0
        assert result.requests > 0
        assert (result.socket_errors, result.status_errors) == (0, 0), outcome["out"]
