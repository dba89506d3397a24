"""One round of measurements: the PK ceiling, then each benchmark's HTTP load and statement."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import msgspec

from rawpost_devtools.bench.pgbench import PgbenchJob, PgbenchResult, run_pgbench
from rawpost_devtools.bench.report import PACED, WITH_SIGN_INS, Config, Round
from rawpost_devtools.bench.scenarios import BENCH_DIR, Benchmark
from rawpost_devtools.bench.wrk import HttpResult, run_wrk


@dataclass(frozen=True)
class Runner:
    wrk: str
    pgbench: str
    url: str
    database_url: str
    ids_file: Path
    tokens_file: Path
    workdir: Path
    config: Config
    # The other servers measured next to the one at `url`, by the suffix of their rows:
    # `+cache` (--cache both), `@minimal` and `@floor` (--references).
    others: tuple[tuple[str, str], ...] = ()

    def http(
        self, b: Benchmark, run_id: str, url: str | None = None, delay_ms: float | None = None
    ) -> HttpResult:
        c = self.config
        url = url or self.url
        script = BENCH_DIR / b.script
        if c.warmup_s:
            run_wrk(
                self.wrk,
                url,
                script,
                [str(self.ids_file), f"{run_id}w", str(self.tokens_file)],
                connections=c.connections,
                threads=c.threads,
                seconds=c.warmup_s,
                delay_ms=delay_ms,
            )
        return run_wrk(
            self.wrk,
            url,
            script,
            [str(self.ids_file), run_id, str(self.tokens_file)],
            connections=c.connections,
            threads=c.threads,
            seconds=c.duration_s,
            delay_ms=delay_ms,
        )

    def ceiling(self, job: PgbenchJob) -> PgbenchResult:
        c = self.config
        return run_pgbench(
            self.pgbench,
            self.database_url,
            job,
            clients=c.pgbench_clients,
            jobs=c.pgbench_jobs,
            seconds=c.duration_s,
            workdir=self.workdir,
        )

    def round(
        self,
        chosen: Sequence[Benchmark],
        jobs: Mapping[str, PgbenchJob],
        pk_job: PgbenchJob,
        run_id: str,
        number: int,
    ) -> Round:
        """One pass: the PK ceiling, then each benchmark's HTTP load and its statement's."""
        prefix = f"[{number}/{self.config.runs}]"
        pk = self.ceiling(pk_job)
        click.echo(f"{prefix} pgbench primary-key lookup: {pk.tps:,.0f} tps")
        http: dict[str, HttpResult] = {}
        statement: dict[str, PgbenchResult] = {}
        for b in chosen:
            # With several servers, which goes first rotates from round to round.
            servers = [("", self.url), *self.others]
            turn = (number - 1) % len(servers)
            servers = servers[turn:] + servers[:turn]
            for suffix, url in servers:
                http[b.name + suffix] = self.http(b, f"{run_id}{suffix[1:]}", url)
            statement[b.name] = s = self.ceiling(jobs[b.name])
            for suffix, _ in [("", self.url), *self.others]:
                statement[b.name + suffix] = s
                h = http[b.name + suffix]
                click.echo(
                    f"{prefix} {b.name + suffix}: {h.rps:,.0f} req/s, p50 {h.p50_ms:.1f} ms,"
                    f" p99 {h.p99_ms:.1f} ms, {h.errors} errors; its statement"
                    f" {s.tps:,.0f} tps"
                )
            if self.config.paced:
                # The same load, each connection waiting between its requests so that all
                # of them offer this fraction of what the server just reached: latency
                # below saturation, where queueing no longer sets it.
                offered = max(self.config.paced * http[b.name].rps, 1.0)
                delay_ms = self.config.connections * 1000 / offered
                http[b.name + PACED] = h = self.http(b, f"{run_id}p", delay_ms=delay_ms)
                statement[b.name + PACED] = s
                click.echo(
                    f"{prefix} {b.name + PACED}: {offered:,.0f} req/s offered, {h.rps:,.0f}"
                    f" served, p50 {h.p50_ms:.1f} ms, p99 {h.p99_ms:.1f} ms, {h.errors} errors"
                )
            if b.name == "user_by_id" and self.config.sign_ins:
                with SignIns(self.url, f"{run_id}s", per_second=self.config.sign_ins) as load:
                    http[WITH_SIGN_INS] = h = self.http(b, run_id)
                statement[WITH_SIGN_INS] = s
                click.echo(
                    f"{prefix} {WITH_SIGN_INS}: {h.rps:,.0f} req/s, p50 {h.p50_ms:.1f} ms,"
                    f" p99 {h.p99_ms:.1f} ms, {h.errors} errors; beside it"
                    f" {load.succeeded} sign-ins ({load.failed} failed)"
                    f" in {load.seconds:.1f} s"
                )
        return Round(pk=pk, http=http, statement=statement)


class SignIns:
    """`per_second` sign-ins (POST /api/auth/token, one Argon2id verify each) paced in a
    background thread, as a burst of real clients would: what they cost the reads beside."""

    def __init__(self, url: str, run_id: str, *, per_second: int) -> None:
        self.url, self.per_second = url, per_second
        self.email = f"bench-signin-{run_id}@bench.rawpost.invalid"
        self.password = secrets.token_urlsafe(16)
        self.succeeded = self.failed = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rawpost-bench-sign-ins")

    def __enter__(self) -> SignIns:
        account = {"email": self.email, "name": "Bench Sign-in", "password": self.password}
        status = _post_status(f"{self.url}/api/users", account)
        if status != 201:
            raise click.ClickException(f"signing up the sign-in account answered {status}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        body = {"email": self.email, "password": self.password}
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = started + n / self.per_second
            if (wait := due - time.monotonic()) > 0 and self._stop.wait(wait):
                break
            ok = _post_status(f"{self.url}/api/auth/token", body) == 200
            self.succeeded += ok
            self.failed += not ok
            n += 1
        self.seconds = time.monotonic() - started


def _post_status(url: str, body: Mapping[str, str]) -> int:
    """POST JSON to a loopback URL (checked by check_loopback); the status, or 0."""
    data = msgspec.json.encode(body)
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
