"""`rawpost migrate status|apply|rollback`: the operator's side of service.migrate."""

from __future__ import annotations

from pathlib import Path

import click

from service import migrate
from service.clitools import command_target, or_exit
from service.config import Settings


@click.group(name="migrate")
def migrate_group() -> None:
    """Schema migrations (yoyo) for DATABASE_URL, or the embedded database."""


DRY_RUN = click.option("--dry-run", is_flag=True, help="Print the SQL; change nothing.")


@migrate_group.command()
def status() -> None:
    """Applied and pending migrations; exit 1 if an applied file changed since."""
    url, settings = command_target()
    rows, unknown = or_exit(lambda: migrate.status(url, Path(settings.migrations_dir)))
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
    pending = sum(r.state == "pending" for r in rows)
    click.echo(
        f"{len(rows)} migration(s): {len(rows) - pending} applied,"
        f" {pending} pending; {len(changed)} changed since applied"
    )
    if changed or unknown:
        raise click.ClickException("applied migrations differ from the files in this version")


@migrate_group.command()
@DRY_RUN
@click.option("--force", is_flag=True, help="Apply even if the schema changed since the rehearsal.")
def apply(dry_run: bool, force: bool) -> None:
    """Apply pending migrations, holding an advisory lock."""
    url, settings = command_target()
    apply_pending(url, settings, dry_run=dry_run, force=force)


@migrate_group.command()
@click.option("--to", "to", default=None, help="Roll back every migration applied after this id.")
@DRY_RUN
def rollback(to: str | None, dry_run: bool) -> None:
    """Roll back the newest migration (or down to --to ID), newest first."""
    url, settings = command_target()
    or_exit(
        lambda: migrate.rollback(
            url, click.echo, to=to, migrations_dir=Path(settings.migrations_dir), dry_run=dry_run
        )
    )


def apply_pending(
    url: str, settings: Settings, *, dry_run: bool = False, force: bool = False
) -> None:
    """Wait for the database, then apply what is pending (`serve --migrate` runs this too)."""
    or_exit(lambda: migrate.wait_for_database(url, settings.startup_timeout, click.echo))
    or_exit(
        lambda: migrate.apply(
            url,
            click.echo,
            migrations_dir=Path(settings.migrations_dir),
            dry_run=dry_run,
            force=force,
            rehearsals=Path(settings.rehearsal_file),
        )
    )
