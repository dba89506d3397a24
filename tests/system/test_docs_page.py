"""The interactive docs (/schema) load only rawpost's own files, under a policy that
allows nothing else, and render in a headless browser that can reach nothing but rawpost."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from service.docs_page import CONTENT_SECURITY_POLICY
from tests.support.service import running_service


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.fail("chromium is needed (Debian's package `chromium`; .ci/run installs it)")


def test_the_docs_page_loads_only_rawpost_files_under_a_strict_policy(
    db_url: str, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        page = httpx.get(f"{service.base}/schema", timeout=5)
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY  # no inline, no other host
        urls = re.findall(r"(?:src|href)='([^']+)'", page.text)
        assert urls and all(u.startswith("/schema/") for u in urls), urls
        assert "<script>" not in page.text  # nothing inline for the policy to allow
        for url in urls:
            asset = httpx.get(f"{service.base}{url}", timeout=5)
            assert asset.status_code == 200 and len(asset.content) > 100, url
        assert httpx.get(f"{service.base}/schema/assets/other.js").status_code == 404

        # Every host but rawpost's loopback address unreachable, as offline.
        dom = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{service.base}/schema",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        # Swagger UI built the page from /schema/openapi.json: operations and the
        # Authorize button are in the DOM.
        assert "opblock" in dom, dom[:2000]
        assert "/api/users/{user_id}" in dom
        assert "authorize" in dom.lower()
        assert service.stop() == 0
