"""A throwaway, freshly migrated database to read types from (embedded by default)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service import embedded, migrate
from service.resources import MIGRATIONS_DIR


@contextmanager
def admin_url(database_url: str | None) -> Iterator[str]:
    """The given server URL (needs CREATEDB), or a temporary embedded server's."""
    if database_url:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="rawpost-scratch-") as tmp:
        server = embedded.start_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


@contextmanager
def scratch_database(
    database_url: str | None, migrations_dir: Path = MIGRATIONS_DIR
) -> Iterator[str]:
    """Create a database, apply every migration to it, yield its URL, then drop it."""
    with admin_url(database_url) as admin:
        name = f"rawpost_scratch_{uuid.uuid4().hex[:12]}"
        embedded.create_database(admin, name)
        try:
            url = embedded.with_database(admin, name)
            migrate.apply(url, echo=lambda _: None, migrations_dir=migrations_dir)
            yield url
        finally:
            embedded.drop_database(admin, name)
