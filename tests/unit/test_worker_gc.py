"""A worker's app, once built, is frozen out of the garbage collector's sight: a full
collection would otherwise walk every module, route and schema object while requests wait
(docs/performance.md, "Garbage collection")."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

_PROBE = """
import gc
from service.asgi import create
before = gc.get_freeze_count()
create()
print(before, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_worker_factory_freezes_what_it_built() -> None:
    # In a process of its own: freezing is for the life of the process, not for pytest's.
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://rawpost@127.0.0.1:1/rawpost",  # never connected to
        "RAWPOST_JWT_SECRET": secrets.token_urlsafe(48),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, frozen, tracked = (int(x) for x in done.stdout.split())
    assert before == 0
    # The app's objects are many (tens of thousands); a full collection sees almost none.
    assert frozen > 20_000, frozen
    assert tracked < frozen // 20, (tracked, frozen)
