"""The development commands `rawpost` gains in a source checkout (entry point
`rawpost.commands`): contracts, sql check, seed, bench, fuzz, migrate rehearse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from rawpost_devtools.bench import bench
from rawpost_devtools.fuzz import fuzz
from rawpost_devtools.seed import seed
from service.clitools import command_target, or_exit

T = TypeVar("T")


def register(main: click.Group) -> None:
    """Add the development commands to the `rawpost` group."""
    main.add_command(contracts)
    main.add_command(sql_group)
    main.add_command(seed)
    main.add_command(bench)
    main.add_command(fuzz)
    migrate = main.commands["migrate"]
    assert isinstance(migrate, click.Group)
    migrate.add_command(rehearse)


def _or_fail(work: Callable[[], T]) -> T:
    # Imported here: loading sql/ when `rawpost` starts would turn a broken SQL file into
    # a traceback for every command.
    from rawpost_devtools.contracts.introspect import ContractError

    return or_exit(work, ContractError)


@click.group()
def contracts() -> None:
    """Typed Structs and query functions generated from the migrated schema and sql/."""


_DATABASE_URL_OPTION = click.option(
    "--database-url",
    default=None,
    help="A server to use for the scratch database (needs CREATEDB);"
    " default: a temporary embedded PostgreSQL.",
)


@contracts.command(name="generate")
@_DATABASE_URL_OPTION
def contracts_generate(database_url: str | None) -> None:
    """Migrate a scratch database, read its types, write service/generated/."""
    from rawpost_devtools import contracts as generator

    click.echo("migrating a scratch database and reading its types ...")
    files = _or_fail(lambda: generator.build(database_url))
    for path in generator.write(files):
        click.echo(f"  wrote {path}")


@contracts.command(name="check")
@_DATABASE_URL_OPTION
def contracts_check(database_url: str | None) -> None:
    """Fail with a diff when service/generated/ is stale."""
    from rawpost_devtools import contracts as generator

    click.echo("regenerating contracts in memory to compare ...")
    changes = generator.diff(_or_fail(lambda: generator.build(database_url)))
    if changes:
        click.echo(changes)
        raise click.ClickException(
            "service/generated/ is stale: run `uv run rawpost contracts generate` and commit"
        )
    click.echo("service/generated/ is up to date")


@click.group(name="sql")
def sql_group() -> None:
    """Checks of the hand-written SQL files."""


@sql_group.command(name="check")
@_DATABASE_URL_OPTION
def sql_check(database_url: str | None) -> None:
    """Prepare every file against a freshly migrated database; report every failure."""
    import psycopg

    from rawpost_devtools import scratch, sqlcheck
    from service.resources import SQL_DIR

    click.echo(f"preparing every file under {SQL_DIR} against a freshly migrated database ...")
    with (
        scratch.scratch_database(database_url) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        problems = sqlcheck.check(conn, SQL_DIR)
    for line in problems:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in SQL files")
    click.echo("all SQL files prepare and filter soft-deleted rows")


@click.command()
@click.option("--with-data", is_flag=True, help="Copy rows too, not only the schema.")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="With --with-data: at most N rows a table.",
)
@click.option(
    "--lock-timeout", default="5s", show_default=True, help="lock_timeout while applying."
)
@click.option(
    "--statement-timeout",
    default="15min",
    show_default=True,
    help="statement_timeout while applying.",
)
def rehearse(
    with_data: bool, sample: int | None, lock_timeout: str, statement_timeout: str
) -> None:
    """Apply the pending migrations to a scratch copy, report, roll back and forward, drop it."""
    from rawpost_devtools.rehearse import rehearse as run

    if sample is not None and not with_data:
        raise click.UsageError("--sample needs --with-data")
    url, settings = command_target()
    ok = or_exit(
        lambda: run(
            url,
            click.echo,
            migrations_dir=Path(settings.migrations_dir),
            record_file=Path(settings.rehearsal_file),
            with_data=with_data,
            sample=sample,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
        )
    )
    if not ok:
        raise click.ClickException("rehearsal failed; the target was not changed")
