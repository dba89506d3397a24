"""The signing secret the tests use passes the checks a start applies."""

from __future__ import annotations

from service.config import check_jwt_secrets, load_settings
from tests.helpers import TEST_ENV


def test_the_test_environment_uses_a_valid_secret() -> None:
    check_jwt_secrets(load_settings(environ=TEST_ENV))
