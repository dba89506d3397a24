"""What the benchmark runs: each request, the statement its route runs, the values bound."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from rawpost_devtools import CHECKOUT

BENCH_DIR = CHECKOUT / "bench"
# Emails the benchmark once created (users made by runs of its older create_user), and the
# title of the posts it creates (wrk's create_post.lua and pgbench's): deleted again after
# each round.
CREATED_EMAILS = r"^bench-.*@bench\.rawpost\.invalid$|^[0-9]{19}$"
CREATED_POST_TITLE = "rawpost bench post"
# create_post signs its requests with tokens of this many sampled users (contract v2).
TOKEN_USERS = 1000


class Sampled(enum.Enum):
    """A parameter value pgbench draws per transaction."""

    USER_ID = "a random user id from the ids file"
    USER_IDS = "an array of one random user id from the ids file"


# A bound parameter: a constant, None for SQL NULL, or a Sampled value.
Value = str | int | None | Sampled


@dataclass(frozen=True)
class Benchmark:
    name: str
    request: str  # for people
    script: str  # wrk Lua script in bench/
    query: str  # the sql/ file the route runs, as service.sql names it
    params: Mapping[str, Value]  # how the route fills that statement's parameters


# Which statement each route runs, with the values it passes
# (tests/integration/test_bench_statements.py checks the statement names against the
# routes, tests/unit/test_bench_kit.py the parameters against the SQL files).
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "user_by_id",
        "GET /api/users/{random id}",
        "user_by_id.lua",
        "users/get_user",
        # Anonymous, as the contract's benchmark is: no caller, not an admin.
        {"user_id": Sampled.USER_ID, "caller_id": None, "is_admin": "false"},
    ),
    Benchmark(
        "posts_page",
        "GET /api/posts?limit=20",
        "posts_page.lua",
        "posts/list_posts",
        # The route asks for limit + 1 rows to tell whether a next page exists.
        {"published": None, "before_created_at": None, "before_id": None, "limit": 21},
    ),
    Benchmark(
        "user_with_posts",
        "GET /api/users/{random id}?include=posts",
        "user_with_posts.lua",
        "users/get_user_with_posts",
        {"user_id": Sampled.USER_ID, "caller_id": None, "is_admin": "false"},
    ),
    Benchmark(
        "create_post",
        "POST /api/posts as a sampled user (bearer token minted before the run)",
        "create_post.lua",
        # The route gathers the creates that arrive together into this one statement
        # (RAWPOST_WRITE_COALESCE_MS); its ceiling runs it with one post per statement,
        # as an app without coalescing would, so `/ stmt` over 1 is what coalescing gains.
        "posts/insert_posts",
        {
            "author_ids": Sampled.USER_IDS,
            "titles": "{" + CREATED_POST_TITLE + "}",
            "contents": "{Written by rawpost bench.}",
            "published": "{true}",
        },
    ),
)
BENCHMARK_NAMES = tuple(b.name for b in BENCHMARKS)
PK_STATEMENT = "SELECT id, email, name, created_at, updated_at FROM users WHERE id = :user_id"


class SampleIds(msgspec.Struct, frozen=True):
    """The ids file `rawpost seed` writes (other fields are ignored)."""

    users: list[str]
    posts: list[str]


def tail(text: str, lines: int = 30) -> str:
    """The last lines of a tool's output, for the error that reports its failure."""
    return "\n".join(text.strip().splitlines()[-lines:])
