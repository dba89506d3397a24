"""The results: rounds, their medians, the tables printed, and the JSON report's context."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence

import msgspec

from rawpost_devtools import CHECKOUT
from rawpost_devtools.bench.pgbench import PgbenchResult
from rawpost_devtools.bench.wrk import HttpResult


class Config(msgspec.Struct, frozen=True):
    url: str
    benchmarks: list[str]
    runs: int
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    pgbench_clients: int
    pgbench_jobs: int
    # Sign-ins a second run beside a second user_by_id load (0: not measured).
    sign_ins: int = 0
    # The servers' read cache: off, on, or both (a second server, reported as NAME+cache).
    cache: str = "off"
    # Whether bench/reference's apps were measured beside it (NAME@minimal, NAME@floor).
    references: bool = False
    # Each benchmark measured again at this fraction of the req/s it just reached, a paced
    # load (NAME~paced): its latency below saturation (0: not measured).
    paced: float = 0.0


# The name under which user_by_id measured with sign-ins beside it is reported.
WITH_SIGN_INS = "user_by_id+sign-ins"
# The suffix of a benchmark measured on the server with its read cache on (--cache both).
CACHED = "+cache"
# The suffixes of the reference apps' rows (--references), and the goals of rawpost's
# req/s over theirs (issue 15): (over the minimal Litestar app, over the frameworkless floor).
MINIMAL, FLOOR = "@minimal", "@floor"
GOALS = {
    "user_by_id": (1.2, 0.8),
    "posts_page": (1.2, 0.8),
    "user_with_posts": (1.2, 0.8),
    "create_post": (1.2, 1.0),
}
P99_GOAL_MS = 100.0
# The suffix of a benchmark measured at a paced load (--paced).
PACED = "~paced"


class Round(msgspec.Struct, frozen=True):
    pk: PgbenchResult
    http: dict[str, HttpResult]
    statement: dict[str, PgbenchResult]


class Summary(msgspec.Struct, frozen=True):
    """Medians over the rounds; each ratio is taken within a round, then the median."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # the sum over rounds
    statement_tps: float
    pk_tps: float
    ratio_statement: float
    ratio_pk: float


class Report(msgspec.Struct, frozen=True):
    started_at: str
    commit: str | None
    dirty: bool | None
    machine: dict[str, str]
    config: Config
    rounds: list[Round]
    summary: list[Summary]
    version: int = 1


def aligned(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The head and rows as lines of columns: the first left-aligned, the others right."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]


def summarize(rounds: Sequence[Round], names: Sequence[str]) -> list[Summary]:
    out = []
    for name in names:
        http = [r.http[name] for r in rounds]
        stmt = [r.statement[name] for r in rounds]
        out.append(
            Summary(
                name=name,
                rps=statistics.median(h.rps for h in http),
                p50_ms=statistics.median(h.p50_ms for h in http),
                p99_ms=statistics.median(h.p99_ms for h in http),
                errors=sum(h.errors for h in http),
                statement_tps=statistics.median(s.tps for s in stmt),
                pk_tps=statistics.median(r.pk.tps for r in rounds),
                ratio_statement=statistics.median(
                    r.http[name].rps / r.statement[name].tps for r in rounds
                ),
                ratio_pk=statistics.median(r.http[name].rps / r.pk.tps for r in rounds),
            )
        )
    return out


def format_table(summary: Sequence[Summary], runs: int) -> str:
    head = ("benchmark", "req/s", "p50 ms", "p99 ms", "errors", "stmt tps", "/ stmt", "/ PK")
    rows = [
        (
            s.name,
            f"{s.rps:,.0f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            str(s.errors),
            f"{s.statement_tps:,.0f}",
            f"{s.ratio_statement:.3f}",
            f"{s.ratio_pk:.3f}",
        )
        for s in summary
    ]
    lines = aligned(head, rows)
    lines.insert(1, "-" * len(lines[0]))
    pk = f"{summary[0].pk_tps:,.0f}" if summary else "-"
    kind = f"medians of {runs} interleaved runs" if runs > 1 else "one run"
    lines.append(f"PK ceiling (pgbench, plain primary-key lookup): {pk} tps; {kind}")
    by_name = {s.name: s for s in summary}
    gains = [
        f"{s.name} {by_name[s.name + CACHED].rps / s.rps:.2f}x"
        for s in summary
        if s.name + CACHED in by_name and s.rps
    ]
    if gains:
        lines.append("read cache on / off (req/s, same run): " + ", ".join(gains))
    return "\n".join(lines)


def format_goals(rounds: Sequence[Round], names: Sequence[str]) -> str:
    """rawpost's req/s over each reference's, taken within each round and then the median,
    and rawpost's p99, against the goals; one line per benchmark with both references.
    With --paced, also the p99 at the paced load (no goal of the issue's: a proposal)."""
    paced = bool(rounds) and any(name + PACED in rounds[0].http for name in names)
    head: tuple[str, ...] = ("benchmark", "/ minimal", "goal", "/ floor", "goal", "p99 ms")
    head += ("goal", "met", *(["paced p99 ms"] if paced else []))
    rows = []
    for name in names:
        if name not in GOALS or name + MINIMAL not in rounds[0].http:
            continue
        over = [
            statistics.median(r.http[name].rps / max(r.http[name + ref].rps, 1e-9) for r in rounds)
            for ref in (MINIMAL, FLOOR)
        ]
        p99 = statistics.median(r.http[name].p99_ms for r in rounds)
        goals = GOALS[name]
        met = over[0] >= goals[0] and over[1] >= goals[1] and p99 <= P99_GOAL_MS
        row: tuple[str, ...] = (
            name,
            f"{over[0]:.2f}",
            f">= {goals[0]}",
            f"{over[1]:.2f}",
            f">= {goals[1]}",
            f"{p99:.1f}",
            f"<= {P99_GOAL_MS:.0f}",
            "yes" if met else "NO",
        )
        if paced:
            row += (f"{statistics.median(r.http[name + PACED].p99_ms for r in rounds):.1f}",)
        rows.append(row)
    if not rows:
        return ""
    lines = aligned(head, rows)
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(0, "rawpost's req/s over the reference apps' (median of the per-round ratios):")
    return "\n".join(lines)


def format_comparison(a: Report, b: Report, a_name: str, b_name: str) -> str:
    before = {s.name: s for s in a.summary}

    def version(r: Report) -> str:
        return f"{r.commit or '?'}{'+dirty' if r.dirty else ''}, {r.started_at}"

    lines = [f"A = {a_name} ({version(a)})", f"B = {b_name} ({version(b)})"]
    head = ("benchmark", "req/s A", "req/s B", "change", "/ PK A", "/ PK B", "p99 A", "p99 B")
    rows = []
    for s in b.summary:
        if (o := before.get(s.name)) is None:
            continue
        change = (s.rps / o.rps - 1) * 100 if o.rps else float("nan")
        rows.append(
            (
                s.name,
                f"{o.rps:,.0f}",
                f"{s.rps:,.0f}",
                f"{change:+.1f}%",
                f"{o.ratio_pk:.3f}",
                f"{s.ratio_pk:.3f}",
                f"{o.p99_ms:.1f}",
                f"{s.p99_ms:.1f}",
            )
        )
    lines += aligned(head, rows)
    lines.append("(/ PK: req/s over the primary-key pgbench ceiling of the same run)")
    return "\n".join(lines)


def git_version() -> tuple[str | None, bool | None]:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, bool(status.strip())


def machine_info() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in load),
    }
