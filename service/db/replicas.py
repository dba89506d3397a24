"""Read replicas (RAWPOST_REPLICA_URLS): a pool per streaming standby, each standby's
replay position and lag kept fresh by a poller in every worker, and the choice of where a
read runs. docs/scaling.md, "Read replicas", explains the rules and their reasons.

- Every `replica_poll_interval` each worker reads the primary's WAL position and each
  standby's replay position on connections of their own, so a read chooses its server
  from memory: no round trip on the common path.
- Lag is time, not bytes: how long ago the primary first reached a position the standby
  has not replayed. An idle primary leaves a caught-up standby at 0, whereas `now() -
  pg_last_xact_replay_timestamp()` would grow with every idle second.
- A write's Consistency-Token is the primary's WAL position read after its COMMIT
  returned (service.db.session); a read sending it back runs on a standby that has
  replayed that far, waiting at most RAWPOST_REPLICA_WAIT, else on the primary.
- A standby that stops answering, lags past RAWPOST_REPLICA_MAX_LAG or is no longer in
  recovery gets no reads until its poller sees it well again.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from litestar.types import Message, Scope

from service import observability
from service.config import Settings
from service.db.pool import Pool, RawConnection, open_pool
from service.metrics import (
    REPLICA_FALLBACKS,
    REPLICA_LAG_SECONDS,
    REPLICA_POOL_CONNECTIONS,
    REPLICA_READS,
    REPLICA_TOKEN_WAIT_SECONDS,
    REPLICA_UP,
)

log = logging.getLogger("rawpost.replicas")

# Where the primary has written its WAL up to. Once COMMIT has returned (with
# synchronous_commit on or local, PostgreSQL's default) the commit record is written, so a
# position read afterwards is at or past it; one read inside the write statement would be
# before the commit record, which a standby could reach without showing the write.
WAL_POSITION = "SELECT pg_current_wal_lsn()"
# A Consistency-Token: where the WAL has been inserted up to, read after COMMIT returned.
# At or past the commit record even when synchronous_commit is off (the record may not be
# written yet, and no standby replays past it before it is).
COMMITTED_POSITION = "SELECT pg_current_wal_insert_lsn()"
_REPLAY_POSITION = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"
# Which cluster a server belongs to: a standby shares its primary's identifier.
_CLUSTER = "SELECT system_identifier FROM pg_control_system()"

POLL_TIMEOUT = 1.0  # a server slower than this to tell its position counts as down
RECONNECT_EVERY = 0.5  # while a server is down, how often its poller tries again
MIN_GAP = 0.002  # between two polls of one standby, however many reads wait for it
# The polls' own connections, told apart from the pools' in pg_stat_activity.
POLLER_SETTINGS = {"application_name": "rawpost-replica-poller"}

TOKEN_HEADER = b"consistency-token"
COOKIE_NAME = "rawpost_consistency"
COOKIE_MAX_AGE = 60  # a healthy standby is at most RAWPOST_REPLICA_MAX_LAG behind
# A GET route whose handler has this in its `opt` reads from the primary.
PRIMARY_ONLY = "primary_only"

DOWN, STANDBY, NOT_STANDBY = "down", "standby", "not a standby"
OTHER_CLUSTER = "standby of another cluster"
FALLBACK_REASONS = ("unavailable", "behind", "error")


def encode_token(lsn: int) -> bytes:
    """A Consistency-Token: the WAL position as 16 hex digits (opaque to clients)."""
    return b"%016X" % lsn


def decode_token(value: bytes | str) -> int:
    """The WAL position in a token; 0 (no constraint) for anything malformed."""
    text = value.strip()
    if not 0 < len(text) <= 16:
        return 0
    try:
        return max(int(text, 16), 0)
    except ValueError:
        return 0


def _cookie_token(header: bytes) -> int:
    for part in header.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE_NAME.encode():
            return decode_token(value)
    return 0


def requested_position(scope: Scope, cookie: bool) -> int:
    """The WAL position a read must see: its Consistency-Token header, else (with
    RAWPOST_CONSISTENCY_COOKIE) its cookie; 0 without either."""
    from_cookie = 0
    for name, value in scope["headers"]:
        if name == TOKEN_HEADER:
            return decode_token(value)
        if cookie and name == b"cookie":
            from_cookie = from_cookie or _cookie_token(value)
    return from_cookie


def replica_readable(method: str, route: str) -> bool:
    """A GET or HEAD under /api, outside /api/auth: what a standby may answer (and where
    the OpenAPI document declares the Consistency-Token request header). Everything else
    (writes, the token routes, /health) uses the primary."""
    return (
        method in ("GET", "HEAD")
        and route.startswith("/api/")
        and not route.startswith("/api/auth")
    )


def reads_from_replica(scope: Scope) -> bool:
    """A replica-readable request (`replica_readable`) whose route does not ask for the
    primary."""
    http: Any = scope
    method = http.get("method")
    if method is None or not replica_readable(method, http.get("path_template") or http["path"]):
        return False
    handler = http.get("route_handler")
    return handler is None or not handler.opt.get(PRIMARY_ONLY)


def consistency_headers(
    settings: Settings,
) -> Callable[[Message, Scope], Awaitable[None]]:
    """Litestar `before_send` hook: an answer below 400 to a request that wrote gets the
    Consistency-Token header (and, with RAWPOST_CONSISTENCY_COOKIE, the cookie)."""
    cookie = settings.consistency_cookie

    async def add_token(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or message["status"] >= 400:
            return
        ctx = observability.current()
        if ctx is None or ctx.consistency_lsn is None:
            return
        start: Any = message
        headers = start.get("headers")
        if not isinstance(headers, list):
            headers = start["headers"] = list(headers or ())
        token = encode_token(ctx.consistency_lsn)
        headers.append((TOKEN_HEADER, token))
        if cookie:
            headers.append(
                (
                    b"set-cookie",
                    b"%s=%s; Path=/api; Max-Age=%d; HttpOnly; SameSite=Lax"
                    % (COOKIE_NAME.encode(), token, COOKIE_MAX_AGE),
                )
            )

    return add_token


def replica_names(urls: tuple[str, ...]) -> list[str]:
    """host:port of each URL (never its credentials), made unique with #2, #3 ..."""
    names: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
        try:
            port = parts.port or 5432
        except ValueError:
            port = 5432
        name = base = f"{host}:{port}"
        n = 1
        while name in names:
            n += 1
            name = f"{base}#{n}"
        names.append(name)
    return names


class Replica:
    """One standby as this worker sees it; changed only by its poller and the Sessions."""

    __slots__ = (
        "born",
        "in_use",
        "lag",
        "lagging",
        "name",
        "pool",
        "reads",
        "replay",
        "state",
        "url",
        "waiting",
        "wake",
    )

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.pool: Pool | None = None  # opened once the standby first answers
        self.born: dict[int, float] = {}  # server pid -> when its connection opened
        self.state = DOWN
        self.replay = 0  # pg_last_wal_replay_lsn() at the last poll
        self.lag = math.inf  # seconds, at the last poll
        self.lagging = False
        self.in_use = 0  # connections Sessions of this worker hold on it now
        self.waiting = 0  # Sessions waiting for one of its pool's connections
        self.reads = REPLICA_READS.labels(name)
        self.wake = asyncio.Event()  # poll now: a read waits for a newer position

    def usable(self, max_lag: float) -> bool:
        return self.state == STANDBY and self.pool is not None and self.lag <= max_lag


class Replicas:
    """The standbys of one worker, their pollers, and the choice of one for a read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        urls = settings.replica_urls
        self.members = tuple(Replica(u, n) for u, n in zip(urls, replica_names(urls), strict=True))
        # The primary's WAL position each time a poll saw it move, oldest first.
        self._times: list[float] = []
        self._positions: list[int] = []
        self._pruned = False  # older positions were dropped (their times are unknown)
        self._cluster: int | None = None  # the primary's system identifier, once read
        self._retention = max(10.0, 4 * settings.replica_max_lag)
        self._polled = asyncio.Event()  # set, and replaced, after every standby poll
        self.primary_reads = REPLICA_READS.labels("primary")
        self._fallbacks = {reason: REPLICA_FALLBACKS.labels(reason) for reason in FALLBACK_REASONS}
        self._waits = {o: REPLICA_TOKEN_WAIT_SECONDS.labels(o) for o in ("replica", "primary")}

    @classmethod
    def configured(cls, settings: Settings) -> Replicas | None:
        return cls(settings) if settings.replica_urls else None

    # --- choosing -------------------------------------------------------------------

    def _usable(self, replica: Replica, now: float) -> bool:
        """Reachable, a standby, and within the lag bound now: the lag as of this moment
        from its last replay position, not as of its last poll."""
        return (
            replica.state == STANDBY
            and replica.pool is not None
            and self.lag(replica.replay, now) <= self.settings.replica_max_lag
        )

    def _pick(self, after: int) -> Replica | None:
        """The usable standby that has replayed `after`, holding the fewest connections."""
        best = None
        now = time.monotonic()
        for replica in self.members:
            if (
                replica.replay >= after
                and (best is None or replica.in_use < best.in_use)
                and self._usable(replica, now)
            ):
                best = replica
        return best

    async def choose(self, after: int) -> Replica | None:
        """A standby for a read that must see the primary's WAL up to `after` (0: any
        point), waiting up to RAWPOST_REPLICA_WAIT for one to replay it; None (counted as
        a fallback, with its reason): the primary."""
        if (best := self._pick(after)) is not None:
            return best
        now = time.monotonic()
        if after == 0 or not any(self._usable(r, now) for r in self.members):
            self.fallback("unavailable")
            return None
        started = time.perf_counter()
        deadline = started + self.settings.replica_wait
        while (remaining := deadline - time.perf_counter()) > 0:
            for replica in self.members:
                replica.wake.set()
            polled = self._polled
            try:
                async with asyncio.timeout(remaining):
                    await polled.wait()
            except TimeoutError:
                break
            if (best := self._pick(after)) is not None:
                self._waits["replica"].observe(time.perf_counter() - started)
                return best
        if self.settings.replica_wait > 0:
            self._waits["primary"].observe(time.perf_counter() - started)
        self.fallback("behind")
        return None

    def fallback(self, reason: str) -> None:
        """A read that could have gone to a standby goes to the primary."""
        self._fallbacks[reason].inc()
        self.primary_reads.inc()

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """A Session's connection to `replica` failed: no reads until its poller has
        reached it again (at once, if only that connection was lost)."""
        self._set_state(replica, DOWN, exc)
        replica.wake.set()

    # --- lag ------------------------------------------------------------------------

    def _record(self, position: int, now: float) -> None:
        positions, times = self._positions, self._times
        if positions and position < positions[-1]:
            # A different primary (restored, or DATABASE_URL moved): start over.
            positions.clear()
            times.clear()
            self._pruned = False
        if not positions or position > positions[-1]:
            positions.append(position)
            times.append(now)
        old = min(bisect.bisect_left(times, now - self._retention), len(times) - 1)
        if old > 0:
            del positions[:old]
            del times[:old]
            self._pruned = True

    def lag(self, replay: int, now: float) -> float:
        """Seconds since the primary first had WAL past `replay` (0: caught up)."""
        positions = self._positions
        if not positions:
            return math.inf  # the primary's position is not known yet
        if replay >= positions[-1]:
            return 0.0
        first_missing = bisect.bisect_right(positions, replay)
        since = self._times[first_missing]
        if first_missing == 0 and self._pruned:
            # Behind the oldest position kept: at least the retention behind.
            return max(now - since, self._retention)
        return max(now - since, 0.0)

    # --- pollers --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The pollers and the metrics publisher, for as long as the app runs; the
        replica pools are closed afterwards."""
        tasks = [
            asyncio.create_task(self._watch_primary(), name="rawpost-replicas-primary"),
            *(
                asyncio.create_task(self._watch(r), name=f"rawpost-replica-{r.name}")
                for r in self.members
            ),
            asyncio.create_task(self._publishing(), name="rawpost-replicas-metrics"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for replica in self.members:
                if (pool := replica.pool) is not None:
                    replica.pool = None
                    try:
                        await asyncio.wait_for(pool.close(), self.settings.shutdown_grace)
                    except Exception:
                        pool.terminate()

    async def _connect(self, dsn: str) -> tuple[RawConnection, int | None]:
        """A poller's own connection, and the server's cluster identifier (None: not
        readable, then not compared)."""
        timeout = min(self.settings.connect_timeout, 2 * POLL_TIMEOUT)
        conn: RawConnection = await asyncpg.connect(
            dsn,
            timeout=timeout,
            server_settings=POLLER_SETTINGS,
            # Through PgBouncer in transaction mode (0): no named prepared statements.
            statement_cache_size=self.settings.statement_cache_size,
        )
        try:
            async with asyncio.timeout(POLL_TIMEOUT):
                cluster = await conn.fetchval(_CLUSTER)
        except asyncpg.PostgresError:
            cluster = None  # e.g. PgBouncer's, or a server that hides it
        except BaseException:
            conn.terminate()
            raise
        return conn, None if cluster is None else int(cluster)

    async def _watch_primary(self) -> None:
        conn: RawConnection | None = None
        interval = self.settings.replica_poll_interval
        assert self.settings.database_url is not None
        failing = False
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn, self._cluster = await self._connect(self.settings.database_url)
                    async with asyncio.timeout(POLL_TIMEOUT):
                        position = await conn.fetchval(WAL_POSITION)
                except Exception as exc:
                    if conn is not None:
                        conn.terminate()
                        conn = None
                    if not failing:
                        log.warning(
                            "the primary's WAL position cannot be read (%s: %s); replica lag"
                            " is measured against the last one seen",
                            type(exc).__name__,
                            exc,
                        )
                        failing = True
                    await asyncio.sleep(RECONNECT_EVERY)
                    continue
                failing = False
                self._record(int(position), time.monotonic())
                await asyncio.sleep(interval)
        finally:
            if conn is not None:
                conn.terminate()

    async def _watch(self, replica: Replica) -> None:
        conn: RawConnection | None = None
        cluster: int | None = None
        interval = self.settings.replica_poll_interval
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn, cluster = await self._connect(replica.url)
                    async with asyncio.timeout(POLL_TIMEOUT):
                        row = await conn.fetchrow(_REPLAY_POSITION)
                    assert row is not None
                    in_recovery, replay = bool(row[0]), row[1]
                    other = None not in (cluster, self._cluster) and cluster != self._cluster
                    in_recovery = in_recovery and not other
                    if replica.pool is None and in_recovery:
                        replica.pool = await open_pool(self.settings, replica.url, replica.born)
                except Exception as exc:
                    if conn is not None:
                        conn.terminate()
                        conn = None
                    self._set_state(replica, DOWN, exc)
                    self._notify()
                    await asyncio.sleep(RECONNECT_EVERY)
                    continue
                if in_recovery:
                    replica.replay = int(replay or 0)
                    replica.lag = self.lag(replica.replay, time.monotonic())
                    self._set_state(replica, STANDBY)
                    self._note_lag(replica)
                else:
                    self._set_state(replica, OTHER_CLUSTER if other else NOT_STANDBY)
                self._notify()
                await self._pause(replica, interval)
        finally:
            if conn is not None:
                conn.terminate()

    async def _pause(self, replica: Replica, seconds: float) -> None:
        """Until the next poll: `seconds`, or sooner (at least MIN_GAP) when a read waits."""
        await asyncio.sleep(MIN_GAP)
        if not replica.wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(seconds - MIN_GAP, 0.0)):
                    await replica.wake.wait()
        replica.wake.clear()

    def _notify(self) -> None:
        polled, self._polled = self._polled, asyncio.Event()
        polled.set()

    def _set_state(self, replica: Replica, state: str, exc: BaseException | None = None) -> None:
        if state != STANDBY:
            replica.lag = math.inf
        if replica.state == state:
            return
        was, replica.state = replica.state, state
        if state == STANDBY:
            log.info("replica %s answers as a standby: it takes reads again", replica.name)
        elif state in (NOT_STANDBY, OTHER_CLUSTER):
            log.error(
                "replica %s is %s (not in recovery: promoted, or not a standby; or the"
                " standby of another primary): no reads go to it; check RAWPOST_REPLICA_URLS",
                replica.name,
                state,
            )
        elif was == STANDBY:
            why = f"{type(exc).__name__}: {exc}" if exc is not None else "no answer"
            log.warning(
                "replica %s is unreachable (%s): its reads go to the primary", replica.name, why
            )

    def _note_lag(self, replica: Replica) -> None:
        lagging = replica.lag > self.settings.replica_max_lag
        if lagging == replica.lagging:
            return
        replica.lagging = lagging
        if lagging:
            log.warning(
                "replica %s is %.1f s behind the primary (RAWPOST_REPLICA_MAX_LAG %.3g):"
                " its reads go to the primary until it catches up",
                replica.name,
                replica.lag,
                self.settings.replica_max_lag,
            )
        else:
            log.info("replica %s caught up: it takes reads again", replica.name)

    # --- figures --------------------------------------------------------------------

    def publish(self) -> None:
        """This worker's view of each standby into the rawpost_replica_* gauges."""
        for replica in self.members:
            REPLICA_LAG_SECONDS.labels(replica.name).set(replica.lag)
            REPLICA_UP.labels(replica.name).set(1 if replica.state == STANDBY else 0)
            pool = replica.pool
            size = pool.get_size() if pool is not None else 0
            idle = pool.get_idle_size() if pool is not None else 0
            for state, value in (
                ("size", size),
                ("idle", idle),
                ("in_use", size - idle),
                ("max", self.settings.pool_max_size),
            ):
                REPLICA_POOL_CONNECTIONS.labels(replica.name, state).set(value)

    async def _publishing(self, every: float = 1.0) -> None:
        while True:
            self.publish()
            await asyncio.sleep(every)
