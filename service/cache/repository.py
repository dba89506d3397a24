"""The read cache's statements: reading and pruning the change log (sql/cache/)."""

from __future__ import annotations

from service.db.statements import Executor
from service.generated import cache as q


async def changes_since(
    conn: Executor, *, after_id: int, pending: list[int]
) -> list[q.ListCacheEventsRow]:
    """Events after `after_id` and those of the `pending` transactions; every row carries
    the new `newest` and `running` (one row of NULL events when there is none)."""
    return await q.list_cache_events(conn, baseline=False, after_id=after_id, pending=pending)


async def starting_point(conn: Executor) -> q.ListCacheEventsRow:
    """Where a poller that starts now (with an empty cache) reads from."""
    (row,) = await q.list_cache_events(conn, baseline=True, after_id=0, pending=[])
    return row


async def forget_old_changes(conn: Executor) -> None:
    await q.delete_old_cache_events(conn)
