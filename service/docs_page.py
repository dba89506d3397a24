"""The interactive API docs at /schema: Swagger UI served by rawpost itself.

Its files come from the swagger-ui-py package (pinned in uv.lock), read through
importlib.resources: nothing is loaded from a CDN into rawpost's origin, where bearer
tokens live, and the page works offline. The page and its script are rawpost's own, so a
Content-Security-Policy can allow only rawpost's files (service/observability.py sends it
on every /schema response).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import Parameter

ASSETS_PATH = "/assets"
# What the page may load: only rawpost's own files; Swagger UI sets inline styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_MEDIA_TYPES = {"css": "text/css", "js": "text/javascript"}
_FROM_PACKAGE = ("swagger-ui.css", "swagger-ui-bundle.js")

# The page's own script (no inline script: the policy forbids it). validatorUrl: null,
# or Swagger UI would fetch a badge from validator.swagger.io.
_INIT_JS = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
  });
});
"""


@cache
def asset(name: str) -> bytes:
    """One of the page's files, read once per worker."""
    if name == "rawpost-docs.js":
        return _INIT_JS
    if name not in _FROM_PACKAGE:
        raise NotFoundException(f"no docs asset {name!r}")
    return (files("swagger_ui") / "static" / name).read_bytes()


@get(f"{ASSETS_PATH}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
def docs_asset(
    name: Annotated[str, Parameter(description="A file of the page.")],
) -> Response[bytes]:
    return Response(
        asset(name),
        media_type=_MEDIA_TYPES[name.rpartition(".")[2]],
        # Pinned by the lock file: a new version comes with a new rawpost release.
        headers={"Cache-Control": "public, max-age=86400"},
    )


class SwaggerPage(OpenAPIRenderPlugin):
    """/schema (and /schema/swagger): the page; its files under /schema/assets/."""

    def __init__(self) -> None:
        super().__init__(path=["/swagger"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        openapi = self.get_openapi_json_route(request)  # /schema/openapi.json
        base = openapi.rpartition("/")[0] + ASSETS_PATH
        return (
            "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<title>rawpost API</title>"
            f"<link rel='stylesheet' href='{base}/swagger-ui.css'></head>"
            f"<body data-openapi='{openapi}'><div id='swagger-ui'></div>"
            f"<script src='{base}/swagger-ui-bundle.js'></script>"
            f"<script src='{base}/rawpost-docs.js'></script></body></html>\n"
        ).encode()

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)
