"""Which locks a migration takes: read from pg_locks inside its transaction (then rolled
back), or sampled from another session while a non-transactional one runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import psycopg

from service.migrate import bookkeeping as bk


class LockSeen(msgspec.Struct, frozen=True):
    relation: str
    kind: str  # "table", "index", ...
    mode: str
    existed_before: bool


_LOCKS_SQL = """
SELECT c.relname, c.relkind::text, l.mode
FROM pg_locks AS l
JOIN pg_class AS c ON c.oid = l.relation
WHERE l.locktype = 'relation' AND c.relnamespace = 'public'::regnamespace AND {who}
"""
_KINDS = {"r": "table", "p": "table", "i": "index", "S": "sequence", "v": "view"}


def probe_locks(
    url: str, sql_text: str, options: dict[str, str], before: set[str]
) -> list[LockSeen]:
    """Run a transactional migration, read the locks it holds, then roll it back."""
    settings = " ".join(f"-c {k}={v}" for k, v in options.items())
    with psycopg.connect(url, options=settings) as conn:
        conn.execute(sql_text.encode())  # a whole file: the simple protocol runs it all
        rows = conn.execute(_LOCKS_SQL.format(who="l.pid = pg_backend_pid()")).fetchall()
        conn.rollback()
    return locks_seen(rows, before)


def locks_seen(rows: list[tuple[Any, ...]], before: set[str]) -> list[LockSeen]:
    seen = {
        (r[0], _KINDS.get(r[1], r[1]), r[2])
        for r in rows
        if r[0] not in bk.INTERNAL_TABLES and not r[0].startswith("_yoyo")
    }
    return [
        LockSeen(relation=rel, kind=kind, mode=mode, existed_before=rel in before)
        for rel, kind, mode in sorted(seen)
    ]


class Sampler(threading.Thread):
    """Polls pg_locks for the migration's session while a non-transactional one runs."""

    def __init__(self, url: str, application_name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.application_name = url, application_name
        self.rows: list[tuple[Any, ...]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        who = "l.pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = %s)"
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.rows += conn.execute(
                        _LOCKS_SQL.format(who=who), (self.application_name,)
                    ).fetchall()
                    time.sleep(0.005)
        except psycopg.Error:
            pass  # the scratch database went away; the migration's own error is reported
