"""Access tokens (HS256 JWTs, Litestar's Token) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti")


# Verified tokens kept per worker: checking the signature again is a fifth of an
# authenticated read (docs/performance.md). Only the signature check is skipped on a hit;
# expiry, revocation and the user's liveness are checked on every request.
VERIFIED_CACHE_SIZE = 10_000


class Keys:
    """The signing secret, and the previous one kept to verify tokens issued before a
    rotation until they expire."""

    __slots__ = ("_verified", "current", "previous")

    def __init__(self, current: str, previous: str | None = None) -> None:
        self.current, self.previous = current, previous
        self._verified: dict[str, Token] = {}

    def decode(self, encoded: str) -> Token:
        """A verified token carrying sub/exp/iat/jti, or NotAuthorizedException."""
        token = self._verified.get(encoded)
        if token is not None:
            if token.exp > datetime.now(UTC):
                return token
            del self._verified[encoded]
        for secret in (self.current, self.previous):
            if secret is None:
                continue
            try:
                token = Token.decode(
                    encoded, secret, ALGORITHM, require_claims=list(REQUIRED_CLAIMS)
                )
            except NotAuthorizedException:
                continue
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[encoded] = token
            return token
        raise NotAuthorizedException("the access token is malformed, expired or badly signed")


class TokenPair(msgspec.Struct, kw_only=True):
    """What a sign-in or refresh returns (RFC 6749's token response)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (RFC 6750 scheme name)
    expires_in: int
    refresh_token: str


def mint_access_token(
    keys: Keys, *, user_id: uuid.UUID, ttl: int, session_id: uuid.UUID | None = None
) -> str:
    """A signed access token for `user_id`; `sid` names the login it belongs to."""
    now = datetime.now(UTC).replace(microsecond=0)
    extras = {} if session_id is None else {"sid": str(session_id)}
    token = Token(
        sub=str(user_id),
        exp=now + timedelta(seconds=ttl),
        iat=now,
        jti=uuid.uuid4().hex,
        extras=extras,
    )
    return token.encode(keys.current, ALGORITHM)


def session_of(token: Token) -> uuid.UUID | None:
    """The login (refresh-token family) an access token was issued for, if any."""
    try:
        return uuid.UUID(str(token.extras["sid"]))
    except (KeyError, ValueError):
        return None


def new_refresh_token() -> tuple[str, bytes]:
    """An opaque refresh token and the digest that is stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, refresh_digest(token)


def refresh_digest(token: str) -> bytes:
    # 256 random bits need no slow hash: sha256 already makes the stored value useless.
    return hashlib.sha256(token.encode()).digest()


def development_secret(folder: Path) -> str:
    """The embedded development database's signing secret: made on first use and kept in
    `folder/jwt-secret` (mode 0600), so tokens survive restarts."""
    path = folder / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret
