"""Idempotency-Key on the POST routes: one row per key, the first response replayed."""

from __future__ import annotations

import threading

from tests.helpers import DB, PASSWORD, Client, assert_problem, body_of, create_user


def _users(db: DB) -> int:
    row = db.execute("SELECT count(*) FROM users WHERE role = 'user'").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_same_key_and_body_return_the_first_response_and_store_one_row(
    client: Client, db: DB
) -> None:
    payload = {"email": "ada@x.io", "name": "Ada", "password": PASSWORD}
    first = client.post("/api/users", json=payload, headers={"Idempotency-Key": "k-1"})
    again = client.post("/api/users", json=payload, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _users(db) == 1


def test_same_key_with_another_body_is_422_and_changes_nothing(client: Client, db: DB) -> None:
    headers = {"Idempotency-Key": "k-2"}
    body_of(
        client.post(
            "/api/users",
            json={"email": "a@x.io", "name": "A", "password": PASSWORD},
            headers=headers,
        ),
        201,
    )
    other = client.post(
        "/api/users", json={"email": "b@x.io", "name": "B", "password": PASSWORD}, headers=headers
    )
    assert "Idempotency-Key" in assert_problem(other, 422)["detail"]
    assert _users(db) == 1


def test_a_failed_request_does_not_use_up_its_key(client: Client, db: DB) -> None:
    create_user(client, "taken@x.io", "A")
    headers = {"Idempotency-Key": "k-3"}
    assert_problem(
        client.post(
            "/api/users",
            json={"email": "TAKEN@x.io", "name": "B", "password": PASSWORD},
            headers=headers,
        ),
        409,
    )
    db.execute("UPDATE users SET email = 'moved@x.io' WHERE role = 'user'")
    retried = client.post(
        "/api/users",
        json={"email": "TAKEN@x.io", "name": "B", "password": PASSWORD},
        headers=headers,
    )
    assert body_of(retried, 201)["email"] == "TAKEN@x.io"


def test_keys_are_per_route(client: Client) -> None:
    headers = {"Idempotency-Key": "shared"}
    user = body_of(
        client.post(
            "/api/users",
            json={"email": "a@x.io", "name": "A", "password": PASSWORD},
            headers=headers,
        ),
        201,
    )
    post = client.post(
        "/api/posts",
        json={"author_id": user["id"], "title": "T", "content": "C"},
        headers=headers,
    )
    assert body_of(post, 201)["author"]["id"] == user["id"]


def test_posts_and_restores_accept_keys(client: Client, db: DB) -> None:
    user = create_user(client, "a@x.io", "A")
    payload = {"author_id": user["id"], "title": "T", "content": "C"}
    one = client.post("/api/posts", json=payload, headers={"Idempotency-Key": "p"})
    two = client.post("/api/posts", json=payload, headers={"Idempotency-Key": "p"})
    assert one.json() == two.json()
    row = db.execute("SELECT count(*) FROM posts").fetchone()
    assert row == (1,)
    client.delete(f"/api/users/{user['id']}")
    restored = client.post(f"/api/users/{user['id']}/restore", headers={"Idempotency-Key": "r"})
    replayed = client.post(f"/api/users/{user['id']}/restore", headers={"Idempotency-Key": "r"})
    assert body_of(restored, 200) == body_of(replayed, 200)


def test_concurrent_requests_with_one_key_create_one_row(client: Client, db: DB) -> None:
    payload = {"email": "race@x.io", "name": "Race", "password": PASSWORD}
    statuses: list[int] = []
    bodies: list[object] = []

    def send() -> None:
        response = client.post("/api/users", json=payload, headers={"Idempotency-Key": "race"})
        statuses.append(response.status_code)
        bodies.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [201] * 6, bodies
    assert all(b == bodies[0] for b in bodies)
    assert _users(db) == 1


def test_a_malformed_key_is_400(client: Client, db: DB) -> None:
    for bad in ["", "x" * 201, "has space", "tab\there"]:
        response = client.post(
            "/api/users",
            json={"email": "a@x.io", "name": "A", "password": PASSWORD},
            headers={"Idempotency-Key": bad},
        )
        assert_problem(response, 400)
    assert _users(db) == 0


def test_openapi_documents_the_header(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    params = spec["paths"]["/api/users"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in params)
