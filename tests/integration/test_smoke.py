from litestar.testing import TestClient

from tests.helpers import PASSWORD


def test_create_then_get_user_round_trips(client: TestClient) -> None:  # type: ignore[type-arg]
    created = client.post(
        "/api/users", json={"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    got = client.get(created.headers["location"])
    assert got.status_code == 200
    assert got.json() == created.json()
