"""Who a verified access token speaks for, with a per-worker cache that revocations reach
within a second.

Every worker keeps, in memory, the role of the users whose tokens it has seen and the
access tokens revoked by a logout. It polls `auth_events` (written by logout and, through
a trigger, by every change of a user's role or liveness) every POLL_INTERVAL seconds;
an event drops the user's cached entry or records the revoked `jti`. Each poll reads the
events of every transaction still running at the poll before (a transaction-id
watermark), so an event is seen however late its transaction commits.

A cached answer is trusted only while the last poll that succeeded started less than
TRUST_WINDOW ago, so a revocation committed at time T is applied everywhere by
T + TRUST_WINDOW + one request, on every worker of every instance that shares the
database, with no Redis and no extra statement on the common path. A poller that cannot
reach the database stops being trusted, and each request then asks the database itself
(sql/auth/get_caller.sql); after a long outage the cache starts over. Entries also
expire after ENTRY_TTL, a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TypeAlias

import msgspec
from litestar.di import NamedDependency
from litestar.security.jwt import Token

from service.auth import repository
from service.auth.schemas import Caller
from service.background import in_background
from service.db.pool import Database
from service.db.session import Session
from service.db.statements import Timed

log = logging.getLogger("rawpost.auth")

POLL_INTERVAL = 0.2
TRUST_WINDOW = 0.75  # + one request in flight: under the contract's 1 s bound
ENTRY_TTL = 60.0
# A poller that has not succeeded for this long starts over (events are pruned after an
# hour; docs/security.md).
RESYNC_AFTER = 30.0
PRUNE_EVERY = 60.0
MAX_CACHED_USERS = 100_000
REVOKED_FALLBACK_TTL = 24 * 3600.0


class _Entry(msgspec.Struct, frozen=True, array_like=True):
    role: str
    # Tokens issued at or before this second are refused (the user was deleted once).
    valid_after: int | None
    fetched: float  # monotonic


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


class Callers:
    """The cache and its poller; one per worker, built in the app's lifespan."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._users: dict[uuid.UUID, _Entry] = {}
        self._revoked: dict[str, float] = {}  # jti -> its token's expiry (epoch seconds)
        self._trusted_since = -1.0  # monotonic start of the last poll that succeeded
        self._watermark: int | None = None  # oldest running xid at the last poll
        self._polls = 0  # polls completed
        self._touched: dict[uuid.UUID, int] = {}  # user -> the last poll that dropped it
        self.polls_failed = 0

    def _trusted(self) -> bool:
        return time.monotonic() - self._trusted_since < TRUST_WINDOW

    async def caller_for(self, token: Token) -> Caller | None:
        """The live user behind a verified token, or None (deleted, or token revoked)."""
        try:
            user_id = uuid.UUID(token.sub)
        except ValueError:
            return None
        jti = str(token.jti)
        entry = self._users.get(user_id) if self._trusted() else None
        if entry is None or time.monotonic() - entry.fetched > ENTRY_TTL:
            entry = await self._fetch(user_id, jti)
            if entry is None:
                return None
        issued = int(token.iat.timestamp())
        if entry.valid_after is not None and issued <= entry.valid_after:
            return None
        return Caller(id=user_id, role=entry.role)

    def forget(self, user_id: uuid.UUID) -> None:
        """This worker changed the user (deleted it): apply it here at once, not at the
        next poll, so the instance that made the write never serves the old answer."""
        self._users.pop(user_id, None)
        self._touched[user_id] = self._polls + 1

    def revoke(self, jti: str, expires_at: datetime) -> None:
        """This worker logged a token out: refuse it here at once."""
        self._revoked[jti] = expires_at.timestamp()

    def revoked(self, token: Token) -> bool:
        """A logout revoked this access token (known to this worker, see the poller)."""
        return str(token.jti) in self._revoked

    async def _fetch(self, user_id: uuid.UUID, jti: str) -> _Entry | None:
        before = self._polls
        session = Session(self._db)
        try:
            row = await repository.get_caller(session, user_id=user_id, jti=jti)
        finally:
            await session.close()
        if row is None:
            return None
        if row.revoked:
            self._revoked.setdefault(jti, time.time() + REVOKED_FALLBACK_TTL)
            return None
        entry = _Entry(row.role, _epoch(row.tokens_valid_after), time.monotonic())
        # A poll that dropped this user while the statement ran may have seen a change the
        # statement did not: answer this request, but do not keep the answer.
        if self._touched.get(user_id, -1) <= before:
            if len(self._users) >= MAX_CACHED_USERS:
                self._users.clear()
            self._users[user_id] = entry
        return entry

    async def poll(self) -> None:
        """Apply every event since the last poll (all unexpired revocations, the first time)."""
        started = time.monotonic()
        if self._trusted_since > 0 and started - self._trusted_since > RESYNC_AFTER:
            log.info(
                "auth poller starts over after %.0f s without a poll", started - self._trusted_since
            )
            self._users.clear()
            self._watermark = None
        async with self._db.pool.acquire(timeout=self._db.settings.acquire_timeout) as conn:
            rows = await repository.list_auth_events(Timed(conn), since_xid=self._watermark or 0)
        number = self._polls + 1
        for row in rows:
            if row.user_id is None:
                self._watermark = row.watermark
            elif row.jti is not None:
                expires = row.expires_at.timestamp() if row.expires_at else None
                self._revoked[row.jti] = expires or time.time() + REVOKED_FALLBACK_TTL
            else:
                self._users.pop(row.user_id, None)
                self._touched[row.user_id] = number
        self._polls = number
        self._trusted_since = started
        if len(self._touched) > 10_000:  # only recent polls matter to _fetch
            self._touched = {u: n for u, n in self._touched.items() if n > number - 50}

    async def prune(self) -> None:
        """Forget revocations of tokens past their expiry, here and in the database."""
        now = time.time()
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
        async with self._db.pool.acquire(timeout=self._db.settings.acquire_timeout) as conn:
            await repository.delete_expired_auth_events(Timed(conn))

    @contextlib.asynccontextmanager
    async def polling(self) -> AsyncIterator[None]:
        """Poll in the background for as long as the block runs."""
        with contextlib.suppress(Exception):
            await self.poll()  # a first view before serving; the loop retries if it fails
        async with in_background(self._loop(), "rawpost-auth-poller"):
            yield

    async def _loop(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                await self.poll()
                if time.monotonic() - last_prune > PRUNE_EVERY:
                    last_prune = time.monotonic()
                    await self.prune()
            except Exception as exc:
                # Not trusted any more (see _trusted): requests ask the database instead.
                self.polls_failed += 1
                if self.polls_failed == 1 or self.polls_failed % 100 == 0:
                    log.warning(
                        "auth poller failed (%s, %d in a row); callers are looked up per request",
                        type(exc).__name__,
                        self.polls_failed,
                    )
            else:
                if self.polls_failed:
                    log.info("auth poller recovered after %d failed polls", self.polls_failed)
                self.polls_failed = 0


# What a handler declares to tell its worker's cache about a write: `callers: CallersDep`.
CallersDep: TypeAlias = NamedDependency[Callers]
