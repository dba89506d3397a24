"""Every guard is a coroutine function: Litestar runs a plain function guard in a thread
pool, a thread hop per request that cost create_post about a sixth of its throughput
(docs/performance.md, "Where create_post's time goes")."""

from __future__ import annotations

import inspect

from litestar.routes import HTTPRoute

from service.app import create_app
from service.config import load_settings
from tests.helpers import TEST_ENV


def test_every_route_guard_is_a_coroutine_function() -> None:
    settings = load_settings(
        environ=TEST_ENV, overrides={"database_url": "postgresql://127.0.0.1:1/unused"}
    )
    app = create_app(settings)
    guards = {
        guard
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        for layer in handler.ownership_layers
        for guard in layer.guards or []
    }
    assert len(guards) >= 4  # signed_in, owner_or_admin, admin_only, scraper_only
    plain = [g for g in guards if not inspect.iscoroutinefunction(g)]
    assert not plain, f"guards run in a thread pool: {plain}"
