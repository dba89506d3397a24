"""The `rawpost` command: serve, migrate, users, token.

Development commands (seed, bench, contracts, sql check, migrate rehearse) come from the
`rawpost-devtools` package of a source checkout, through the `rawpost.commands` entry
point group (as Flask finds `flask.commands`): the service never imports them.
"""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Callable

import click
import msgspec

from service import server
from service.clitools import database_url, settings_or_exit, with_jwt_secret
from service.logs import setup_logging

COMMANDS_ENTRY_POINTS = "rawpost.commands"


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
    from service.migrate.commands import apply_pending

    settings = settings_or_exit(host=host, port=port, workers=workers)
    setup_logging(settings.log_level)
    url, is_embedded = database_url(settings)
    settings = with_jwt_secret(msgspec.structs.replace(settings, database_url=url), is_embedded)
    if apply_migrations or (apply_migrations is None and is_embedded):
        apply_pending(url, settings)
    click.echo(
        f"starting {settings.workers} worker(s) on http://{settings.host}:{settings.port}"
        " (docs at /schema)"
    )
    server.run(settings)


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

    settings = settings_or_exit()
    settings = with_jwt_secret(settings, is_embedded=not settings.database_url)
    for line in commands.mint_tokens(settings, list(user_ids), ttl or settings.access_token_ttl):
        click.echo(line)


def _add_commands() -> None:
    from service.migrate.commands import migrate_group
    from service.users.commands import users

    main.add_command(migrate_group)
    main.add_command(users)
    for entry_point in importlib.metadata.entry_points(group=COMMANDS_ENTRY_POINTS):
        register: Callable[[click.Group], None] = entry_point.load()
        register(main)


_add_commands()


if __name__ == "__main__":
    main()
