"""Every fault test runs under a hard time limit: none may hang the suite."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

HARD_LIMIT_SECONDS = 45


@pytest.fixture(autouse=True)
def hard_time_limit() -> Iterator[None]:
    """No fault test may hang the suite: SIGALRM fails it, and its clean-up still runs."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"fault test exceeded its hard limit of {HARD_LIMIT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
