"""One database and one app per module for the bad-input tests.

Every case must leave the database untouched, and each proves it with a snapshot of every
row before and after. That makes one database and one app per module safe to share, which
keeps a few hundred cases fast; cases that store rows use the per-test `client` and `db`
fixtures instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.config import load_settings
from tests.helpers import (
    DB,
    TEST_ENV,
    Client,
    bearer,
    create_post,
    create_user,
    insert_admin,
    mint_token,
    scratch_database,
)
from tests.integration.bad_input.requests import Seed


@pytest.fixture(scope="module")
def shared_db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A migrated database for this module, dropped at its end."""
    with scratch_database(pg_admin_url, "rawpost_badinput", template=template_db) as url:
        yield url


@pytest.fixture(scope="module")
def shared_db(shared_db_url: str) -> Iterator[DB]:
    with psycopg.connect(shared_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def shared_client(shared_db_url: str) -> Iterator[Client]:
    settings = load_settings(
        environ=TEST_ENV,
        overrides={"database_url": shared_db_url, "pool_min_size": 1, "startup_timeout": 5},
    )
    with TestClient(app=create_app(settings)) as client:
        # Signed in as an admin, who may do anything: every bad input meets the validation
        # of a request that would otherwise be allowed.
        client.headers.update(bearer(mint_token(insert_admin(shared_db_url))))
        yield client


@pytest.fixture(scope="module")
def seed(shared_client: Client) -> Seed:
    user = create_user(shared_client, "seed@example.com", "Seed")
    post = create_post(shared_client, user["id"], "Seed", content="seed", published=True)
    return Seed(user_id=user["id"], post_id=post["id"])
