"""The seed's posts per user: they sum exactly, stay within 0 to 40, and include idle and
prolific authors."""

from __future__ import annotations

import random

import pytest

from rawpost_devtools.seed import MAX_POSTS_PER_USER, post_counts


@pytest.mark.parametrize(("users", "posts"), [(1000, 10_000), (10, 400), (10, 0), (3, 1), (0, 0)])
def test_post_counts_sum_exactly_and_stay_within_0_to_40(users: int, posts: int) -> None:
    counts = post_counts(random.Random(1), users, posts)
    assert len(counts) == users
    assert sum(counts) == posts
    assert all(0 <= c <= MAX_POSTS_PER_USER for c in counts)


def test_post_counts_at_the_standard_ratio_include_idle_and_prolific_authors() -> None:
    counts = post_counts(random.Random(1), 10_000, 100_000)
    assert 0 in counts
    assert MAX_POSTS_PER_USER in counts
