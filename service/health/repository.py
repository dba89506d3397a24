"""Health: the generated query functions the readiness check needs."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from service.db.statements import Executor
from service.generated import health as q


async def list_pending_migrations(conn: Executor, migrations: Sequence[str]) -> list[str]:
    """Which of `migrations` (this version's, oldest first) the database has not applied;
    all of them before the first `rawpost migrate apply` made the bookkeeping table."""
    try:
        rows = await q.list_applied_migrations(conn)
    except asyncpg.UndefinedTableError:
        return list(migrations)
    applied = {row.migration_id for row in rows}
    return [m for m in migrations if m not in applied]
