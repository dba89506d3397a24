"""`rawpost bench`: the click command that runs the rounds and reports them."""

from __future__ import annotations

import contextlib
import secrets
import signal
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec

from rawpost_devtools.bench.pgbench import find_pgbench, pgbench_job
from rawpost_devtools.bench.report import (
    CACHED,
    FLOOR,
    MINIMAL,
    PACED,
    WITH_SIGN_INS,
    Config,
    Report,
    Round,
    format_comparison,
    format_goals,
    format_table,
    git_version,
    machine_info,
    summarize,
)
from rawpost_devtools.bench.runner import Runner
from rawpost_devtools.bench.scenarios import (
    BENCHMARK_NAMES,
    BENCHMARKS,
    PK_STATEMENT,
    TOKEN_USERS,
    Sampled,
    SampleIds,
)
from rawpost_devtools.bench.server import (
    check_data,
    check_loopback,
    check_token,
    delete_created,
    http_status,
    mint_tokens,
    reference_server,
    server,
    signing_secret,
)
from rawpost_devtools.bench.wrk import find_wrk
from rawpost_devtools.seed import DEFAULT_IDS_FILE, resolve_database_url
from service.clitools import settings_or_exit


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # `timeout` and service managers send SIGTERM: unwind, so the server we started, wrk or
    # pgbench (killed by subprocess.run), and the embedded database are stopped.
    raise SystemExit(128 + signum)


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The server.")
@click.option(
    "--database-url",
    default=None,
    help="The server's database, for pgbench [default: DATABASE_URL, else the embedded one].",
)
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_IDS_FILE,
    show_default=True,
    help="Sample ids written by `rawpost seed`.",
)
@click.option(
    "--serve/--no-serve",
    "start",
    default=None,
    help="Start `rawpost serve` at --url for the run [default: only when nothing answers there].",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Rounds of every benchmark, interleaved; the table shows medians.",
)
@click.option(
    "--duration",
    type=click.IntRange(1, 300),
    default=10,
    show_default=True,
    help="Seconds each measurement (wrk or pgbench) runs.",
)
@click.option(
    "--warmup",
    type=click.IntRange(0, 60),
    default=3,
    show_default=True,
    help="Seconds of unrecorded wrk load before each measured one.",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 10_000),
    default=64,
    show_default=True,
    help="wrk connections (-c).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    help="wrk threads (-t).",
)
@click.option(
    "--clients",
    type=click.IntRange(1, 1000),
    default=None,
    help="pgbench connections [default: all the workers' pools,"
    " RAWPOST_WORKERS x RAWPOST_POOL_MAX_SIZE].",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="pgbench threads (-j).",
)
@click.option(
    "--sign-ins",
    type=click.IntRange(0, 1000),
    default=0,
    show_default=True,
    help="Also measure user_by_id with this many sign-ins a second beside it (each one"
    " Argon2id verify), reported as user_by_id+sign-ins.",
)
@click.option(
    "--cache",
    type=click.Choice(["off", "on", "both"]),
    default="off",
    show_default=True,
    help="The read cache (RAWPOST_CACHE) of the server the bench starts; `both` starts a"
    " second one with it on, at --url's port + 1, measured next to the first (NAME+cache).",
)
@click.option(
    "--references/--no-references",
    default=False,
    show_default=True,
    help="Also start bench/reference's minimal Litestar app and frameworkless floor under"
    " granian (rawpost's workers and pool size, at --url's port + 2 and + 3), measure every"
    " benchmark on them in the same rounds (NAME@minimal, NAME@floor) and print rawpost's"
    " ratios against the goals.",
)
@click.option(
    "--paced",
    type=click.FloatRange(0, 1, min_open=False, max_open=True),
    default=0.0,
    show_default=True,
    help="Also measure each benchmark on rawpost at this fraction of the req/s it just"
    " reached (0.5: half), each wrk connection waiting between its requests (NAME~paced):"
    " latency below saturation. 0: not measured.",
)
@click.option(
    "--only",
    type=click.Choice(BENCHMARK_NAMES),
    multiple=True,
    help="Run only these benchmarks (repeatable).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results here.",
)
@click.option(
    "--compare",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    nargs=2,
    default=None,
    help="Compare two --json files (A B) and exit.",
)
def bench(
    url: str,
    database_url: str | None,
    ids_file: Path,
    start: bool | None,
    runs: int,
    duration: int,
    warmup: int,
    connections: int,
    threads: int,
    clients: int | None,
    jobs: int,
    sign_ins: int,
    cache: str,
    references: bool,
    paced: float,
    only: tuple[str, ...],
    json_path: Path | None,
    compare: tuple[Path, Path] | None,
) -> None:
    """Run the standard benchmark: wrk per request, pgbench on each route's statement."""
    if compare:
        old, new = (msgspec.json.decode(p.read_bytes(), type=Report) for p in compare)
        click.echo(format_comparison(old, new, str(compare[0]), str(compare[1])))
        return
    url = url.rstrip("/")
    check_loopback(url)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    wrk, pgbench = find_wrk(), find_pgbench()
    settings = settings_or_exit()
    if clients is None:
        clients = settings.workers * settings.pool_max_size
    if not ids_file.is_file():
        raise click.ClickException(f"{ids_file} not found: run `rawpost seed` first")
    ids = msgspec.json.decode(ids_file.read_bytes(), type=SampleIds)
    if not ids.users:
        raise click.ClickException(f"{ids_file} lists no user ids: seed more users")
    # Imported here: loading sql/ at `rawpost` start-up would turn a broken SQL file into
    # a traceback for every command.
    from service.sql import QUERIES

    chosen = [b for b in BENCHMARKS if not only or b.name in only]
    db_url, _ = resolve_database_url(database_url)
    check_data(db_url, ids)
    jobs_by_name = {
        b.name: pgbench_job(QUERIES[b.query].source, b.params, ids.users) for b in chosen
    }
    pk_job = pgbench_job(PK_STATEMENT, {"user_id": Sampled.USER_ID}, ids.users)
    config = Config(
        url=url,
        benchmarks=[b.name for b in chosen],
        runs=runs,
        duration_s=duration,
        warmup_s=warmup,
        connections=connections,
        threads=threads,
        pgbench_clients=clients,
        pgbench_jobs=jobs,
        sign_ins=sign_ins,
        cache=cache,
        references=references,
        paced=paced,
    )
    if sign_ins and "user_by_id" not in config.benchmarks:
        raise click.UsageError("--sign-ins measures user_by_id: do not leave it out with --only")
    commit, dirty = git_version()
    report_start = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    servers = 1 + (cache == "both") + 2 * references
    loads = servers + (paced > 0)
    per_round = duration + len(chosen) * (loads * (warmup + duration) + duration)
    click.echo(
        f"{len(chosen)} benchmark(s) x {runs} run(s): about {per_round * runs // 60 + 1} min;"
        f" wrk -t{threads} -c{connections}, pgbench -c{clients} -j{jobs} -M prepared"
    )
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}{secrets.token_hex(2)}"
    rounds: list[Round] = []
    secret = signing_secret(settings, database_url)
    host, port = check_loopback(url)
    others: list[tuple[str, str]] = []
    cached_url = None
    if cache == "both":
        cached_url = f"http://{host}:{port + 1}"
        others.append((CACHED, cached_url))
        if start is False:
            raise click.UsageError("--cache both starts its own servers: drop --no-serve")
        start = True
    if references:
        others += [(MINIMAL, f"http://{host}:{port + 2}"), (FLOOR, f"http://{host}:{port + 3}")]
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            server(
                url,
                start=start,
                database_url=database_url,
                env={"RAWPOST_CACHE": "on" if cache == "on" else "off"},
            )
        )
        if cached_url:
            stack.enter_context(
                server(
                    cached_url, start=True, database_url=database_url, env={"RAWPOST_CACHE": "on"}
                )
            )
        for suffix, reference_url in others:
            if suffix in (MINIMAL, FLOOR):
                stack.enter_context(
                    reference_server(
                        suffix[1:],
                        reference_url,
                        workers=settings.workers,
                        pool_size=settings.pool_max_size,
                        database_url=db_url,
                        secret=secret,
                    )
                )
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="rawpost-bench-"))
        tokens_file = Path(tmp) / "tokens.txt"
        tokens = mint_tokens(secret, ids.users[:TOKEN_USERS], seconds=per_round * runs + 600)
        tokens_file.write_text("".join(f"{t}\n" for t in tokens))
        probe = http_status(f"{url}/api/users/{ids.users[0]}")
        if probe != 200:
            raise click.ClickException(
                f"GET {url}/api/users/{ids.users[0]} answered {probe}: the server does not"
                " serve the seeded database (set DATABASE_URL or --database-url for both)"
            )
        check_token(url, tokens[0])
        if leftover := delete_created(db_url):
            click.echo(f"deleted {leftover:,} rows left by an earlier, interrupted run")
        runner = Runner(
            wrk=wrk,
            pgbench=pgbench,
            url=url,
            database_url=db_url,
            ids_file=ids_file.resolve(),
            tokens_file=tokens_file,
            workdir=Path(tmp),
            config=config,
            others=tuple(others),
        )
        try:
            for r in range(1, runs + 1):
                rounds.append(runner.round(chosen, jobs_by_name, pk_job, f"{run_id}r{r}", r))
                # Keep the data set standard from round to round (and run to run).
                deleted = delete_created(db_url)
                click.echo(f"[{r}/{runs}] deleted the {deleted:,} rows the benchmark created")
        except BaseException:
            delete_created(db_url)
            raise
    suffixes = ["", *([PACED] if paced else []), *dict(others)]
    names = [b.name + suffix for b in chosen for suffix in suffixes]
    if sign_ins:
        names.insert(names.index("user_by_id") + 1, WITH_SIGN_INS)
    summary = summarize(rounds, names)
    click.echo("")
    click.echo(format_table(summary, runs))
    if goals := format_goals(rounds, [b.name for b in chosen]):
        click.echo("")
        click.echo(goals)
    if json_path:
        report = Report(
            started_at=report_start,
            commit=commit,
            dirty=dirty,
            machine=machine,
            config=config,
            rounds=rounds,
            summary=summary,
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
        click.echo(f"wrote {json_path}")
