"""Settings, read from the environment once; a bad value stops the start, naming its variable."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from service.resources import MIGRATIONS_DIR


def cpu_count() -> int:
    """CPUs this process may run on (a container's CPU set, not the host's), at most 64
    (msgspec does not check a default against the field's bounds)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    return min(count, 64)


Seconds = Annotated[float, msgspec.Meta(gt=0)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting the service reads; the field's env variable is in ENV_NAMES."""

    database_url: str | None = None
    data_dir: str = ".rawpost/pgdata"
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = msgspec.field(default_factory=cpu_count)
    pool_min_size: Annotated[int, msgspec.Meta(ge=0)] = 2
    pool_max_size: Annotated[int, msgspec.Meta(ge=1)] = 10
    pool_max_idle: Seconds = 30.0
    connect_timeout: Seconds = 10.0
    command_timeout: Seconds = 30.0
    acquire_timeout: Seconds = 5.0
    ready_timeout: Seconds = 1.0
    startup_timeout: Seconds = 60.0
    body_limit: Annotated[int, msgspec.Meta(ge=1)] = 1024 * 1024
    # Load shedding: /api requests a worker handles at once before it answers 503 at once
    # (0: never shed). docs/scaling.md, "Load shedding".
    max_in_flight: Annotated[int, msgspec.Meta(ge=0)] = 100
    # Seconds a client may take to send a request's headers (slow clients).
    header_timeout: Seconds = 10.0
    # CORS (docs/security.md): origins allowed to call the API from a browser (none: CORS
    # closed), and the Host headers served ("*": any).
    cors_origins: str = ""
    allowed_hosts: str = "*"
    # PATCH, DELETE and restore without If-Match: 428 (docs/security.md, "Conditional
    # requests").
    require_if_match: bool = False
    # How long a shared cache may reuse an answer to a read without a token before it
    # revalidates it (0: every time). docs/security.md, "Conditional requests".
    public_max_age: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 0
    # The in-process cache of public reads (docs/caching.md): on or off, its size per
    # worker, and how long an entry may live at most.
    cache: bool = True
    cache_max_mb: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 64
    cache_ttl: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    # create_post requests gathered this many milliseconds into one INSERT and one commit
    # (service/posts/writes.py); 0: each its own statement.
    write_coalesce_ms: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    log_level: LogLevel = "INFO"
    pool_max_lifetime: Seconds = 1800.0
    statement_cache_size: Annotated[int, msgspec.Meta(ge=0)] = 100
    retry_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    retry_max_time: Seconds = 2.0
    slow_query_ms: Annotated[float, msgspec.Meta(ge=0)] = 200.0
    access_log: Literal["all", "errors", "off"] = "errors"
    shutdown_grace: Seconds = 10.0
    migrations_dir: str = str(MIGRATIONS_DIR)
    rehearsal_file: str = ".rawpost/rehearsals.json"
    # Security (docs/security.md).
    jwt_secret: str | None = None
    jwt_previous_secret: str | None = None
    access_token_ttl: Annotated[int, msgspec.Meta(ge=1)] = 900
    refresh_token_ttl: Annotated[int, msgspec.Meta(ge=1)] = 30 * 24 * 3600
    hash_threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = msgspec.field(
        default_factory=cpu_count
    )
    metrics_token: Annotated[str, msgspec.Meta(min_length=16)] | None = None
    # Rate limits (docs/security.md, "Rate limits"); None: `off`.
    rate_limit: Annotated[int, msgspec.Meta(ge=1)] | None = 1200
    login_rate_limit: Annotated[int, msgspec.Meta(ge=1)] | None = 10
    signup_rate_limit: Annotated[int, msgspec.Meta(ge=1)] | None = 20
    trusted_proxies: tuple[str, ...] = ()
    redis_url: str | None = None
    # Read replicas (docs/scaling.md, "Read replicas"): streaming standbys of DATABASE_URL
    # that serve the read-only GET routes; how long a read with a Consistency-Token waits
    # for one to replay it; the lag past which one gets no reads; how often each worker
    # checks each server's WAL position; the opt-in cookie that carries the token.
    replica_urls: tuple[str, ...] = ()
    replica_wait: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.05
    replica_max_lag: Seconds = 1.0
    replica_poll_interval: Annotated[float, msgspec.Meta(ge=0.001, le=10)] = 0.1
    consistency_cookie: bool = False

    def __post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("RAWPOST_POOL_MIN_SIZE must not exceed RAWPOST_POOL_MAX_SIZE")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"RAWPOST_TRUSTED_PROXIES={entry!r} is invalid: not an IP address or CIDR"
                ) from None
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "REDIS_URL is invalid: it must start with redis://, rediss:// or unix://"
            )
        for url in self.replica_urls:
            if not url.startswith(("postgresql://", "postgres://")):
                raise ValueError(
                    "RAWPOST_REPLICA_URLS is invalid: each comma-separated entry must start"
                    " with postgresql:// or postgres://"
                )


# One place maps each setting to its environment variable (docs/configuration.md lists
# the same).
ENV_NAMES: Mapping[str, str] = {
    "database_url": "DATABASE_URL",
    "data_dir": "RAWPOST_DATA_DIR",
    "host": "RAWPOST_HOST",
    "port": "RAWPOST_PORT",
    "workers": "RAWPOST_WORKERS",
    "pool_min_size": "RAWPOST_POOL_MIN_SIZE",
    "pool_max_size": "RAWPOST_POOL_MAX_SIZE",
    "pool_max_idle": "RAWPOST_POOL_MAX_IDLE",
    "connect_timeout": "RAWPOST_CONNECT_TIMEOUT",
    "command_timeout": "RAWPOST_COMMAND_TIMEOUT",
    "acquire_timeout": "RAWPOST_ACQUIRE_TIMEOUT",
    "ready_timeout": "RAWPOST_READY_TIMEOUT",
    "startup_timeout": "RAWPOST_STARTUP_TIMEOUT",
    "body_limit": "RAWPOST_BODY_LIMIT",
    "max_in_flight": "RAWPOST_MAX_IN_FLIGHT",
    "header_timeout": "RAWPOST_HEADER_TIMEOUT",
    "cors_origins": "RAWPOST_CORS_ORIGINS",
    "allowed_hosts": "RAWPOST_ALLOWED_HOSTS",
    "require_if_match": "RAWPOST_REQUIRE_IF_MATCH",
    "public_max_age": "RAWPOST_PUBLIC_MAX_AGE",
    "cache": "RAWPOST_CACHE",
    "cache_max_mb": "RAWPOST_CACHE_MAX_MB",
    "cache_ttl": "RAWPOST_CACHE_TTL",
    "write_coalesce_ms": "RAWPOST_WRITE_COALESCE_MS",
    "log_level": "RAWPOST_LOG_LEVEL",
    "pool_max_lifetime": "RAWPOST_POOL_MAX_LIFETIME",
    "statement_cache_size": "RAWPOST_STATEMENT_CACHE_SIZE",
    "retry_attempts": "RAWPOST_RETRY_ATTEMPTS",
    "retry_max_time": "RAWPOST_RETRY_MAX_TIME",
    "slow_query_ms": "RAWPOST_SLOW_QUERY_MS",
    "access_log": "RAWPOST_ACCESS_LOG",
    "shutdown_grace": "RAWPOST_SHUTDOWN_GRACE",
    "migrations_dir": "RAWPOST_MIGRATIONS_DIR",
    "rehearsal_file": "RAWPOST_REHEARSAL_FILE",
    "jwt_secret": "RAWPOST_JWT_SECRET",
    "jwt_previous_secret": "RAWPOST_JWT_PREVIOUS_SECRET",
    "access_token_ttl": "RAWPOST_ACCESS_TOKEN_TTL",
    "refresh_token_ttl": "RAWPOST_REFRESH_TOKEN_TTL",
    "hash_threads": "RAWPOST_HASH_THREADS",
    "metrics_token": "RAWPOST_METRICS_TOKEN",
    "rate_limit": "RAWPOST_RATE_LIMIT",
    "login_rate_limit": "RAWPOST_LOGIN_RATE_LIMIT",
    "signup_rate_limit": "RAWPOST_SIGNUP_RATE_LIMIT",
    "trusted_proxies": "RAWPOST_TRUSTED_PROXIES",
    "redis_url": "REDIS_URL",
    "replica_urls": "RAWPOST_REPLICA_URLS",
    "replica_wait": "RAWPOST_REPLICA_WAIT",
    "replica_max_lag": "RAWPOST_REPLICA_MAX_LAG",
    "replica_poll_interval": "RAWPOST_REPLICA_POLL_INTERVAL",
    "consistency_cookie": "RAWPOST_CONSISTENCY_COOKIE",
}

JWT_SECRET_MIN_BYTES = 32
# Values that appear in this project's docs and examples: never a real secret.
EXAMPLE_SECRETS = frozenset(
    {
        "change-me",
        "change-me-to-32-or-more-random-bytes",
        "change-me-to-at-least-32-random-bytes-please",
        "secret",
    }
)


# prometheus_client's own variable: set by `rawpost serve` for its worker processes
# (service.server), read by prometheus_client and service.metrics.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


# The file the workers of one `rawpost serve` share their cache invalidations through
# (service.cache.bus): set by service.server, absent with a single process.
CACHE_BUS_ENV = "RAWPOST_CACHE_BUS"


def metrics_dir() -> str | None:
    """The folder the worker processes share their metrics through, if any."""
    return os.environ.get(METRICS_DIR_ENV) or None


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


# Settings that take a positive whole number or `off`.
RATE_LIMITS = ("rate_limit", "login_rate_limit", "signup_rate_limit")
# Settings that are on or off, and the words that say which.
BOOLEANS = tuple(name for name, kind in Settings.__annotations__.items() if kind in (bool, "bool"))
_BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "1", "on", "yes"), True),
    **dict.fromkeys(("false", "0", "off", "no"), False),
}
_ACCESS_LOG_ALIASES = {"true": "all", "1": "all", "false": "off", "0": "off"}


def check_jwt_secrets(settings: Settings) -> None:
    """Refuse a missing, short or example signing secret, naming the variable."""
    for value, name, required in (
        (settings.jwt_secret, "RAWPOST_JWT_SECRET", True),
        (settings.jwt_previous_secret, "RAWPOST_JWT_PREVIOUS_SECRET", False),
    ):
        if value is None:
            if required:
                raise SettingsError(
                    f"{name} is not set: set it to {JWT_SECRET_MIN_BYTES} or more random bytes"
                    " (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            continue
        if len(value.encode()) < JWT_SECRET_MIN_BYTES:
            raise SettingsError(f"{name} is too short: use {JWT_SECRET_MIN_BYTES} or more bytes")
        if value in EXAMPLE_SECRETS:
            raise SettingsError(f"{name} is an example value from the docs: generate your own")


def load_settings(
    *, environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> Settings:
    """Read Settings from the environment (or `environ`), then apply explicit overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {
        field: env[name] for field, name in ENV_NAMES.items() if env.get(name, "") != ""
    }
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "log_level" in raw and isinstance(raw["log_level"], str):
        raw["log_level"] = raw["log_level"].upper()
    if isinstance(access_log := raw.get("access_log"), str):
        # Before `errors` existed the setting was a boolean: keep those values working.
        access_log = access_log.lower()
        raw["access_log"] = _ACCESS_LOG_ALIASES.get(access_log, access_log)
    for field in RATE_LIMITS:
        if isinstance(value := raw.get(field), str):
            if value.strip().lower() == "off":
                raw[field] = None
            elif not value.strip().isdigit():
                raise SettingsError(
                    f"{ENV_NAMES[field]}={value!r} is invalid: a whole number of requests, or off"
                )
    for field in BOOLEANS:
        if isinstance(value := raw.get(field), str):
            raw[field] = _BOOLEAN_WORDS.get(value.strip().lower(), value)
    if isinstance(proxies := raw.get("trusted_proxies"), str):
        raw["trusted_proxies"] = [p.strip() for p in proxies.split(",") if p.strip()]
    if isinstance(replicas := raw.get("replica_urls"), str):
        raw["replica_urls"] = [u.strip() for u in replicas.split(",") if u.strip()]
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), raw)) from None


def _explain(message: str, raw: Mapping[str, object]) -> str:
    # msgspec ends its message with "- at `$.field`"; swap the field for its env variable.
    if " - at `$." not in message:
        # A whole-Struct check (__post_init__) names its variables itself.
        return message.removesuffix(" - at `$`")
    text, _, where = message.rpartition(" - at `$.")
    field = where.rstrip("`")
    name = ENV_NAMES.get(field, field)
    return f"{name}={raw.get(field)!r} is invalid: {text}"
