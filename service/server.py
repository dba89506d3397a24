"""`rawpost serve`'s HTTP server: granian, with one or more worker processes.

Each worker is a process with its own event loop, app and connection pool
(service.asgi:create). The workers share the listening socket and one folder of
Prometheus metric files, so `/metrics` adds up every worker's figures whichever worker
answers the scrape (prometheus_client's multiprocess mode).

Why granian: on the benchmark (docs/performance.md) two granian workers served as many
requests per second as two uvicorn workers, with a half to a third of uvicorn's p99
latency (36 vs 64 ms, and 50 vs 150 ms in an earlier run).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from service.config import CACHE_BUS_ENV, METRICS_DIR_ENV, Settings

# Bytes of request line and headers a client may send (hyper's floor is 8 KiB).
HEADER_LIMIT = 64 * 1024


def run(settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    (up to RAWPOST_SHUTDOWN_GRACE), close the pools, return."""
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    assert settings.database_url, "the caller resolves the database first"
    metrics_dir = Path(tempfile.mkdtemp(prefix="rawpost-metrics-"))
    # The workers' shared ring of cache invalidations (service.cache.bus); the folder is
    # the instance's own (mode 0700), and prometheus_client reads only its *.db files.
    bus_path = metrics_dir / "cache-bus"
    os.environ[CACHE_BUS_ENV] = str(bus_path)
    # The workers read their settings from the environment (service.asgi:create), and
    # prometheus_client reads its folder when first imported: set both before that.
    os.environ["DATABASE_URL"] = settings.database_url
    if settings.jwt_secret:  # the embedded database's generated one, if not already set
        os.environ["RAWPOST_JWT_SECRET"] = settings.jwt_secret
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    # Only now: service.cache imports prometheus_client, which must see the folder.
    from service.cache import bus as cache_bus

    cache_bus.create(str(bus_path))
    try:
        check_app_imports()
        Server(
            "service.asgi:create",
            factory=True,
            interface=Interfaces.ASGI,
            address=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop=Loops.uvloop if os.name != "nt" else Loops.auto,
            websockets=False,
            log_enabled=True,
            log_access=False,  # rawpost logs its own access lines (RAWPOST_ACCESS_LOG)
            # Slow clients and oversize headers are stopped before the app sees them: a
            # request whose headers take longer than RAWPOST_HEADER_TIMEOUT loses its
            # connection, headers over HEADER_LIMIT bytes get 431.
            http1_settings=HTTP1Settings(
                header_read_timeout=round(settings.header_timeout * 1000),
                max_buffer_size=HEADER_LIMIT,
            ),
            # Ctrl-C / SIGTERM: the workers finish what is in flight, then are killed.
            workers_kill_timeout=max(1, round(settings.shutdown_grace)),
            # A worker that dies (the OOM killer's SIGKILL) is replaced; the others serve
            # on. Granian stops the instance only on a crash loop (the same worker dying
            # again within 5.5 s of its respawn).
            respawn_failed_workers=True,
        ).serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def check_app_imports() -> None:
    """Fail here, in one readable line, rather than once per worker: a missing SQL file,
    or one changed without regenerating service/generated/, stops the import."""
    import click

    from service.sql import SqlFileError

    try:
        import service.app  # noqa: F401
    except SqlFileError as exc:
        raise click.ClickException(str(exc)) from None
