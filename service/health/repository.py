"""Health: the generated query functions the readiness check needs."""

from __future__ import annotations

from service.db import Executor
from service.generated import health as q


async def list_applied_migrations(conn: Executor) -> set[str]:
    return {row.migration_id for row in await q.list_applied_migrations(conn) if row.migration_id}
