"""HTTP load: wrk run against the server, its results read back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import click
import msgspec

from rawpost_devtools.bench.scenarios import tail


class HttpResult(msgspec.Struct, frozen=True):
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect, read, write, timeout
    status_errors: int  # responses with a status >= 400 (wrk's "Non-2xx or 3xx")

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


class _WrkDone(msgspec.Struct, frozen=True):
    """The `RAWPOST_WRK {...}` line of bench/rawpost.lua's done()."""

    requests: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_us: float
    p99_us: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),", re.M)
_WRK_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.M)
_WRK_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_WRK_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


def parse_wrk(output: str) -> HttpResult:
    """wrk's result: the JSON line of bench/rawpost.lua's done(), else its --latency text."""
    for line in output.splitlines():
        if line.startswith("RAWPOST_WRK "):
            d = msgspec.json.decode(line.removeprefix("RAWPOST_WRK "), type=_WrkDone)
            seconds = d.duration_us / 1e6
            return HttpResult(
                requests=d.requests,
                seconds=seconds,
                rps=d.requests / seconds if seconds else 0.0,
                p50_ms=d.p50_us / 1000,
                p99_ms=d.p99_us / 1000,
                socket_errors=d.connect_errors + d.read_errors + d.write_errors + d.timeouts,
                status_errors=d.status_errors,
            )
    total = _WRK_TOTAL.search(output)
    percentiles = {m.group(1): m for m in _WRK_PERCENTILE.finditer(output)}
    if not total or set(percentiles) != {"50", "99"}:
        raise ValueError(f"unrecognised wrk output (run it with --latency):\n{output}")
    seconds = float(total.group(2)) * _UNITS[total.group(3)] / 1000
    sockets = _WRK_SOCKET.search(output)
    status = _WRK_STATUS.search(output)
    return HttpResult(
        requests=int(total.group(1)),
        seconds=seconds,
        rps=int(total.group(1)) / seconds if seconds else 0.0,
        p50_ms=float(percentiles["50"].group(2)) * _UNITS[percentiles["50"].group(3)],
        p99_ms=float(percentiles["99"].group(2)) * _UNITS[percentiles["99"].group(3)],
        socket_errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
        status_errors=int(status.group(1)) if status else 0,
    )


def find_wrk() -> str:
    if found := shutil.which("wrk"):
        return found
    raise click.ClickException(
        "wrk is not installed: `apt-get install wrk` on Debian or Ubuntu, `brew install wrk`"
        " on macOS (https://github.com/wg/wrk)"
    )


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    args: Sequence[str],
    *,
    connections: int,
    threads: int,
    seconds: int,
    delay_ms: float | None = None,
) -> HttpResult:
    """wrk's measurement; with `delay_ms`, each connection waits that long before each of
    its requests (bench/rawpost.lua), a paced load rather than as fast as it answers."""
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--latency", "-s", str(script), url, "--", *args]
    # Only when asked: a RAWPOST_WRK_DELAY_MS left in the caller's environment must not
    # pace a saturated run.
    env = {k: v for k, v in os.environ.items() if k != "RAWPOST_WRK_DELAY_MS"}
    if delay_ms is not None:
        env["RAWPOST_WRK_DELAY_MS"] = f"{delay_ms:.3f}"
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False, env=env
    )
    if done.returncode != 0:
        raise click.ClickException(
            f"wrk failed (exit {done.returncode}):\n{tail(done.stderr or done.stdout)}"
        )
    return parse_wrk(done.stdout)
