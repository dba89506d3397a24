"""The files the service reads at run time, found inside the installed package.

`sql/` and `migrations/` live at the top of the source tree; `service/_data/sql` and
`service/_data/migrations` are symlinks to them, so a checkout and a built wheel (which
copies the files they point at) both find them through `importlib.resources`, with no
path back into the source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder(name: str) -> Path:
    # yoyo and the SQL loader walk real folders: a wheel is installed unzipped, so the
    # package's resources are files on disk. Resolved, so messages in a checkout name
    # sql/... rather than the symlink.
    return Path(str(files("service") / "_data" / name)).resolve()


SQL_DIR = _folder("sql")
MIGRATIONS_DIR = _folder("migrations")
