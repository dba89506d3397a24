"""Through a real shared HTTP cache: nginx's proxy_cache (Debian's nginx-light, installed by
.ci/run) in front of `rawpost serve` with RAWPOST_PUBLIC_MAX_AGE=1. An anonymous client
never receives a caller's private representation (emails, drafts), the caller never
receives the anonymous one, and after a write a read through the cache shows the new
version once the cache revalidates (with the ETag: 304 when nothing changed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers import PASSWORD, bearer, free_port, wait_until
from tests.support.service import running_service

MAX_AGE = 1
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    proxy_cache_path {dir}/cache keys_zone=rawpost:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_cache rawpost;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


@contextmanager
def nginx_cache(tmp_path: Path, upstream: int) -> Iterator[str]:
    """nginx with a proxy cache on a free loopback port in front of `upstream`."""
    assert os.path.exists(NGINX), "nginx is missing: apt-get install nginx-light (.ci/run does)"
    folder = tmp_path / "nginx"
    folder.mkdir()
    port = free_port()
    # Run as root (CI's user), the workers keep root's rights on the cache folder.
    user = "user root;" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(CONFIG.format(user=user, dir=folder, port=port, upstream=upstream))
    process = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), timeout=20, what="nginx answers")
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_shared_cache_never_mixes_callers_and_shows_writes_once_revalidated(
    db_url: str, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url, public_max_age=MAX_AGE) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        with (
            nginx_cache(tmp_path, service.port) as cache,
            httpx.Client(base_url=cache, timeout=10) as http,
        ):
            account = {"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
            ada = http.post("/api/users", json=account)
            assert ada.status_code == 201 and ada.headers["cache-control"] == "no-store"
            sign_in = {"email": "ada@example.com", "password": PASSWORD}
            owner = bearer(http.post("/api/auth/token", json=sign_in).json()["access_token"])
            url = f"/api/users/{ada.json()['id']}"

            # The owner's representation (with the email) is never stored...
            for _ in range(2):
                own = http.get(url, headers=owner)
                assert own.json()["email"] == "ada@example.com"
                assert own.headers["x-cache-status"] != "HIT"
            # ...so an anonymous client gets the public one, then from the cache.
            first = http.get(url)
            assert "email" not in first.json()
            again = http.get(url)
            assert again.headers["x-cache-status"] == "HIT"
            assert "email" not in again.json()
            # And the owner, with the public one cached, still gets its own.
            assert http.get(url, headers=owner).json()["email"] == "ada@example.com"

            # A draft: 404 to anonymous clients, cached or not; its author sees it.
            draft = http.post(
                "/api/posts",
                json={"title": "secret", "content": "draft", "published": False},
                headers=owner,
            ).json()
            post_url = f"/api/posts/{draft['id']}"
            for _ in range(2):
                assert http.get(post_url).status_code == 404
            assert http.get(post_url, headers=owner).json()["title"] == "secret"
            assert http.get(post_url).status_code == 404

            # Nothing changed: past max-age the cache revalidates with the ETag (304).
            time.sleep(MAX_AGE + 1.1)  # nginx counts max-age in whole seconds
            revalidated = http.get(url)
            assert revalidated.headers["x-cache-status"] == "REVALIDATED"
            assert revalidated.json() == first.json()

            # A write: the new version once the cache revalidates (within max-age).
            renamed = http.patch(url, json={"name": "Ada L"}, headers=owner)
            assert renamed.status_code == 200
            time.sleep(MAX_AGE + 1.1)  # nginx counts max-age in whole seconds
            fresh = http.get(url)
            assert fresh.json()["name"] == "Ada L", fresh.headers
            assert "email" not in fresh.json()
            assert fresh.headers["etag"] != first.headers["etag"]
        assert service.stop() == 0
