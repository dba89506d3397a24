"""Revocation reaches every worker process within a second: `rawpost serve` with two real
workers, each with its own caller cache, each request on a fresh connection (so the
kernel spreads them over both workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers import PASSWORD, bearer, insert_admin, mint_token
from tests.support.service import Service, running_workers, service_env

BOUND_SECONDS = 1.0


def _statuses_after(
    base: str, path: str, headers: dict[str, str], since: float
) -> list[tuple[float, int]]:
    """(seconds since `since`, status) of requests on fresh connections for 1.6 s."""
    seen: list[tuple[float, int]] = []
    while (now := time.monotonic()) - since < 1.6:
        status = httpx.get(f"{base}{path}", headers=headers, timeout=5).status_code
        seen.append((now - since, status))
    return seen


def _warm(base: str, headers: dict[str, str]) -> None:
    # Both workers see (and cache) the caller first.
    for _ in range(30):
        assert httpx.get(f"{base}/api/users/me", headers=headers, timeout=5).status_code == 200


@contextmanager
def two_workers(db_url: str, tmp_path: Path) -> Iterator[Service]:
    """`rawpost serve` with two workers, both started; stopped cleanly at the end."""
    with running_workers(tmp_path, db_url) as service:
        yield service
        assert service.stop() == 0


def test_logout_and_delete_are_refused_by_every_worker_within_a_second(
    db_url: str, tmp_path: Path
) -> None:
    with two_workers(db_url, tmp_path) as service:
        base = service.base
        body = {"email": "w@example.com", "name": "W", "password": PASSWORD}
        user = httpx.post(f"{base}/api/users", json=body, timeout=10).json()
        pair = httpx.post(
            f"{base}/api/auth/token",
            json={"email": "w@example.com", "password": PASSWORD},
            timeout=10,
        ).json()
        headers = bearer(pair["access_token"])
        _warm(base, headers)

        assert httpx.post(f"{base}/api/auth/logout", headers=headers, timeout=5).status_code == 204
        seen = _statuses_after(base, "/api/users/me", headers, time.monotonic())
        late = [status for at, status in seen if at > BOUND_SECONDS]
        assert late and set(late) == {401}, seen

        # A minted token of the same user, cached by both workers, then the user deleted
        # by an admin through one of them.
        token = bearer(mint_token(user["id"]))
        _warm(base, token)
        admin = bearer(mint_token(insert_admin(db_url)))
        deleted = httpx.delete(f"{base}/api/users/{user['id']}", headers=admin, timeout=5)
        assert deleted.status_code == 204
        seen = _statuses_after(base, "/api/users/me", token, time.monotonic())
        late = [status for at, status in seen if at > BOUND_SECONDS]
        assert late and set(late) == {401}, seen


def test_a_role_granted_by_the_operator_applies_within_a_second(
    db_url: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    with two_workers(db_url, tmp_path) as service:
        base = service.base
        body = {"email": "op@example.com", "name": "Op", "password": PASSWORD}
        user = httpx.post(f"{base}/api/users", json=body, timeout=10).json()
        headers = bearer(mint_token(user["id"]))
        lookup = "/api/users?email=op@example.com"
        for _ in range(20):
            assert httpx.get(f"{base}{lookup}", headers=headers, timeout=5).status_code == 403
        promoted = subprocess.run(
            [sys.executable, "-m", "service.cli", "users", "promote", "op@example.com"],
            env=service_env(db_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert promoted.returncode == 0, promoted.stderr
        seen = _statuses_after(base, lookup, headers, time.monotonic())
        late = [status for at, status in seen if at > BOUND_SECONDS]
        assert late and set(late) == {200}, seen
