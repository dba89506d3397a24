"""The invalidation channel: one LISTEN connection per worker, proven alive by probes.

The triggers of migration 0010 NOTIFY `rawpost_cache` at the commit of every statement
that changes users or posts. A worker keeps a dedicated connection (not a pooled one)
listening on it, and every PROBE_EVERY seconds sends a probe of its own through the same
channel. PostgreSQL delivers a listener's notifications in commit order, so a probe's
echo proves every change committed before the probe was sent has been applied: the
cache is trusted only while the last echo's probe was sent less than TRUST_WINDOW ago.

A lost connection (terminated backend, restart, network) distrusts the cache at once;
the worker reconnects with backoff, and only after the first echo on the new connection
is the cache emptied and trusted again (changes made while nobody listened are lost, so
nothing read before is kept). Behind PgBouncer in transaction mode LISTEN does not stay
on one server connection: the echo does not come back, or comes back from another
backend, and the channel is never trusted (docs/caching.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger("rawpost.cache")

CHANNEL = "rawpost_cache"
PROBE_EVERY = 0.25
PROBE_TIMEOUT = 1.0
# Changes committed up to this long ago are certainly applied while trusted: under the
# contract's 1 s bound with a request in flight.
TRUST_WINDOW = 0.75
RECONNECT_MAX = 5.0


class Channel:
    """Calls `on_event(payload)` for every notification, `on_lost()` when the channel is
    lost and `on_ready()` when it is back (after its first echo)."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float,
        on_event: Callable[[str], None],
        on_lost: Callable[[], None],
        on_ready: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._on_event, self._on_lost, self._on_ready = on_event, on_lost, on_ready
        self._prefix = f"probe:{os.getpid()}:{secrets.token_hex(4)}:"
        self._echoed: dict[str, asyncio.Future[int]] = {}
        self._trusted_until = 0.0
        # Every change committed before this (monotonic) time has been applied.
        self.applied_until = 0.0
        self.up = False  # listening, and echoed since the last (re)connect
        self.failures = 0  # connection attempts or probes failed in a row

    def trusted(self) -> bool:
        return time.monotonic() < self._trusted_until

    def _notified(self, _conn: Any, pid: int, _channel: str, message: object) -> None:
        payload = str(message)
        if payload.startswith("probe:"):
            waiter = self._echoed.pop(payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(pid)
            return
        self._on_event(payload)

    def _lost(self, *_args: Any) -> None:
        self._trusted_until = 0.0
        if self.up:
            self.up = False
            self._on_lost()

    async def run(self) -> None:
        """Listen, probe, reconnect after any failure; until cancelled."""
        while not _cancelling():
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._connect_timeout,
                    statement_cache_size=0,
                    server_settings={"application_name": "rawpost-cache-listener"},
                )
                conn.add_termination_listener(self._lost)
                await conn.add_listener(CHANNEL, self._notified)
                await self._probe_forever(conn)
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

    async def _probe_forever(self, conn: asyncpg.Connection[Any]) -> None:
        backend = conn.get_server_pid()
        number = 0
        while not _cancelling():
            number += 1
            probe = f"{self._prefix}{number}"
            waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._echoed[probe] = waiter
            sent = time.monotonic()
            try:
                sender = await conn.fetchval(
                    "SELECT pg_backend_pid() FROM pg_notify($1, $2)",
                    CHANNEL,
                    probe,
                    timeout=PROBE_TIMEOUT,
                )
                async with asyncio.timeout(PROBE_TIMEOUT):
                    heard_from = await waiter
            except TimeoutError:
                raise ConnectionError("no echo of the channel's probe within 1 s") from None
            finally:
                self._echoed.pop(probe, None)
            if sender != backend or heard_from != backend:
                # The statement ran on another server connection than LISTEN did.
                raise ConnectionError(
                    "the listening connection moved between server connections (PgBouncer"
                    " in transaction mode?): set RAWPOST_CACHE_LISTEN_URL to a direct one"
                )
            self._trusted_until = sent + TRUST_WINDOW
            self.applied_until = sent
            if not self.up:
                self.up = True
                if self.failures:
                    log.info("cache invalidation channel back after %d failures", self.failures)
                self.failures = 0
                self._on_ready()
            await asyncio.sleep(PROBE_EVERY)
        raise asyncio.CancelledError


def _cancelling() -> bool:
    # A timeout that expires as the task is cancelled can swallow the cancellation
    # (asyncpg's own wait_for, on Python 3.11): the request is still counted here.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
