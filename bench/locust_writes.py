"""A write-heavy mix for locust: what the read cache's invalidations cost (docs/caching.md).

Half the requests write: each simulated user creates posts and edits its own, and reads
the feed and its own posts and profile in between, so nearly every cached answer it
reads has just been dropped. Run it against a server with the cache on and one with it
off (`RAWPOST_CACHE=false`), the same way:

    uv run --group load locust -f bench/locust_writes.py --host http://127.0.0.1:8000 \\
        --headless -u 32 -r 16 -t 60s --ids-file bench/sample-ids.json

Sign-up and sign-in as in bench/locustfile.py (one Argon2id hash each, at start).
"""

from __future__ import annotations

import random

import locustfile  # bench/locustfile.py: its `Reader` is not imported by name, or it would run too
from locust import HttpUser, between, task


class Writer(HttpUser):
    """Someone posting: writes half the time, reads what just changed. Not a subclass of
    locustfile.Reader, whose tasks it would inherit; it borrows its sign-up."""

    host = "http://127.0.0.1:8000"
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        locustfile.Reader.on_start(self)
        self.mine: list[str] = []

    def _user(self) -> str:
        return random.choice(self.users)  # noqa: S311

    def _mine(self) -> str | None:
        return random.choice(self.mine) if self.mine else None  # noqa: S311

    @task(30)
    def post_page(self) -> None:
        self.client.get("/api/posts?limit=20", name="/api/posts?limit=20")

    @task(30)
    def new_post(self) -> None:
        body = {"title": "Written under a write-heavy load", "content": "Load.", "published": True}
        response = self.client.post(
            "/api/posts", json=body, headers=self.auth, name="/api/posts (create)"
        )
        if response.status_code == 201:
            self.mine = [*self.mine[-19:], response.json()["id"]]

    @task(20)
    def edit_post(self) -> None:
        if (post_id := self._mine()) is None:
            return
        body = {"title": f"Edited {random.randint(1, 10**6)}"}  # noqa: S311
        self.client.patch(
            f"/api/posts/{post_id}", json=body, headers=self.auth, name="/api/posts/{id} (edit)"
        )

    @task(15)
    def single_post(self) -> None:
        if (post_id := self._mine()) is not None:
            self.client.get(f"/api/posts/{post_id}", name="/api/posts/{id}")

    @task(5)
    def user_posts(self) -> None:
        self.client.get(f"/api/users/{self._user()}/posts?limit=20", name="/api/users/{id}/posts")
