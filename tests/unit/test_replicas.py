"""Read replicas without a database: settings, tokens, which requests may read from a
standby, and lag measured as time since the primary first had the missing WAL."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from service.config import SettingsError, load_settings
from service.db.replicas import (
    Replicas,
    decode_token,
    encode_token,
    reads_from_replica,
    replica_names,
    requested_position,
)


def test_replica_urls_are_a_comma_separated_list_of_postgresql_urls() -> None:
    settings = load_settings(
        environ={"RAWPOST_REPLICA_URLS": " postgresql://a:1/x , postgres://b/x ,"}
    )
    assert settings.replica_urls == ("postgresql://a:1/x", "postgres://b/x")
    assert (settings.replica_wait, settings.replica_max_lag) == (0.05, 1.0)
    with pytest.raises(SettingsError, match="RAWPOST_REPLICA_URLS"):
        load_settings(environ={"RAWPOST_REPLICA_URLS": "redis://nope"})
    with pytest.raises(SettingsError, match="RAWPOST_REPLICA_MAX_LAG"):
        load_settings(environ={"RAWPOST_REPLICA_MAX_LAG": "0"})


def test_replica_names_never_show_credentials_and_are_unique() -> None:
    urls = (
        "postgresql://u:secret@db-1:5433/rawpost",
        "postgresql://u:secret@db-1:5433/other",
        "postgresql://u@/rawpost?host=/run/postgresql",
    )
    assert replica_names(urls) == ["db-1:5433", "db-1:5433#2", "/run/postgresql:5432"]


def test_a_token_is_the_wal_position_and_anything_malformed_asks_for_nothing() -> None:
    lsn = 0x1_6B37_48A0
    assert decode_token(encode_token(lsn)) == lsn
    assert len(encode_token(lsn)) == 16
    for bad in (b"", b"zz", b"1" * 17, b"-5"):
        assert decode_token(bad) == 0


def scope(method: str, route: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    handler = SimpleNamespace(opt={})
    return {
        "method": method,
        "path": route,
        "path_template": route,
        "route_handler": handler,
        "headers": headers or [],
    }


def test_only_read_only_api_gets_outside_the_token_routes_read_from_a_replica() -> None:
    assert reads_from_replica(scope("GET", "/api/users/{user_id:str}"))
    assert reads_from_replica(scope("HEAD", "/api/posts"))
    for method, route in (
        ("POST", "/api/users"),
        ("PATCH", "/api/users/{user_id:str}"),
        ("DELETE", "/api/posts/{post_id:str}"),
        ("GET", "/api/auth/anything"),
        ("GET", "/health/ready"),
        ("GET", "/metrics"),
    ):
        assert not reads_from_replica(scope(method, route)), (method, route)
    marked = scope("GET", "/api/users")
    marked["route_handler"].opt["primary_only"] = True
    assert not reads_from_replica(marked)


def test_the_position_a_read_asks_for_comes_from_the_header_or_the_opt_in_cookie() -> None:
    header = [(b"consistency-token", b"00000000000000FF")]
    cookie = [(b"cookie", b"a=1; rawpost_consistency=0000000000000100; b=2")]
    assert requested_position(scope("GET", "/api/users", header), cookie=False) == 255
    assert requested_position(scope("GET", "/api/users", cookie), cookie=False) == 0
    assert requested_position(scope("GET", "/api/users", cookie), cookie=True) == 256
    assert requested_position(scope("GET", "/api/users", cookie + header), cookie=True) == 255


def replicas(max_lag: float = 1.0) -> Replicas:
    return Replicas(load_settings(environ={"RAWPOST_REPLICA_MAX_LAG": str(max_lag)}))


def test_lag_is_the_time_since_the_primary_first_had_what_the_replica_lacks() -> None:
    r = replicas()
    assert r.lag(100, 0.0) == math.inf  # the primary's position is not known yet
    r._record(100, 0.0)
    r._record(100, 5.0)  # idle: the position does not move, a caught-up replica has no lag
    assert r.lag(100, 5.0) == 0.0
    r._record(200, 6.0)
    r._record(300, 6.5)
    assert r.lag(100, 7.0) == pytest.approx(1.0)  # lacks 200, first seen at 6.0
    assert r.lag(250, 7.0) == pytest.approx(0.5)  # lacks 300, first seen at 6.5
    assert r.lag(300, 7.0) == 0.0


def test_a_replica_behind_every_position_kept_counts_as_at_least_the_retention() -> None:
    r = replicas(max_lag=1.0)  # keeps 10 s of positions
    r._record(100, 0.0)
    r._record(200, 1.0)
    r._record(300, 30.0)  # 100 and 200 fall out of the window
    assert r.lag(150, 30.0) >= 10.0
    assert r.lag(300, 30.0) == 0.0


def test_a_primary_that_went_back_in_position_starts_the_history_over() -> None:
    r = replicas()
    r._record(1000, 0.0)
    r._record(10, 1.0)  # another server now
    assert r.lag(10, 2.0) == 0.0
