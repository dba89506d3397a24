"""The `rawpost` command: serve, migrate, contracts, sql check, seed, bench."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
import msgspec

from service import embedded, migrate, server
from service.bench import bench
from service.config import Settings, SettingsError, check_jwt_secrets, load_settings
from service.logs import setup_logging
from service.seed import seed

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
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes [RAWPOST_WORKERS, default: the number of CPUs].",
)
@click.option(
    "--migrate/--no-migrate",
    "apply_migrations",
    default=None,
    help="Apply pending migrations before serving (default: only for the embedded database).",
)
def serve(
    host: str | None, port: int | None, workers: int | None, apply_migrations: bool | None
) -> None:
    """Serve the HTTP API (starts an embedded PostgreSQL when DATABASE_URL is unset)."""
    settings = _settings(host=host, port=port, workers=workers)
    setup_logging(settings.log_level)
    url, is_embedded = _database_url(settings)
    settings = _with_jwt_secret(msgspec.structs.replace(settings, database_url=url), is_embedded)
    if apply_migrations or (apply_migrations is None and is_embedded):
        _apply(url, settings)
    click.echo(
        f"starting {settings.workers} worker(s) on http://{settings.host}:{settings.port}"
        " (docs at /schema)"
    )
    server.run(settings)


def _with_jwt_secret(settings: Settings, is_embedded: bool) -> Settings:
    """The settings with a usable signing secret, or a one-line error naming the variable.

    Only with the embedded development database does a missing secret get made (and kept
    in the data folder's parent, `.rawpost/` by default); anywhere else it stops the start.
    """
    if settings.jwt_secret is None and is_embedded:
        from service.auth.tokens import development_secret

        secret = development_secret(Path(settings.data_dir).parent)
        settings = msgspec.structs.replace(settings, jwt_secret=secret)
    try:
        check_jwt_secrets(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


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


def _migration_target() -> tuple[str, Settings]:
    settings = _settings()
    setup_logging(settings.log_level)
    url, _ = _database_url(settings)
    return url, settings


_DRY_RUN = click.option("--dry-run", is_flag=True, help="Print the SQL; change nothing.")


@migrate_group.command()
def status() -> None:
    """Applied and pending migrations; exit 1 if an applied file changed since."""
    url, settings = _migration_target()
    rows, unknown = _or_exit(lambda: migrate.status(url, Path(settings.migrations_dir)))
    click.echo(f"{'state':<11} {'applied at (UTC)':<20} migration")
    for row in rows:
        when = row.applied_at.strftime("%Y-%m-%d %H:%M:%S") if row.applied_at else "-"
        note = {
            "changed": "  <-- file changed since it was applied",
            "unrecorded": "  (applied without rawpost: no checksum recorded)",
        }.get(row.state, "")
        click.echo(f"{row.state:<11} {when:<20} {row.id}{note}")
    for mid in unknown:
        click.echo(f"{'unknown':<11} {'':<20} {mid}  <-- applied, but not in this version")
    changed = [r.id for r in rows if r.state == "changed"]
    counts = {s: sum(r.state == s for r in rows) for s in ("pending",)}
    click.echo(
        f"{len(rows)} migration(s): {len(rows) - counts['pending']} applied,"
        f" {counts['pending']} pending; {len(changed)} changed since applied"
    )
    if changed or unknown:
        raise click.ClickException("applied migrations differ from the files in this version")


@migrate_group.command()
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
    from service.migrate.rehearse import rehearse as run

    if sample is not None and not with_data:
        raise click.UsageError("--sample needs --with-data")
    url, settings = _migration_target()
    ok = _or_exit(
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


@migrate_group.command()
@_DRY_RUN
@click.option("--force", is_flag=True, help="Apply even if the schema changed since the rehearsal.")
def apply(dry_run: bool, force: bool) -> None:
    """Apply pending migrations, holding an advisory lock."""
    url, settings = _migration_target()
    _apply(url, settings, dry_run=dry_run, force=force)


@migrate_group.command()
@click.option("--to", "to", default=None, help="Roll back every migration applied after this id.")
@_DRY_RUN
def rollback(to: str | None, dry_run: bool) -> None:
    """Roll back the newest migration (or down to --to ID), newest first."""
    url, settings = _migration_target()
    _or_exit(
        lambda: migrate.rollback(
            url, click.echo, to=to, migrations_dir=Path(settings.migrations_dir), dry_run=dry_run
        )
    )


def _apply(url: str, settings: Settings, *, dry_run: bool = False, force: bool = False) -> None:
    _or_exit(lambda: migrate.wait_for_database(url, settings.startup_timeout, click.echo))
    _or_exit(
        lambda: migrate.apply(
            url,
            click.echo,
            migrations_dir=Path(settings.migrations_dir),
            dry_run=dry_run,
            force=force,
            rehearsals=Path(settings.rehearsal_file),
        )
    )


def _or_exit(work: Callable[[], T]) -> T:
    """Run a migration command; any failure is one readable line, not a traceback."""
    try:
        return work()
    except (migrate.MigrationError, click.ClickException) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        detail = " / ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        raise click.ClickException(f"{type(exc).__name__}: {detail}") from None


@main.group()
def users() -> None:
    """Accounts, for operators: passwords and the admin role."""


@users.command(name="set-password")
@click.argument("email")
def users_set_password(email: str) -> None:
    """Set EMAIL's password, read from a prompt or stdin (never an argument); revokes the
    user's refresh tokens."""
    from service.users import commands

    password = commands.read_password()
    url, _ = _migration_target()
    commands.set_password(url, email, password)
    click.echo(f"password set for {email}; its refresh tokens are revoked")


@users.command()
@click.argument("email")
def promote(email: str) -> None:
    """Grant EMAIL the admin role."""
    _set_role(email, "admin")


@users.command()
@click.argument("email")
def demote(email: str) -> None:
    """Remove the admin role from EMAIL."""
    _set_role(email, "user")


def _set_role(email: str, role: str) -> None:
    from service.users import commands

    url, _ = _migration_target()
    commands.set_role(url, email, role)
    click.echo(commands.promote_message(email, role))


@main.command()
@click.argument("user_ids", nargs=-1, required=True, type=click.UUID)
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    default=None,
    help="Lifetime in seconds [default: RAWPOST_ACCESS_TOKEN_TTL].",
)
def token(user_ids: tuple[uuid.UUID, ...], ttl: int | None) -> None:
    """Print an access token for each USER_ID, signed with the configured secret (for
    operators and load tests: no password needed). The ids are not checked here; a token
    for a missing or deleted user is refused when used."""
    from service.users import commands

    settings = _settings()
    settings = _with_jwt_secret(settings, is_embedded=not settings.database_url)
    for line in commands.mint_tokens(settings, list(user_ids), ttl or settings.access_token_ttl):
        click.echo(line)


main.add_command(seed)
main.add_command(bench)


if __name__ == "__main__":
    main()
