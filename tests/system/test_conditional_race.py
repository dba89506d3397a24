"""No lost update: two clients read the same post, then both PATCH it with the tag they
read, at the same moment, through `rawpost serve` with two workers. 100 times, exactly
one wins and the other gets 412, and the post holds the winner's change."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.helpers import PASSWORD, bearer
from tests.support.service import running_workers

ROUNDS = 100


def _patch(
    client: httpx.Client,
    url: str,
    title: str,
    tag: str,
    start: threading.Barrier,
    statuses: dict[str, int],
) -> None:
    start.wait()  # both requests leave together
    response = client.patch(url, json={"title": title}, headers={"If-Match": tag})
    statuses[title] = response.status_code


def test_two_concurrent_patches_with_the_same_tag_one_wins_the_other_gets_412(
    db_url: str, tmp_path: Path
) -> None:
    with running_workers(tmp_path, db_url, pool_max_size=4) as service:
        base = service.base
        account = {"email": "race@example.com", "name": "Racer", "password": PASSWORD}
        assert httpx.post(f"{base}/api/users", json=account, timeout=30).status_code == 201
        sign_in = {"email": account["email"], "password": PASSWORD}
        token = httpx.post(f"{base}/api/auth/token", json=sign_in, timeout=30).json()
        headers = bearer(token["access_token"])
        created = httpx.post(
            f"{base}/api/posts", json={"title": "0", "content": "c"}, headers=headers, timeout=10
        )
        url = f"{base}/api/posts/{created.json()['id']}"
        # One connection per client, as two browsers would have.
        clients = [httpx.Client(headers=headers, timeout=10) for _ in range(2)]
        outcomes: list[tuple[int, int]] = []
        try:
            for round_ in range(ROUNDS):
                tag = clients[0].get(url).headers["etag"]
                start = threading.Barrier(2)
                statuses: dict[str, int] = {}
                titles = [f"{round_}-a", f"{round_}-b"]
                threads = [
                    threading.Thread(target=_patch, args=(client, url, title, tag, start, statuses))
                    for client, title in zip(clients, titles, strict=True)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=30)
                assert sorted(statuses.values()) == [200, 412], (round_, statuses)
                winner = next(title for title, status in statuses.items() if status == 200)
                assert clients[1].get(url).json()["title"] == winner, round_
                outcomes.append((statuses[titles[0]], statuses[titles[1]]))
        finally:
            for client in clients:
                client.close()
        assert service.stop() == 0
    # Which client wins is up to the scheduler (37 of 100 for the first in one run).
    print(f"the first client won {sum(a == 200 for a, _ in outcomes)} of {ROUNDS} rounds")
