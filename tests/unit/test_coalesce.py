"""service.db.coalesce.Coalescer on a real event loop: what it gathers, and what each
caller gets back (the database side is tests/integration/posts/test_coalesced_creates.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import pytest

from service.db.coalesce import Coalescer
from service.posts.writes import MAX_BATCH
from service.resources import MIGRATIONS_DIR


class Recorder:
    """A send that records its batches and answers each item with a result or an error."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    async def __call__(self, items: list[int]) -> Sequence[str | Exception]:
        self.batches.append(items)
        await asyncio.sleep(self.delay)
        return [ValueError(f"odd {i}") if i % 2 else f"ok {i}" for i in items]


def test_items_within_the_window_go_in_one_batch_and_each_gets_its_own_result() -> None:
    async def main() -> None:
        send = Recorder()
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.05, max_items=10)
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in (0, 1, 2, 4)), return_exceptions=True
        )
        assert send.batches == [[0, 1, 2, 4]]
        assert results[0] == "ok 0" and results[2] == "ok 2" and results[3] == "ok 4"
        assert isinstance(results[1], ValueError) and str(results[1]) == "odd 1"

    asyncio.run(main())


def test_a_full_batch_is_sent_at_once_and_the_rest_waits_for_the_next() -> None:
    async def main() -> None:
        send = Recorder()
        coalescer: Coalescer[int, str] = Coalescer(send, window=10, max_items=3)
        first = [asyncio.ensure_future(coalescer.submit(i)) for i in (0, 2, 4)]
        assert await asyncio.wait_for(asyncio.gather(*first), 1) == ["ok 0", "ok 2", "ok 4"]
        late = asyncio.ensure_future(coalescer.submit(6))
        await asyncio.sleep(0.05)
        assert not late.done()  # its window (10 s) is still open
        await coalescer.close()  # shutdown sends what is pending
        assert late.result() == "ok 6"
        assert send.batches == [[0, 2, 4], [6]]

    asyncio.run(main())


def test_a_failed_send_fails_every_caller_of_the_batch_and_not_the_next() -> None:
    calls = 0

    async def send(items: list[int]) -> Sequence[str | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return [f"ok {i}" for i in items]

    async def main() -> None:
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.01, max_items=10)
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in (1, 2)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert await coalescer.submit(3) == "ok 3"

    asyncio.run(main())


def test_a_caller_cancelled_before_the_send_is_left_out() -> None:
    async def main() -> None:
        send = Recorder()
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.05, max_items=10)
        kept = asyncio.ensure_future(coalescer.submit(0))
        gone = asyncio.ensure_future(coalescer.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == "ok 0"
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert send.batches == [[0]]

    asyncio.run(main())


def test_a_caller_cancelled_during_the_send_does_not_disturb_the_others() -> None:
    async def main() -> None:
        send = Recorder(delay=0.05)
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.001, max_items=10)
        kept = asyncio.ensure_future(coalescer.submit(0))
        gone = asyncio.ensure_future(coalescer.submit(2))
        await asyncio.sleep(0.02)  # the batch is being sent
        gone.cancel()
        assert await kept == "ok 0"
        assert send.batches == [[0, 2]]  # sent: its write stands, as a single one would

    asyncio.run(main())


def test_a_send_returning_the_wrong_number_of_results_fails_the_batch() -> None:
    async def send(items: list[int]) -> Sequence[str | Exception]:
        return ["only one"]

    async def main() -> None:
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.001, max_items=10)
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in (1, 2)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)

    asyncio.run(main())


def test_each_caller_gets_its_own_copy_of_a_shared_failure() -> None:
    async def send(items: list[int]) -> Sequence[str | Exception]:
        raise ConnectionError("database away")

    async def main() -> None:
        coalescer: Coalescer[int, str] = Coalescer(send, window=0.001, max_items=10)
        results = await asyncio.gather(
            *(coalescer.submit(i) for i in (1, 2)), return_exceptions=True
        )
        assert [str(r) for r in results] == ["database away"] * 2
        assert results[0] is not results[1]

    asyncio.run(main())


def test_a_batch_is_never_larger_than_the_read_caches_change_log_records_row_by_row() -> None:
    # Above this many rows, a statement's change is logged as "drop everything"
    # (migration 0010.cache-events), which would empty every worker's read cache.
    source = (MIGRATIONS_DIR / "0010.cache-events.sql").read_text()
    limits = {int(n) for n in re.findall(r"count\(\*\) > (\d+)", source)}
    assert len(limits) == 1
    assert limits.pop() >= MAX_BATCH
