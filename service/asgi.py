"""ASGI entry point for servers that import the app by name (uvicorn/granian workers)."""

from __future__ import annotations

from litestar import Litestar

from service.app import create_app
from service.config import load_settings
from service.logs import setup_logging


def create() -> Litestar:
    """An app from the environment's settings (each worker process calls this once)."""
    settings = load_settings()
    setup_logging(settings.log_level)
    return create_app(settings)
