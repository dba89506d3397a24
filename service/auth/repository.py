"""Sign-in, refresh and logout: the token routes' work over sql/auth/."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from litestar.di import NamedDependency

from service.auth.passwords import Passwords
from service.auth.schemas import Caller
from service.auth.tokens import (
    Keys,
    TokenPair,
    mint_access_token,
    new_refresh_token,
    refresh_digest,
)
from service.config import Settings
from service.db.statements import Executor
from service.errors import UnauthorizedError
from service.generated import auth as q

if TYPE_CHECKING:
    from service.auth.callers import Callers

_WRONG = "wrong email or password"


class Issuer:
    """What the token routes need: the keys, the lifetimes and the password hasher."""

    def __init__(self, settings: Settings, passwords: Passwords) -> None:
        assert settings.jwt_secret, "create_app checks the secrets first"
        self.keys = Keys(current=settings.jwt_secret, previous=settings.jwt_previous_secret)
        self.access_ttl = settings.access_token_ttl
        self.refresh_ttl = settings.refresh_token_ttl
        self.passwords = passwords
        self._fingerprint_key = hashlib.sha256(
            b"rawpost idempotency " + settings.jwt_secret.encode()
        ).digest()

    def fingerprint(self, body: bytes) -> bytes:
        """A keyed digest of a request body that holds a password, for Idempotency-Key's
        request hash: a plain sha256 stored beside the email would be cheap to crack."""
        return hmac.new(self._fingerprint_key, body, hashlib.sha256).digest()

    def pair(self, user_id: uuid.UUID, session_id: uuid.UUID, refresh_token: str) -> TokenPair:
        access = mint_access_token(
            self.keys, user_id=user_id, ttl=self.access_ttl, session_id=session_id
        )
        return TokenPair(
            access_token=access, expires_in=self.access_ttl, refresh_token=refresh_token
        )


async def get_caller(conn: Executor, *, user_id: uuid.UUID, jti: str) -> q.GetCallerRow | None:
    """The role and token cut-off of a live user, and whether this jti is revoked."""
    return await q.get_caller(conn, user_id=user_id, jti=jti)


async def list_auth_events(conn: Executor, *, since_xid: int) -> list[q.ListAuthEventsRow]:
    """Revocations and user changes of transactions from `since_xid` on (see
    service/auth/callers.py)."""
    return await q.list_auth_events(conn, since_xid=since_xid)


async def delete_expired_auth_events(conn: Executor) -> None:
    await q.delete_expired_auth_events(conn)


async def sign_in(conn: Executor, issuer: Issuer, *, email: str, password: str) -> TokenPair:
    """A new login for a live user with this email and password; 401 otherwise, alike
    for an unknown email, a wrong password and a user without a password."""
    row = await q.get_credentials(conn, email=email, user_id=None)
    ok, rehashed = await issuer.passwords.verify(password, row.password_hash if row else None)
    if row is None or not ok or row.password_hash is None:
        raise UnauthorizedError(_WRONG)
    refresh, digest = new_refresh_token()
    family = await q.insert_refresh_token(
        conn,
        user_id=row.id,
        token_hash=digest,
        family_id=uuid.uuid4(),
        ttl_seconds=float(issuer.refresh_ttl),
        password_hash=rehashed,
        verified_hash=row.password_hash,
    )
    if family is None:  # deleted between the two statements
        raise UnauthorizedError(_WRONG)
    return issuer.pair(row.id, family, refresh)


async def refresh(conn: Executor, issuer: Issuer, *, refresh_token: str) -> TokenPair:
    """Rotate a refresh token (one statement). A token of a live login that could not be
    rotated was used before, or has expired: a second statement, with a fresh snapshot,
    revokes the login if it was used (also when another request rotated it a moment ago),
    and the answer is a 401 either way."""
    presented = refresh_digest(refresh_token)
    successor, digest = new_refresh_token()
    row = await q.update_refresh_token(
        conn, token_hash=presented, new_token_hash=digest, ttl_seconds=float(issuer.refresh_ttl)
    )
    if row is not None and row.user_id is not None and row.family_id is not None:
        return issuer.pair(row.user_id, row.family_id, successor)
    if row is not None and row.known and await q.update_refresh_family(conn, token_hash=presented):
        raise UnauthorizedError(
            "this refresh token was already used: every token of its login is now revoked"
        )
    raise UnauthorizedError("the refresh token is unknown, expired or revoked")


async def log_out(
    conn: Executor,
    callers: Callers,
    *,
    caller: Caller,
    jti: str,
    expires_at: datetime,
    session_id: uuid.UUID | None,
) -> None:
    """Revoke this login's refresh tokens and the access token presented."""
    await q.insert_revocation(
        conn, user_id=caller.id, jti=jti, expires_at=expires_at, family_id=session_id
    )
    callers.revoke(jti, expires_at)  # here at once; other workers at their next poll


# What a handler declares to sign in, hash or mint: `issuer: IssuerDep`.
IssuerDep: TypeAlias = NamedDependency[Issuer]
