"""A realistic mix of rawpost requests for locust: mostly reads, a few writes.

Point it at any deployment; it needs the ids file `rawpost seed` wrote for that database
(real user and post ids to read). Web UI (http://localhost:8089), from the repository root:

    uv run --group load locust -f bench/locustfile.py --host http://127.0.0.1:8000

Headless, 50 users arriving 10 per second, for 2 minutes, with a CSV report:

    uv run --group load locust -f bench/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 2m --ids-file bench/sample-ids.json --csv results/load

Each simulated user signs up and signs in when it starts (one Argon2id hash each, as real
clients cost), then waits 0.5-2 s between requests (a person, not a benchmark); the mix,
by weight: post pages 35 (a third of them follow the next page), single posts 25, users
with their posts 15, single users 10, a user's posts 8, new posts 4 (its own, with its
bearer token), new users 3. Rows created here stay (emails:
locust-<uuid>@load.rawpost.invalid); see docs/performance.md.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

_IDS: dict[str, tuple[list[str], list[str]]] = {}
# The password of every account this load test signs up (12..128 characters).
PASSWORD = "locust load-test password"  # noqa: S105 - throwaway test accounts


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--ids-file",
        default="bench/sample-ids.json",
        help="Sample user and post ids written by `rawpost seed` for the target's database.",
    )


def _ids(path: str) -> tuple[list[str], list[str]]:
    """(user ids, post ids) from the ids file, read once per process."""
    if path not in _IDS:
        sample = json.loads(Path(path).read_text(encoding="utf-8"))
        if not sample.get("users") or not sample.get("posts"):
            raise SystemExit(f"{path}: needs non-empty 'users' and 'posts' lists")
        _IDS[path] = (list(sample["users"]), list(sample["posts"]))
    return _IDS[path]


class Reader(HttpUser):
    """Someone browsing rawpost: reads pages and profiles, sometimes writes."""

    host = "http://127.0.0.1:8000"
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.users, self.posts = _ids(self.environment.parsed_options.ids_file)
        email = f"locust-{uuid.uuid4()}@load.rawpost.invalid"
        account = {"email": email, "name": "Locust User", "password": PASSWORD}
        self.client.post("/api/users", json=account, name="/api/users (create)")
        response = self.client.post(
            "/api/auth/token", json={"email": email, "password": PASSWORD}, name="/api/auth/token"
        )
        token = response.json().get("access_token") if response.ok else None
        # The access token lasts 15 minutes by default: sign in again when it runs out.
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def _user(self) -> str:
        return random.choice(self.users)  # noqa: S311 - load generation, not security

    @task(35)
    def post_page(self) -> None:
        published = random.random() < 0.3  # noqa: S311
        query = "&published=true" if published else ""
        response = self.client.get(f"/api/posts?limit=20{query}", name="/api/posts?limit=20")
        cursor = response.json().get("next_cursor") if response.ok else None
        if cursor and random.random() < 0.33:  # noqa: S311
            self.client.get(
                f"/api/posts?limit=20{query}&cursor={cursor}", name="/api/posts?cursor=..."
            )

    @task(25)
    def single_post(self) -> None:
        post_id = random.choice(self.posts)  # noqa: S311
        self.client.get(f"/api/posts/{post_id}", name="/api/posts/{id}")

    @task(15)
    def user_with_posts(self) -> None:
        self.client.get(
            f"/api/users/{self._user()}?include=posts", name="/api/users/{id}?include=posts"
        )

    @task(10)
    def single_user(self) -> None:
        self.client.get(f"/api/users/{self._user()}", name="/api/users/{id}")

    @task(8)
    def user_posts(self) -> None:
        self.client.get(f"/api/users/{self._user()}/posts?limit=20", name="/api/users/{id}/posts")

    @task(4)
    def new_post(self) -> None:
        body = {
            "title": "A post written under load",
            "content": "Load testing rawpost. " * random.randint(1, 40),  # noqa: S311
            "published": random.random() < 0.9,  # noqa: S311
        }
        self.client.post("/api/posts", json=body, headers=self.auth, name="/api/posts (create)")

    @task(3)
    def new_user(self) -> None:
        body = {
            "email": f"locust-{uuid.uuid4()}@load.rawpost.invalid",
            "name": "Locust User",
            "password": PASSWORD,
        }
        self.client.post("/api/users", json=body, name="/api/users (create)")
