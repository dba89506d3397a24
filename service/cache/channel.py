"""The invalidation channel: each worker polls the database's change log.

The triggers of migration 0010 add a row to `cache_events` in the transaction of every
statement that changes users or posts. A worker keeps a dedicated connection (not a
pooled one) and reads the new rows every POLL_EVERY seconds
(sql/cache/list_cache_events.sql): those with a higher id than the last poll saw, and
those of the transactions that were still running then (they may commit with a lower
id). A poll's snapshot holds every change committed before the poll began, so the cache
is trusted only while the last poll that succeeded began less than TRUST_WINDOW ago.

Why a table and not LISTEN/NOTIFY: PostgreSQL serialises the commits of every
transaction that sends a NOTIFY, through their WAL flush, which cut the insert of a post
to 0.31x its throughput (docs/caching.md). A poll is one statement on a connection of
its own, so it works through PgBouncer in transaction mode too.

A lost connection (terminated backend, restart, network) distrusts the cache at once;
the worker reconnects with backoff, and only after the first poll on the new connection
is the cache emptied and trusted again (changes it could not read are unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from service.cache import repository
from service.db.statements import Timed

log = logging.getLogger("rawpost.cache")

POLL_EVERY = 0.05
# Changes committed up to this long ago are certainly applied while trusted: under the
# contract's 1 s bound with a request in flight.
TRUST_WINDOW = 0.75
PRUNE_EVERY = 60.0
RECONNECT_MAX = 5.0
APPLICATION_NAME = "rawpost-cache-poller"


class Channel:
    """Calls `on_event(payload)` for every change, `on_lost()` when the channel is lost
    and `on_ready()` when it is back (after its first poll)."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float,
        slow_query_ms: float,
        on_event: Callable[[str], None],
        on_lost: Callable[[], None],
        on_ready: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._slow_ms = slow_query_ms
        self._on_event, self._on_lost, self._on_ready = on_event, on_lost, on_ready
        self._trusted_until = 0.0
        # Every change committed before this (monotonic) time has been applied.
        self.applied_until = 0.0
        self.up = False  # connected, and polled since the last (re)connect
        self.failures = 0  # connection attempts or polls failed in a row

    def trusted(self) -> bool:
        return time.monotonic() < self._trusted_until

    def _lost(self, *_args: Any) -> None:
        self._trusted_until = 0.0
        if self.up:
            self.up = False
            self._on_lost()

    async def run(self) -> None:
        """Poll; reconnect after any failure; until cancelled."""
        while not _cancelling():
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._connect_timeout,
                    statement_cache_size=0,  # one connection: PgBouncer or not
                    server_settings={"application_name": APPLICATION_NAME},
                )
                conn.add_termination_listener(self._lost)
                await self._poll_forever(Timed(conn, self._slow_ms, quiet=True))
            except asyncio.CancelledError:
                self.up = False  # shutting down: not a loss worth a warning
                raise
            except Exception as exc:
                self.failures += 1
                if self.failures == 1 or self.failures % 60 == 0:
                    log.warning(
                        "cache invalidation channel down (%s: %s); reads bypass the cache"
                        " until it is back",
                        type(exc).__name__,
                        exc,
                    )
            finally:
                self._lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(min(RECONNECT_MAX, 0.1 * 2 ** min(self.failures, 6)))
        raise asyncio.CancelledError

    async def _poll_forever(self, conn: Timed) -> None:
        started = time.monotonic()
        start = await repository.starting_point(conn)
        after, pending = start.newest, start.running
        self._trusted(started)
        last_prune = time.monotonic()
        while not _cancelling():
            await asyncio.sleep(POLL_EVERY)
            started = time.monotonic()
            rows = await repository.changes_since(conn, after_id=after, pending=pending)
            for row in rows:
                if row.payload is not None:
                    self._on_event(row.payload)
            after, pending = max(after, rows[0].newest), rows[0].running
            self._trusted(started)
            if started - last_prune > PRUNE_EVERY:
                last_prune = started
                await repository.forget_old_changes(conn)
        raise asyncio.CancelledError

    def _trusted(self, started: float) -> None:
        self._trusted_until = started + TRUST_WINDOW
        self.applied_until = started
        if not self.up:
            self.up = True
            if self.failures:
                log.info("cache invalidation channel back after %d failures", self.failures)
            self.failures = 0
            self._on_ready()


def _cancelling() -> bool:
    # A timeout that expires as the task is cancelled can swallow the cancellation
    # (asyncpg's own wait_for, on Python 3.11): the request is still counted here.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
