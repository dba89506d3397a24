"""The `rawpost` command: serve, migrate."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

import click
import msgspec

from service import embedded, migrate
from service.config import Settings, SettingsError, load_settings
from service.logs import setup_logging

log = logging.getLogger("rawpost.cli")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(overrides=overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _database_url(settings: Settings) -> tuple[str, bool]:
    """The configured DATABASE_URL, or the embedded server's (started now); and which."""
    if settings.database_url:
        return settings.database_url, False
    click.echo(f"DATABASE_URL not set: using the embedded PostgreSQL in {settings.data_dir}")
    return embedded.start(settings.data_dir), True


@click.group()
def main() -> None:
    """rawpost: users and posts over PostgreSQL."""


@main.command()
@click.option("--host", default=None, help="Bind address [RAWPOST_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [RAWPOST_PORT, default 8000].")
@click.option(
    "--migrate/--no-migrate",
    "apply_migrations",
    default=None,
    help="Apply pending migrations before serving (default: only for the embedded database).",
)
def serve(host: str | None, port: int | None, apply_migrations: bool | None) -> None:
    """Serve the HTTP API (starts an embedded PostgreSQL when DATABASE_URL is unset)."""
    import uvicorn

    from service.sql import SqlFileError

    try:
        from service.app import create_app
    except SqlFileError as exc:  # a missing SQL file, or one changed without regenerating
        raise click.ClickException(str(exc)) from None

    settings = _settings(host=host, port=port)
    setup_logging(settings.log_level)
    url, is_embedded = _database_url(settings)
    if apply_migrations or (apply_migrations is None and is_embedded):
        _apply(url)
    settings = msgspec.structs.replace(settings, database_url=url)
    click.echo(f"starting on http://{settings.host}:{settings.port} (docs at /schema)")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        lifespan="on",
    )


@main.group(name="migrate")
def migrate_group() -> None:
    """Schema migrations (yoyo) for DATABASE_URL, or the embedded database."""


@main.group()
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
    from service import contracts as generator

    click.echo("migrating a scratch database and reading its types ...")
    files = _or_fail(lambda: generator.build(database_url))
    for path in generator.write(files):
        click.echo(f"  wrote {path}")


@contracts.command(name="check")
@_DATABASE_URL_OPTION
def contracts_check(database_url: str | None) -> None:
    """Fail with a diff when service/generated/ is stale."""
    from service import contracts as generator

    click.echo("regenerating contracts in memory to compare ...")
    changes = generator.diff(_or_fail(lambda: generator.build(database_url)))
    if changes:
        click.echo(changes)
        raise click.ClickException(
            "service/generated/ is stale: run `uv run rawpost contracts generate` and commit"
        )
    click.echo("service/generated/ is up to date")


@main.group(name="sql")
def sql_group() -> None:
    """Checks of the hand-written SQL files."""


@sql_group.command(name="check")
@_DATABASE_URL_OPTION
def sql_check(database_url: str | None) -> None:
    """Prepare every file against a freshly migrated database; report every failure."""
    import psycopg

    from service.config import SQL_DIR
    from service.contracts import scratch, sqlcheck

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


T = TypeVar("T")


def _or_fail(work: Callable[[], T]) -> T:
    from service.contracts.introspect import ContractError

    try:
        return work()
    except ContractError as exc:
        raise click.ClickException(str(exc)) from None


@migrate_group.command()
def apply() -> None:
    """Apply pending migrations, holding an advisory lock."""
    settings = _settings()
    setup_logging(settings.log_level)
    url, _ = _database_url(settings)
    _apply(url)


def _apply(url: str) -> None:
    """Apply migrations; a failure is reported in one readable line, not a traceback."""
    try:
        migrate.apply(url, echo=click.echo)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise click.ClickException(
            f"migration failed ({type(exc).__name__}: {detail}); the failed migration was"
            " rolled back, earlier ones in this run stay applied"
        ) from None


if __name__ == "__main__":
    main()
