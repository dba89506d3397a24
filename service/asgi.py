"""ASGI entry point for servers that import the app by name (uvicorn/granian workers)."""

from __future__ import annotations

import gc

from litestar import Litestar

from service.app import create_app
from service.config import load_settings
from service.logs import setup_logging


def create() -> Litestar:
    """An app from the environment's settings (each worker process calls this once).

    What exists once it is built (the modules, the app, its routes, its OpenAPI document)
    lives as long as the worker: frozen out of the garbage collector's sight, so that a
    full collection no longer walks all of it while requests wait (docs/performance.md,
    "Garbage collection")."""
    settings = load_settings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return app
