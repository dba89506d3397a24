"""The load-test kit without running it: pgbench SQL from our statements, parameter binding,
parsing pgbench and wrk output, the loopback check, the summary and the comparison."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import click
import msgspec
import pytest
from click.testing import CliRunner

from rawpost_devtools import bench as kit
from rawpost_devtools.bench import (
    BENCHMARKS,
    PK_STATEMENT,
    HttpResult,
    PgbenchResult,
    Report,
    Round,
    Sampled,
    check_loopback,
    pgbench_job,
    pgbench_sql,
    summarize,
)
from service.sql import QUERIES, SqlFileError, compile_named


def test_pgbench_sql_drops_comments_and_keeps_strings_and_casts() -> None:
    source = (
        "-- get: :ignored in a comment\n"
        "SELECT ':not_a_param', E'\\':still_not', \"col:x\", $$ :nor $$, /* :no /* :n */ */\n"
        "       :a::int, :b -- trailing :c\n"
        "FROM t WHERE x = :a\n"
    )
    assert pgbench_sql(source, {"a": ":a_0", "b": "NULL"}) == (
        "SELECT ':not_a_param', E'\\':still_not', \"col:x\", $$ :nor $$,\n"
        "       :a_0::int, NULL\n"
        "FROM t WHERE x = :a_0"
    )


def test_pgbench_sql_refuses_an_unbound_parameter() -> None:
    with pytest.raises(ValueError, match=":b"):
        pgbench_sql("SELECT :a, :b", {"a": "1"})


def test_pgbench_sql_finds_the_parameters_the_loader_finds() -> None:
    # One scanner serves both: a `$` inside a name opens no dollar quote for either.
    source = "SELECT total$usd$ FROM t WHERE id = :a"
    assert compile_named(source) == ("SELECT total$usd$ FROM t WHERE id = $1", ("a",))
    assert pgbench_sql(source, {"a": ":a_0"}) == "SELECT total$usd$ FROM t WHERE id = :a_0"


@pytest.mark.parametrize("text", ["SELECT 'open", 'SELECT "open', "SELECT $$ open", "/* open"])
def test_pgbench_sql_refuses_unterminated_text_as_the_loader_does(text: str) -> None:
    with pytest.raises(SqlFileError, match="unterminated"):
        pgbench_sql(text, {})


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda b: b.name)
def test_each_benchmark_binds_exactly_the_parameters_of_its_statement(benchmark: Any) -> None:
    job = pgbench_job(QUERIES[benchmark.query].source, benchmark.params, ["u1", "u2", "u3"])
    sampled = {Sampled.USER_ID, Sampled.USER_IDS} & set(benchmark.params.values())
    assert len(job.scripts) == (3 if sampled else 1)
    for script in job.scripts:
        assert script.endswith(";\n")
        assert "--" not in script


def test_user_id_parameters_get_one_script_per_sampled_id_up_to_100() -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(150)]
    job = pgbench_job(PK_STATEMENT, {"user_id": Sampled.USER_ID}, ids)
    assert len(job.scripts) == 100
    assert job.scripts[7] == (
        "SELECT id, email, name, created_at, updated_at FROM users WHERE id = :user_id_7;\n"
    )
    assert job.defines["user_id_7"] == ids[7]


def test_a_changed_statement_fails_the_binding_loudly() -> None:
    with pytest.raises(ValueError, match="binds"):
        pgbench_job("SELECT :a, :b", {"a": 1}, [])


def test_parse_pgbench_reads_the_summary() -> None:
    # Captured while writing the kit: pgbench (PostgreSQL) 18.6, -M prepared -n -c 1 -T 1.
    output = """pgbench (18.6)
transaction type: /tmp/pgbench-0.sql
scaling factor: 1
query mode: prepared
number of clients: 1
number of threads: 1
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 9480
number of failed transactions: 0 (0.000%)
latency average = 0.105 ms
initial connection time = 2.416 ms
tps = 9484.310201 (without initial connection time)
"""
    assert kit.parse_pgbench(output) == PgbenchResult(
        tps=9484.310201, latency_ms=0.105, transactions=9480, failed=0
    )


# Recorded while writing the kit, on this kind of machine (wrk debian/4.1.0-3+b2):
# `wrk -t2 -c8 -d1s --latency -s bench/user_by_id.lua http://127.0.0.1:8199 -- ids.json run1`
# against `python3 -m http.server`, which answers every /api/users/... with a 404.
WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:8199
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.16ms    3.42ms  30.03ms   84.13%
    Req/Sec   593.35    112.59   760.00     60.00%
  Latency Distribution
     50%    3.84ms
     75%    6.29ms
     90%    9.54ms
     99%   17.96ms
  1189 requests in 1.01s, 603.79KB read
  Non-2xx or 3xx responses: 1189
Requests/sec:   1181.66
Transfer/sec:    600.06KB
RAWPOST_WRK {"requests": 1189, "duration_us": 1006210, "bytes": 618280, "connect_errors": 0, \
"read_errors": 0, "write_errors": 0, "status_errors": 1189, "timeouts": 0, "p50_us": 3840, \
"p90_us": 9540, "p99_us": 17959, "mean_us": 5161.1, "max_us": 30033}
"""


def test_parse_wrk_reads_the_done_line_of_the_lua_scripts() -> None:
    result = kit.parse_wrk(WRK_OUTPUT)
    assert result.requests == 1189
    assert result.rps == pytest.approx(1181.66, rel=1e-3)
    assert (result.p50_ms, result.p99_ms) == (3.84, 17.959)
    assert (result.socket_errors, result.status_errors, result.errors) == (0, 1189, 1189)


def test_parse_wrk_falls_back_to_the_latency_distribution() -> None:
    text = (
        WRK_OUTPUT.split("RAWPOST_WRK")[0]
        + "  Socket errors: connect 0, read 2, write 0, timeout 3\n"
    )
    result = kit.parse_wrk(text)
    assert result.requests == 1189
    assert result.seconds == pytest.approx(1.01)
    assert (result.p50_ms, result.p99_ms) == (3.84, 17.96)
    assert (result.socket_errors, result.status_errors) == (5, 1189)


def test_parse_wrk_without_latencies_is_an_error() -> None:
    with pytest.raises(ValueError, match="--latency"):
        kit.parse_wrk("Running 1s test @ http://x\n  10 requests in 1.00s, 1KB read\n")


def test_bench_says_so_when_wrk_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    result = CliRunner().invoke(kit.bench, ["--url", "http://127.0.0.1:1"])
    assert result.exit_code != 0
    assert "wrk is not installed" in result.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:9", "http://[::1]:80"])
def test_loopback_urls_are_accepted(url: str) -> None:
    check_loopback(url)


@pytest.mark.parametrize("url", ["http://192.0.2.10:8000", "https://127.0.0.1", "127.0.0.1:8000"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(click.BadParameter, match=r"loopback|expected http"):
        check_loopback(url)


def _http(rps: float, p99: float = 10.0, errors: int = 0) -> HttpResult:
    return HttpResult(
        requests=int(rps * 10),
        seconds=10.0,
        rps=rps,
        p50_ms=p99 / 2,
        p99_ms=p99,
        socket_errors=0,
        status_errors=errors,
    )


def _pg(tps: float) -> PgbenchResult:
    return PgbenchResult(tps=tps, latency_ms=1.0, transactions=int(tps * 10), failed=0)


def _config(**changes: Any) -> kit.Config:
    config = kit.Config(
        url="http://127.0.0.1:8000",
        benchmarks=[],
        runs=1,
        duration_s=10,
        warmup_s=3,
        connections=64,
        threads=2,
        pgbench_clients=20,
        pgbench_jobs=2,
    )
    return msgspec.structs.replace(config, **changes)


def test_summary_takes_medians_and_ratios_within_each_run() -> None:
    rounds = [
        Round(pk=_pg(10_000), http={"b": _http(1000, 30)}, statement={"b": _pg(5000)}),
        Round(pk=_pg(20_000), http={"b": _http(3000, 10, errors=2)}, statement={"b": _pg(6000)}),
        Round(pk=_pg(30_000), http={"b": _http(2000, 20)}, statement={"b": _pg(4000)}),
    ]
    (s,) = summarize(rounds, ["b"])
    assert (s.rps, s.p99_ms, s.errors) == (2000, 20, 2)
    assert (s.pk_tps, s.statement_tps) == (20_000, 5000)
    # Per run: 0.1, 0.15, 0.0667 -> median 0.1 (not 2000 / 20000 by coincidence alone).
    assert s.ratio_pk == pytest.approx(0.1)
    assert s.ratio_statement == pytest.approx(0.5)
    table = kit.format_table([s], runs=3)
    assert "medians of 3 interleaved runs" in table
    assert "PK ceiling" in table


def test_compare_prints_both_runs_side_by_side(tmp_path: Path) -> None:
    def report(rps: float) -> Report:
        rounds = [Round(pk=_pg(10_000), http={"b": _http(rps)}, statement={"b": _pg(5000)})]
        return Report(
            started_at="2026-01-01T00:00:00+00:00",
            commit="abc1234",
            dirty=False,
            machine={},
            config=_config(benchmarks=["b"]),
            rounds=rounds,
            summary=summarize(rounds, ["b"]),
        )

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(msgspec.json.encode(report(1000)))
    b.write_bytes(msgspec.json.encode(report(1500)))
    result = CliRunner().invoke(kit.bench, ["--compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "+50.0%" in result.output
    assert "0.100" in result.output and "0.150" in result.output


def test_goals_are_ratios_taken_within_each_round_then_the_median() -> None:
    def round_(rawpost: float, minimal: float, floor: float, p99: float) -> Round:
        http = {
            "create_post": _http(rawpost, p99),
            "create_post@minimal": _http(minimal),
            "create_post@floor": _http(floor),
            "posts_page": _http(900, 50),  # no reference rows: no goal line
        }
        return Round(pk=_pg(10_000), http=http, statement={})

    # Per round over minimal: 1.5, 1.0, 1.3 -> 1.3; over the floor: 1.0, 0.5, 1.3 -> 1.0.
    rounds = [
        round_(1500, 1000, 1500, 80),
        round_(500, 500, 1000, 120),
        round_(1300, 1000, 1000, 90),
    ]
    table = kit.format_goals(rounds, ["posts_page", "create_post"])
    (line,) = [x for x in table.splitlines() if x.startswith("create_post")]
    assert line.split() == [
        "create_post",
        "1.30",
        ">=",
        "1.2",
        "1.00",
        ">=",
        "1.0",
        "90.0",
        "<=",
        "100",
        "yes",
    ]
    assert "posts_page" not in table
    slow = [round_(1500, 1000, 1500, 120), round_(1500, 1000, 1500, 130)]
    assert kit.format_goals(slow, ["create_post"]).splitlines()[-1].endswith("NO")
    assert kit.format_goals(rounds, ["posts_page"]) == ""


def test_goals_add_the_median_p99_at_the_paced_load_when_it_was_measured() -> None:
    def round_(p99: float, paced_p99: float) -> Round:
        http = {
            "create_post": _http(1500, p99),
            "create_post~paced": _http(750, paced_p99),
            "create_post@minimal": _http(1000),
            "create_post@floor": _http(1500),
        }
        return Round(pk=_pg(10_000), http=http, statement={})

    rounds = [round_(150, 12), round_(170, 30), round_(160, 9)]
    table = kit.format_goals(rounds, ["create_post"])
    assert "paced p99 ms" in table.splitlines()[1]
    (line,) = [x for x in table.splitlines() if x.startswith("create_post")]
    # The saturated p99 misses its goal; the paced one is the median of its own rounds.
    assert line.split()[-3:] == ["100", "NO", "12.0"]


def test_a_paced_round_offers_the_fraction_of_what_the_saturated_load_reached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rawpost_devtools.bench import runner as runner_module

    delays: list[float | None] = []

    def fake_wrk(*args: Any, delay_ms: float | None = None, **kwargs: Any) -> HttpResult:
        delays.append(delay_ms)
        return _http(400 if delay_ms else 1000, p99=20 if delay_ms else 90)

    monkeypatch.setattr(runner_module, "run_wrk", fake_wrk)
    monkeypatch.setattr(runner_module, "run_pgbench", lambda *a, **k: _pg(5000))
    config = _config(benchmarks=["user_by_id"], warmup_s=0, paced=0.5)
    runner = runner_module.Runner(
        wrk="wrk",
        pgbench="pgbench",
        url=config.url,
        database_url="postgresql://x@127.0.0.1/x",
        ids_file=tmp_path / "ids.json",
        tokens_file=tmp_path / "tokens.txt",
        workdir=tmp_path,
        config=config,
    )
    job = kit.PgbenchJob(scripts=("SELECT 1;",), defines={})
    (user_by_id,) = [b for b in BENCHMARKS if b.name == "user_by_id"]
    result = runner.round([user_by_id], {"user_by_id": job}, job, "run", 1)
    # Saturated first (no delay), then 64 connections offering half of its 1,000 req/s:
    # each waits 64 * 1000 / 500 = 128 ms on average.
    assert delays == [None, pytest.approx(128.0)]
    assert result.http["user_by_id~paced"].p99_ms == 20
    assert set(result.statement) == {"user_by_id", "user_by_id~paced"}
