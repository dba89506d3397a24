"""What the server itself stops before the app: headers sent too slowly (slowloris) lose
their connection after RAWPOST_HEADER_TIMEOUT, headers over the limit get 431; others are
served meanwhile."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from service.server import HEADER_LIMIT
from tests.support.service import running_service


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_client_sending_its_headers_too_slowly_is_disconnected(
    db_url: str, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url, header_timeout=1) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        slow = [_connect(service.port) for _ in range(20)]
        for conn in slow:
            conn.sendall(b"GET /api/posts HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        started = time.monotonic()
        # Meanwhile others are served as usual.
        assert httpx.get(f"{service.base}/api/posts", timeout=5).status_code == 200
        for conn in slow:
            try:
                closed = conn.recv(4096)  # b"" (or an error answer) once the server gives up
            except ConnectionResetError:
                closed = b""
            assert closed == b"" or closed.startswith(b"HTTP/1.1 408"), closed[:80]
            conn.close()
        # Held for the header timeout (1 s here), then let go: not at once, not forever.
        assert 0.8 < time.monotonic() - started < 8
        assert service.stop() == 0


def test_headers_over_the_limit_get_431_and_the_server_serves_on(
    db_url: str, tmp_path: Path
) -> None:
    with running_service(tmp_path, db_url) as service:
        service.wait_status("/health/ready", 200, timeout=60)
        response = httpx.get(
            f"{service.base}/api/posts",
            headers={"X-Padding": "a" * (HEADER_LIMIT + 1024)},
            timeout=10,
        )
        assert response.status_code == 431
        assert httpx.get(f"{service.base}/api/posts", timeout=5).status_code == 200
        assert service.stop() == 0
