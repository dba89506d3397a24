"""Operator commands: `rawpost users set-password|promote|demote EMAIL`, `rawpost token`.

No HTTP route grants a role or sets a password without the current one: these run with
the database's own credentials, on the operator's terminal. The service's modules are
imported when a command runs, not when `rawpost` starts: `rawpost serve` must not load
prometheus_client before it has set the workers' shared metrics folder.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg
import click
import msgspec

from service.clitools import command_target
from service.config import Settings

if TYPE_CHECKING:
    from service.db.statements import Executor

T = TypeVar("T")
ADMIN = "admin"  # service.auth.schemas.ADMIN, without importing the app's modules


def _run(database_url: str, work: Callable[[Executor], Awaitable[T]]) -> T:
    from service.db.statements import Timed

    async def main() -> T:
        conn = await asyncpg.connect(database_url)
        try:
            return await work(Timed(conn))
        finally:
            await conn.close()

    return asyncio.run(main())


def read_password() -> str:
    """From a hidden prompt (typed twice) on a terminal, else the first line of stdin;
    never from the command line, where `ps` and shell history would show it."""
    from service.auth.schemas import Password

    if sys.stdin.isatty():
        text: str = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    try:
        return msgspec.convert(text, Password)
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"the password is not acceptable: {exc}") from None


def set_password(database_url: str, email: str, password: str) -> uuid.UUID:
    from service.auth.passwords import HASHER
    from service.users import repository

    password_hash = HASHER.hash(password)

    async def work(conn: Executor) -> uuid.UUID | None:
        return await repository.update_user_password(conn, email=email, password_hash=password_hash)

    return _found(_run(database_url, work), email)


def set_role(database_url: str, email: str, role: str) -> uuid.UUID:
    from service.users import repository

    async def work(conn: Executor) -> uuid.UUID | None:
        return await repository.update_user_role(conn, email=email, role=role)

    return _found(_run(database_url, work), email)


def _found(user_id: uuid.UUID | None, email: str) -> uuid.UUID:
    if user_id is None:
        raise click.ClickException(f"no live user has the email {email!r}")
    return user_id


def mint_tokens(settings: Settings, user_ids: list[uuid.UUID], ttl: int) -> list[str]:
    """Access tokens for these ids, signed with the configured secret (no password)."""
    from service.auth.tokens import Keys, mint_access_token

    assert settings.jwt_secret is not None
    keys = Keys(current=settings.jwt_secret)
    return [mint_access_token(keys, user_id=user_id, ttl=ttl) for user_id in user_ids]


def promote_message(email: str, role: str) -> str:
    verb = "is now an admin" if role == ADMIN else "is no longer an admin"
    return f"{email} {verb}; every worker applies it within a second"


@click.group()
def users() -> None:
    """Accounts, for operators: passwords and the admin role."""


@users.command(name="set-password")
@click.argument("email")
def users_set_password(email: str) -> None:
    """Set EMAIL's password, read from a prompt or stdin (never an argument); revokes the
    user's refresh tokens."""
    password = read_password()
    url, _ = command_target()
    set_password(url, email, password)
    click.echo(f"password set for {email}; its refresh tokens are revoked")


@users.command()
@click.argument("email")
def promote(email: str) -> None:
    """Grant EMAIL the admin role."""
    _change_role(email, ADMIN)


@users.command()
@click.argument("email")
def demote(email: str) -> None:
    """Remove the admin role from EMAIL."""
    _change_role(email, "user")


def _change_role(email: str, role: str) -> None:
    url, _ = command_target()
    set_role(url, email, role)
    click.echo(promote_message(email, role))
