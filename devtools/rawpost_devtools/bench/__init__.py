"""`rawpost bench`: the standard benchmark (docs/performance.md) next to the database's ceiling.

For each benchmark request, wrk drives the HTTP server (64 connections, a 3 s warm-up,
then 10 s measured) and `pgbench -M prepared` runs the very statement that request's
route runs, with as many connections as the pool; a plain primary-key lookup is
measured in the same round as the machine's speed unit. Everything runs on this
machine: the server must be on a loopback address.
"""

from __future__ import annotations

from rawpost_devtools.bench.command import bench
from rawpost_devtools.bench.pgbench import (
    PgbenchJob,
    PgbenchResult,
    find_pgbench,
    parse_pgbench,
    pgbench_job,
    pgbench_sql,
    run_pgbench,
)
from rawpost_devtools.bench.report import (
    Config,
    Report,
    Round,
    Summary,
    format_comparison,
    format_goals,
    format_table,
    summarize,
)
from rawpost_devtools.bench.scenarios import (
    BENCH_DIR,
    BENCHMARKS,
    PK_STATEMENT,
    Benchmark,
    Sampled,
    SampleIds,
)
from rawpost_devtools.bench.server import check_loopback, delete_created
from rawpost_devtools.bench.wrk import HttpResult, find_wrk, parse_wrk, run_wrk

# The name tests/system/test_bench.py has called it by since it was private to bench.py.
_delete_created = delete_created

__all__ = [
    "BENCHMARKS",
    "BENCH_DIR",
    "PK_STATEMENT",
    "Benchmark",
    "Config",
    "HttpResult",
    "PgbenchJob",
    "PgbenchResult",
    "Report",
    "Round",
    "SampleIds",
    "Sampled",
    "Summary",
    "bench",
    "check_loopback",
    "delete_created",
    "find_pgbench",
    "find_wrk",
    "format_comparison",
    "format_goals",
    "format_table",
    "parse_pgbench",
    "parse_wrk",
    "pgbench_job",
    "pgbench_sql",
    "run_pgbench",
    "run_wrk",
    "summarize",
]
