"""Settings come from the environment once; bad values name their variable."""

from __future__ import annotations

import pytest

from service.config import ENV_NAMES, Settings, SettingsError, load_settings


def test_defaults_match_the_contract() -> None:
    settings = load_settings(environ={})
    assert settings.database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.pool_max_size == 10
    assert settings.workers >= 1
    assert settings.access_log == "errors"
    assert settings.pool_max_idle == 30
    assert settings.connect_timeout == 10
    assert settings.body_limit == 1024 * 1024


def test_every_setting_has_an_environment_variable() -> None:
    assert set(ENV_NAMES) == set(Settings.__struct_fields__)


def test_environment_values_are_converted_to_their_types() -> None:
    settings = load_settings(
        environ={
            "DATABASE_URL": "postgresql://u@h/db",
            "RAWPOST_PORT": "9000",
            "RAWPOST_ACQUIRE_TIMEOUT": "0.25",
            "RAWPOST_LOG_LEVEL": "debug",
        }
    )
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.port == 9000
    assert settings.acquire_timeout == 0.25
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAWPOST_PORT", "http"),
        ("RAWPOST_PORT", "70000"),
        ("RAWPOST_POOL_MAX_SIZE", "0"),
        ("RAWPOST_ACQUIRE_TIMEOUT", "-1"),
        ("RAWPOST_BODY_LIMIT", "1.5MB"),
        ("RAWPOST_LOG_LEVEL", "chatty"),
    ],
)
def test_a_malformed_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ={variable: value})


def test_pool_min_above_max_is_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"RAWPOST_POOL_MIN_SIZE": "30", "RAWPOST_POOL_MAX_SIZE": "20"})
    assert str(caught.value) == "RAWPOST_POOL_MIN_SIZE must not exceed RAWPOST_POOL_MAX_SIZE"


@pytest.mark.parametrize(
    ("value", "mode"),
    [("all", "all"), ("ERRORS", "errors"), ("off", "off"), ("true", "all"), ("0", "off")],
)
def test_access_log_takes_its_modes_and_the_old_booleans(value: str, mode: str) -> None:
    assert load_settings(environ={"RAWPOST_ACCESS_LOG": value}).access_log == mode


def test_an_unknown_access_log_mode_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="RAWPOST_ACCESS_LOG"):
        load_settings(environ={"RAWPOST_ACCESS_LOG": "some"})


@pytest.mark.parametrize(
    ("word", "value"),
    [
        *[("true", True), ("On", True), ("1", True), ("yes", True)],
        *[("false", False), ("OFF", False), ("0", False), ("no", False)],
    ],
)
def test_an_on_off_setting_takes_the_usual_words(word: str, value: bool) -> None:
    settings = load_settings(environ={"RAWPOST_CACHE": word, "RAWPOST_REQUIRE_IF_MATCH": word})
    assert settings.cache is value and settings.require_if_match is value


def test_an_on_off_setting_refuses_anything_else() -> None:
    with pytest.raises(SettingsError, match="RAWPOST_CACHE='maybe'"):
        load_settings(environ={"RAWPOST_CACHE": "maybe"})
