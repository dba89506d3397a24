"""One function per file in sql/health/."""

from __future__ import annotations

from service.db import Connection
from service.sql import query

LIST_APPLIED_MIGRATIONS = query("health/list_applied_migrations")


async def list_applied_migrations(conn: Connection) -> set[str]:
    rows = await conn.fetch(LIST_APPLIED_MIGRATIONS.sql)
    return {str(row["migration_id"]) for row in rows}
