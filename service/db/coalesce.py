"""Concurrent writes gathered into one: what callers submit within a short window goes to
the database in one `send` (one statement, one commit), and each caller gets its own
result or its own exception back.

Why: a commit waits for its WAL flush, and PostgreSQL's CPU per single-row INSERT is
mostly the statement and commit around the row. Gathered, create_post served 1.8 times
as many requests at the frameworkless floor with a lower p99 (docs/performance.md,
"Write coalescing"). Why hand-written: the batching libraries for asyncio
(aiodataloader and its kind) gather reads by key within one loop turn and cache
results, which a write must never do; this is the few lines that gather, time and
hand back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from service.errors import UnavailableError

T = TypeVar("T")
R = TypeVar("R")

# One result per item, in the order of the items: the item's value, or the exception
# its caller gets.
Send = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class Coalescer(Generic[T, R]):
    """Items submitted within `window` seconds of the first (at most `max_items`) go to
    one `send` call. Batches are sent as they close, without waiting for the previous
    one: the pool bounds how many run at once."""

    def __init__(self, send: Send[T, R], *, window: float, max_items: int) -> None:
        self._send, self._window, self._max = send, window, max_items
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        entry = (item, future)
        self._pending.append(entry)
        if len(self._pending) >= self._max:
            self._close_batch()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._close_batch)
        try:
            return await future
        except asyncio.CancelledError:
            # The client went away: an item not sent yet is left out; one already sent is
            # written with its batch (`send` must do whatever a write needs even then).
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
            raise

    def _close_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        # A context of its own: the batch belongs to no single request (its statement
        # is not counted in, or logged as, the first caller's).
        task = asyncio.get_running_loop().create_task(
            self._deliver(batch), context=contextvars.Context()
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        results: Sequence[R | Exception]
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            # Stopped mid-send (the loop is shutting down): its callers are still owed an
            # answer, and the write's outcome is unknown.
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        UnavailableError("the write was interrupted; its outcome is unknown")
                    )
            raise
        except Exception as exc:
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(_own(result))
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Send what is pending and wait for every batch in flight (at shutdown)."""
        self._close_batch()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _own(exc: Exception) -> Exception:
    """A copy of `exc` for one caller: an exception raised in several requests would
    collect each one's traceback (and logs would show another request's frames)."""
    try:
        copied = copy.copy(exc)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return exc
    copied.__cause__, copied.__context__ = exc.__cause__, exc.__context__
    copied.__traceback__ = exc.__traceback__
    return copied
