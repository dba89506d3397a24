"""The in-process cache of public reads, through the real app and a real PostgreSQL.

What proves an answer came from memory: a change made in psql with triggers switched
off (`session_replication_role = replica`, so no NOTIFY) is invisible to a cached
read and visible to one that goes to the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.cache import ReadCache
from service.config import Settings
from tests.helpers import (
    DB,
    Client,
    bearer,
    body_of,
    cache_caught_up,
    create_post,
    create_user,
    mint_token,
    wait_until,
)

QUIET = "SET session_replication_role = replica"  # this session's writes notify nobody
LOUD = "SET session_replication_role = origin"


def cache(api: Client) -> ReadCache:
    value: ReadCache = api.app.state.cache
    return value


def quietly(db: DB, sql: str, *args: object) -> None:
    db.execute(QUIET)
    try:
        db.execute(sql, args)
    finally:
        db.execute(LOUD)


@pytest.fixture
def ada(client: Client) -> dict[str, Any]:
    return create_user(client, "ada@example.com", "Ada")


@pytest.fixture
def post(client: Client, ada: dict[str, Any]) -> dict[str, Any]:
    return create_post(client, ada["id"], "First")


def test_anonymous_reads_are_answered_from_memory(
    api: Client, client: Client, db: DB, ada: dict[str, Any], post: dict[str, Any]
) -> None:
    cache_caught_up(api)
    urls = [
        f"/api/users/{ada['id']}",
        f"/api/users/{ada['id']}?include=posts",
        f"/api/posts/{post['id']}",
        "/api/posts",
        f"/api/posts?author_id={ada['id']}",
        f"/api/users/{ada['id']}/posts",
    ]
    client.headers.pop("Authorization")
    first = {url: body_of(client.get(url), 200) for url in urls}
    quietly(db, "UPDATE users SET name = 'Renamed quietly' WHERE id = %s", ada["id"])
    quietly(db, "UPDATE posts SET title = 'Retitled quietly' WHERE id = %s", post["id"])
    counts = msgspec.structs.replace(cache(api).counts)
    for url in urls:
        assert body_of(client.get(url), 200) == first[url], url
    assert cache(api).counts.hits == counts.hits + len(urls)
    # A read with a token goes to the database (and sees the quiet change).
    signed_in = client.get(f"/api/users/{ada['id']}", headers=bearer(mint_token(ada["id"])))
    assert body_of(signed_in, 200)["name"] == "Renamed quietly"
    # So does a page after the first, and a read that names a write it must see.
    assert client.get("/api/posts", headers={"Consistency-Token": "x"}).json()["items"][0][
        "title"
    ] == ("Retitled quietly")


def test_the_etag_and_304_hold_for_a_cached_answer(
    api: Client, ada: dict[str, Any], post: dict[str, Any]
) -> None:
    cache_caught_up(api)
    url = f"/api/posts/{post['id']}"
    api.headers.pop("Authorization")
    miss = api.get(url)
    hit = api.get(url)
    assert hit.headers["ETag"] == miss.headers["ETag"]
    assert hit.content == miss.content
    again = api.get(url, headers={"If-None-Match": hit.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert cache(api).counts.hits >= 2


@pytest.mark.parametrize("change", ["rename", "retitle", "unpublish", "delete", "delete_user"])
def test_a_write_through_the_api_is_read_back_at_once(
    api: Client, change: str, ada: dict[str, Any], post: dict[str, Any]
) -> None:
    """Read-your-writes: the worker that wrote never answers the old version."""
    cache_caught_up(api)
    admin = dict(api.headers)
    anonymous = {k: v for k, v in admin.items() if k.lower() != "authorization"}
    api.headers.clear()
    api.headers.update(anonymous)
    pages = [f"/api/posts/{post['id']}", f"/api/users/{ada['id']}", "/api/posts"]
    pages += [f"/api/users/{ada['id']}/posts", f"/api/users/{ada['id']}?include=posts"]
    for url in pages:
        api.get(url)
        api.get(url)  # now cached
    # Deaf to NOTIFY from here: only the worker's own drop can make the reads below fresh.
    channel = cache(api).channel
    assert channel is not None
    channel._on_event = lambda _payload: None
    if change == "rename":
        api.patch(f"/api/users/{ada['id']}", json={"name": "Ada L."}, headers=admin)
    elif change == "retitle":
        api.patch(f"/api/posts/{post['id']}", json={"title": "Second"}, headers=admin)
    elif change == "unpublish":
        api.patch(f"/api/posts/{post['id']}", json={"published": False}, headers=admin)
    elif change == "delete":
        assert api.delete(f"/api/posts/{post['id']}", headers=admin).status_code == 204
    else:
        assert api.delete(f"/api/users/{ada['id']}", headers=admin).status_code == 204
    single = api.get(f"/api/posts/{post['id']}")
    feed = api.get("/api/posts").json()["items"]
    user = api.get(f"/api/users/{ada['id']}")
    if change == "rename":
        assert single.json()["author"]["name"] == "Ada L."
        assert feed[0]["author"]["name"] == "Ada L."
        assert user.json()["name"] == "Ada L."
        embedded = api.get(f"/api/users/{ada['id']}?include=posts").json()
        assert embedded["name"] == "Ada L."
    elif change == "retitle":
        assert single.json()["title"] == "Second"
        assert feed[0]["title"] == "Second"
        assert api.get(f"/api/users/{ada['id']}/posts").json()["items"][0]["title"] == "Second"
        embedded = api.get(f"/api/users/{ada['id']}?include=posts").json()
        assert embedded["posts"][0]["title"] == "Second"
    else:
        assert single.status_code == 404
        assert feed == []
        listed = api.get(f"/api/users/{ada['id']}/posts")
        assert listed.status_code == 404 or listed.json()["items"] == []
    if change == "delete_user":
        assert user.status_code == 404


def test_a_change_made_elsewhere_is_heard_within_the_bound(
    api: Client, db: DB, ada: dict[str, Any], post: dict[str, Any]
) -> None:
    """psql (another instance, the CLI) changes rows: the triggers' NOTIFY drops them."""
    cache_caught_up(api)
    url = f"/api/posts/{post['id']}"
    api.headers.pop("Authorization")
    api.get(url)
    assert api.get(url).json()["title"] == "First"
    db.execute("UPDATE posts SET title = 'Changed in psql' WHERE id = %s", (post["id"],))
    took = wait_until(
        lambda: api.get(url).json()["title"] == "Changed in psql", timeout=1.0, what="the change"
    )
    assert took < 1.0
    db.execute("UPDATE users SET name = 'Renamed in psql' WHERE id = %s", (ada["id"],))
    wait_until(
        lambda: api.get(url).json()["author"]["name"] == "Renamed in psql",
        timeout=1.0,
        what="the author's new name in the cached post",
    )
    db.execute("TRUNCATE posts")
    wait_until(lambda: api.get(url).status_code == 404, timeout=1.0, what="TRUNCATE")


def test_private_answers_are_never_cached_or_served_to_others(
    api: Client, client: Client, ada: dict[str, Any]
) -> None:
    cache_caught_up(api)
    draft = create_post(client, ada["id"], "Draft", published=False)
    ada_headers = bearer(mint_token(ada["id"]))
    for _ in range(2):
        assert api.get(f"/api/posts/{draft['id']}", headers=ada_headers).status_code == 200
        assert "email" in api.get(f"/api/users/{ada['id']}", headers=ada_headers).json()
        mine = api.get(f"/api/users/{ada['id']}/posts", headers=ada_headers).json()["items"]
        assert [p["id"] for p in mine] == [draft["id"]]
    client.headers.pop("Authorization")
    assert client.get(f"/api/posts/{draft['id']}").status_code == 404
    assert "email" not in client.get(f"/api/users/{ada['id']}").json()
    assert client.get(f"/api/users/{ada['id']}/posts").json()["items"] == []
    assert cache(api).counts.hits == 0


def test_without_a_trusted_channel_every_read_goes_to_the_database(
    api: Client, db: DB, ada: dict[str, Any], post: dict[str, Any]
) -> None:
    """The listener's backend terminated: reads bypass the cache until it is back, and
    nothing read before is served after."""
    cache_caught_up(api)
    url = f"/api/posts/{post['id']}"
    api.headers.pop("Authorization")
    api.get(url)
    assert api.get(url).json()["title"] == "First"
    channel = cache(api).channel
    assert channel is not None
    killed = db.execute(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'rawpost-cache-poller' AND datname = current_database())"
        " AS t"
    ).fetchone()
    assert killed == (1,)
    wait_until(lambda: not channel.trusted(), timeout=2, what="the channel to be distrusted")
    # While it is down (or just back): a quiet change is seen, so the read was not cached.
    quietly(db, "UPDATE posts SET title = 'While down' WHERE id = %s", post["id"])
    assert api.get(url).json()["title"] == "While down"
    bypasses = cache(api).counts.bypasses
    cache_caught_up(api)  # reconnected, echoed, emptied
    assert channel.up
    assert bypasses >= 1
    quietly(db, "UPDATE posts SET title = 'After' WHERE id = %s", post["id"])
    assert api.get(url).json()["title"] == "After"  # the cache was emptied: a miss
    quietly(db, "UPDATE posts SET title = 'Quiet again' WHERE id = %s", post["id"])
    assert api.get(url).json()["title"] == "After"  # and it caches again


@pytest.fixture
def uncached(settings: Settings) -> Iterator[Client]:
    off = msgspec.structs.replace(settings, cache=False)
    with TestClient(app=create_app(off)) as test_client:
        yield test_client


def test_the_cache_can_be_turned_off(uncached: Client, db: DB, client: Client) -> None:
    ada = create_user(uncached, "ada@example.com", "Ada")
    url = f"/api/users/{ada['id']}"
    uncached.get(url)
    quietly(db, "UPDATE users SET name = 'Quiet' WHERE id = %s", ada["id"])
    assert uncached.get(url).json()["name"] == "Quiet"
    assert cache(uncached).channel is None
    assert cache(uncached).counts == type(cache(uncached).counts)()
