"""What every `rawpost` command shares: settings, the database to work on, and failures
as one `Error:` line instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
import msgspec

from service import embedded
from service.config import Settings, SettingsError, check_jwt_secrets, load_settings
from service.logs import setup_logging

T = TypeVar("T")


def or_exit(work: Callable[[], T], *expected: type[Exception]) -> T:
    """Run `work`; any failure is one readable line (`Error: ...`), never a traceback."""
    from service.migrate import MigrationError

    plain: tuple[type[Exception], ...] = (
        SettingsError,
        MigrationError,
        embedded.EmbeddedMissingError,
        *expected,
    )
    try:
        return work()
    except (click.ClickException, click.Abort):
        raise
    except plain as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        detail = " / ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
        raise click.ClickException(f"{type(exc).__name__}: {detail}") from None


def settings_or_exit(**overrides: object) -> Settings:
    """The settings from the environment (and explicit options), or one line naming the
    variable that is wrong."""
    return or_exit(lambda: load_settings(overrides=overrides))


def database_url(settings: Settings, *, explicit: str | None = None) -> tuple[str, bool]:
    """--database-url, else DATABASE_URL, else the embedded server (started now); and
    whether it is the embedded one."""
    if explicit or settings.database_url:
        return explicit or settings.database_url or "", False
    click.echo(f"DATABASE_URL not set: using the embedded PostgreSQL in {settings.data_dir}")
    return or_exit(lambda: embedded.start(settings.data_dir)), True


def command_target() -> tuple[str, Settings]:
    """The database a one-off command works on, with logging set up."""
    settings = settings_or_exit()
    setup_logging(settings.log_level)
    url, _ = database_url(settings)
    return url, settings


def with_jwt_secret(settings: Settings, is_embedded: bool) -> Settings:
    """The settings with a usable signing secret, or a one-line error naming the variable.

    Only with the embedded development database does a missing secret get made (and kept
    in the data folder's parent, `.rawpost/` by default); anywhere else it stops the start.
    """
    if settings.jwt_secret is None and is_embedded:
        from service.auth.tokens import development_secret

        secret = development_secret(Path(settings.data_dir).parent)
        settings = msgspec.structs.replace(settings, jwt_secret=secret)
    or_exit(lambda: check_jwt_secrets(settings))
    return settings
