"""Request ids stay unique across forked workers."""

from __future__ import annotations

import multiprocessing
import re
from typing import Any

from service.observability import new_request_id


def _child_request_id(queue: Any) -> None:
    queue.put(new_request_id())


def test_request_ids_are_unique_across_forked_workers() -> None:
    """Workers are forked from one process: each must draw its own id prefix."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_child_request_id, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    ids = [queue.get(timeout=10) for _ in children] + [new_request_id()]
    for child in children:
        child.join(10)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len({i[:16] for i in ids}) == 3, ids  # three processes, three prefixes
