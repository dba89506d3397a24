"""`rawpost seed`: fill an empty database with the standard benchmark data set, by COPY.

The data set (docs/performance.md, "`rawpost seed`"): users, and posts with 0..40
per user (exactly --posts in all), 90 % published, `created_at` spread over the year
before --now. Everything is drawn from random.Random streams seeded with --seed, so the
same seed and --now give the same rows and the same sample-ids file, byte for byte.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import psycopg

from service import migrate
from service.clitools import database_url as database_url_of
from service.clitools import settings_or_exit

MAX_POSTS_PER_USER = 40
PUBLISHED_SHARE = 0.9
SPAN = timedelta(days=365)
SAMPLE_SIZE = 1000
DEFAULT_IDS_FILE = "bench/sample-ids.json"
_BATCH = 20_000  # rows per progress-bar step

UserRow = tuple[uuid.UUID, str, str, datetime, datetime]
PostRow = tuple[uuid.UUID, uuid.UUID, str, str, bool, datetime, datetime]
# Binary COPY: about a third less server time than text for uuid and timestamptz columns.
_USER_COPY = (
    "COPY users (id, email, name, created_at, updated_at) FROM STDIN (FORMAT BINARY, FREEZE)",
    ("uuid", "text", "text", "timestamptz", "timestamptz"),
)
_POST_COPY = (
    "COPY posts (id, author_id, title, content, published, created_at, updated_at)"
    " FROM STDIN (FORMAT BINARY, FREEZE)",
    ("uuid", "uuid", "text", "text", "bool", "timestamptz", "timestamptz"),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "Ada Alan Barbara Claude Donald Edsger Frances Grace Guido Hedy Ivan Jean John Ken Leslie"
    " Linus Margaret Niklaus Radia Richard Rob Shafi Sophie Tim Tony Vint Whitfield Yukihiro"
)
_LAST = _words(
    "Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper Rossum Lamarr Sutherland"
    " Sammet Backus Thompson Lamport Torvalds Hamilton Wirth Perlman Stallman Pike Goldwasser"
    " Wilson Berners-Lee Hoare Cerf Diffie Matsumoto"
)
_WORDS = _words(
    "query index table row column page cursor plan scan join vacuum commit snapshot lock"
    " latency throughput cache buffer replica shard pool connection request response server"
    " client schema migration release deploy metric trace log error retry timeout queue"
    " batch stream event worker thread async await python postgres json struct route handler"
    " the a of to and in is for on with that this it as by from at be are was or an"
)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize()


def post_counts(rng: random.Random, users: int, posts: int) -> list[int]:
    """How many posts each user gets: 0..40 each, skewed (few prolific authors), sum `posts`."""
    if posts > users * MAX_POSTS_PER_USER:
        raise ValueError(
            f"{posts} posts do not fit {users} users at {MAX_POSTS_PER_USER} posts per user at most"
        )
    if users == 0:
        return []
    mean = posts / users
    # Exponential weights: at 10 posts per user, about 4 % of users post nothing and 2 %
    # reach the cap of 40, the rest spread in between, most of them below the mean.
    weights = [rng.expovariate(1.0) for _ in range(users)]
    scale = mean * users / (sum(weights) or 1.0)
    counts = [min(MAX_POSTS_PER_USER, round(w * scale)) for w in weights]
    missing = posts - sum(counts)
    while missing:
        step = 1 if missing > 0 else -1
        room = [i for i, c in enumerate(counts) if (c < MAX_POSTS_PER_USER if step > 0 else c > 0)]
        rng.shuffle(room)
        for i in room[: abs(missing)]:
            counts[i] += step
        missing -= step * min(len(room), abs(missing))
    return counts


class DataSet:
    """The standard data set, generated lazily: users first, then posts in created_at order."""

    def __init__(self, *, users: int, posts: int, seed: int, now: datetime) -> None:
        self.users_total = users
        self.posts_total = posts
        self.seed = seed
        self.now = now
        # One stream per concern, so changing how titles are drawn does not move every id.
        self._rng = {
            part: random.Random(f"rawpost-seed:{seed}:{part}")  # noqa: S311 - test data
            for part in ("users", "counts", "times", "posts", "text", "sample")
        }
        start = now - SPAN
        rng = self._rng["users"]
        offsets = sorted(rng.uniform(0, SPAN.total_seconds()) for _ in range(users))
        # Users are written oldest first, as a table that grew over the year would be laid out.
        self.user_created = [start + timedelta(seconds=s) for s in offsets]
        self.user_ids = [_uuid(rng) for _ in range(users)]
        self._counts = post_counts(self._rng["counts"], users, posts)
        text = self._rng["text"]
        self._titles = [_sentence(text, 3, 9) for _ in range(4096)]
        self._contents = [
            " ".join(_sentence(text, 6, 18) + "." for _ in range(text.randint(2, 8)))
            for _ in range(4096)
        ]
        sample = self._rng["sample"]
        self.sample_user_ids = [
            str(self.user_ids[i])
            for i in sorted(sample.sample(range(users), min(SAMPLE_SIZE, users)))
        ]
        self._sample_post_positions = set(sample.sample(range(posts), min(SAMPLE_SIZE, posts)))
        self.sample_post_ids: list[str] = []

    def users(self) -> Iterator[UserRow]:
        rng = self._rng["users"]
        for i, (user_id, created) in enumerate(zip(self.user_ids, self.user_created, strict=True)):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            email = f"{first}.{last}.{i}@example.com".lower()
            yield user_id, email, f"{first} {last}", created, created

    def posts(self) -> Iterator[PostRow]:
        """Each post falls between its author's creation and --now; written oldest first."""
        times = self._rng["times"]
        end = self.now.timestamp()
        schedule: list[tuple[float, int]] = []
        for author, count in enumerate(self._counts):
            begin = self.user_created[author].timestamp()
            schedule.extend((times.uniform(begin, end), author) for _ in range(count))
        schedule.sort()
        rng = self._rng["posts"]
        for position, (stamp, author) in enumerate(schedule):
            post_id = _uuid(rng)
            if position in self._sample_post_positions:
                self.sample_post_ids.append(str(post_id))
            created = datetime.fromtimestamp(stamp, UTC)
            yield (
                post_id,
                self.user_ids[author],
                rng.choice(self._titles),
                rng.choice(self._contents),
                rng.random() < PUBLISHED_SHARE,
                created,
                created,
            )

    def sample(self) -> dict[str, object]:
        """The ids file's content (complete once posts() has been consumed)."""
        return {
            "seed": self.seed,
            "users_total": self.users_total,
            "posts_total": self.posts_total,
            "users": self.sample_user_ids,
            "posts": self.sample_post_ids,
        }


def resolve_database_url(database_url: str | None) -> tuple[str, bool]:
    """--database-url, else DATABASE_URL, else the embedded server (started now); and which."""
    return database_url_of(settings_or_exit(), explicit=database_url)


def _copy(
    conn: psycopg.Connection[tuple[object, ...]],
    statement: tuple[str, Sequence[str]],
    rows: Iterator[Sequence[object]],
    *,
    total: int,
    label: str,
) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(statement[0]) as copy,
        click.progressbar(length=total, label=label, show_pos=True) as bar,
    ):
        copy.set_types(list(statement[1]))
        pending = 0
        for row in rows:
            copy.write_row(row)
            pending += 1
            if pending == _BATCH:
                bar.update(pending)
                pending = 0
        bar.update(pending)


def fill(url: str, data: DataSet, *, force: bool) -> tuple[int, int]:
    """Replace users and posts with `data` in one transaction; return the rows already there."""
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts)"
        ).fetchone()
        assert counts is not None
        users_before, posts_before = int(str(counts[0])), int(str(counts[1]))
        if (users_before or posts_before) and not force:
            raise click.ClickException(
                f"the database already holds {users_before} users and {posts_before} posts;"
                " rawpost seed only fills an empty database. Pass --force to delete them"
                " all and seed anew."
            )
        # TRUNCATE in this transaction lets COPY write frozen rows (FREEZE): no later
        # hint-bit rewrite of every page, and the visibility map is set for index-only scans.
        conn.execute("TRUNCATE posts, refresh_tokens, refresh_families, auth_events, users")
        _copy(conn, _USER_COPY, data.users(), total=data.users_total, label="users")
        _copy(conn, _POST_COPY, data.posts(), total=data.posts_total, label="posts")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        # Planner statistics: without them the first benchmarks ran 100x slower.
        click.echo("VACUUM (ANALYZE) users, posts ...")
        conn.execute("VACUUM (ANALYZE) users, posts")
    return users_before, posts_before


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp", param_hint="--now"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.option(
    "--users", type=click.IntRange(min=0), default=100_000, show_default=True, help="Users."
)
@click.option(
    "--posts",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Posts in all, 0..40 per user.",
)
@click.option(
    "--seed",
    "seed_value",
    type=int,
    default=None,
    help="Random seed; the same seed (and --now) gives the same rows. Default: a fresh one.",
)
@click.option(
    "--now",
    default=None,
    help="End of the year the timestamps spread over (ISO 8601, default: the current time).",
)
@click.option("--force", is_flag=True, help="Delete every existing user and post first.")
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_IDS_FILE,
    show_default=True,
    help="Where to write sample user and post ids (JSON) for the load scripts.",
)
@click.option(
    "--database-url",
    default=None,
    help="The database to fill [default: DATABASE_URL, else the embedded PostgreSQL].",
)
def seed(
    users: int,
    posts: int,
    seed_value: int | None,
    now: str | None,
    force: bool,
    ids_file: Path,
    database_url: str | None,
) -> None:
    """Fill an empty, migrated database with the standard benchmark data set (COPY)."""
    if posts > users * MAX_POSTS_PER_USER:
        raise click.BadParameter(
            f"at most {MAX_POSTS_PER_USER} posts per user: {users} users hold at most"
            f" {users * MAX_POSTS_PER_USER} posts",
            param_hint="--posts",
        )
    moment = _parse_now(now)
    url, is_embedded = resolve_database_url(database_url)
    if todo := migrate.pending(url):
        if not is_embedded:
            raise click.ClickException(
                f"the schema is not migrated (pending: {', '.join(todo)});"
                " run `rawpost migrate apply` first"
            )
        # Like `rawpost serve`: the embedded database is rawpost's own, so keep it current.
        migrate.apply(url, echo=click.echo)
    if seed_value is None:
        seed_value = random.SystemRandom().randrange(2**31)
    click.echo(f"seeding {users:,} users and {posts:,} posts (--seed {seed_value})")
    started = time.monotonic()
    data = DataSet(users=users, posts=posts, seed=seed_value, now=moment)
    users_before, posts_before = fill(url, data, force=force)
    if users_before or posts_before:
        click.echo(f"deleted {users_before:,} users and {posts_before:,} posts (--force)")
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text(json.dumps(data.sample(), indent=1) + "\n", encoding="utf-8")
    click.echo(
        f"seeded {users:,} users and {posts:,} posts in {time.monotonic() - started:.1f} s;"
        f" {len(data.sample_user_ids)} user ids and {len(data.sample_post_ids)} post ids"
        f" in {ids_file}"
    )
    # Seeded users have no password: load tests act as them with minted access tokens.
    click.echo(
        "seeded users have no password; to act as them, mint access tokens with"
        " `rawpost token USER_ID...` (`rawpost bench` does so for create_post)"
    )
