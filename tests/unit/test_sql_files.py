"""The SQL registry without a database: the `:name` convention, and every file loaded and
called through its generated function."""

from __future__ import annotations

import pytest

from rawpost_devtools import CHECKOUT
from service.resources import SQL_DIR
from service.sql import QUERIES, SqlFileError, compile_named, query


def test_named_parameters_become_positional_in_order_of_first_use() -> None:
    sql, params = compile_named("SELECT :b, :a, :b")
    assert sql == "SELECT $1, $2, $1"
    assert params == ("b", "a")


@pytest.mark.parametrize(
    ("text", "expected_sql", "expected_params"),
    [
        ("SELECT :x::int", "SELECT $1::int", ("x",)),
        ("SELECT now()::date, :d::timestamptz", "SELECT now()::date, $1::timestamptz", ("d",)),
        ("SELECT 'a:b :c', :p", "SELECT 'a:b :c', $1", ("p",)),
        ("SELECT 'it''s :no', :p", "SELECT 'it''s :no', $1", ("p",)),
        ("SELECT E'\\' :no', :p", "SELECT E'\\' :no', $1", ("p",)),
        ("SELECT 'costs $5', :p", "SELECT 'costs $5', $1", ("p",)),
        ("SELECT $$ :no $1 $$, :p", "SELECT $$ :no $1 $$, $1", ("p",)),
        ("SELECT $fn$ it's :no $fn$, :p", "SELECT $fn$ it's :no $fn$, $1", ("p",)),
        ('SELECT 1 AS ":no", :p', 'SELECT 1 AS ":no", $1', ("p",)),
        ("-- :no here\nSELECT :p", "-- :no here\nSELECT $1", ("p",)),
        ("/* :no /* nested :no */ */ SELECT :p", "/* :no /* nested :no */ */ SELECT $1", ("p",)),
        ("SELECT arr[1:2], :p", "SELECT arr[1:2], $1", ("p",)),
    ],
)
def test_tricky_sql_keeps_casts_literals_and_comments(
    text: str, expected_sql: str, expected_params: tuple[str, ...]
) -> None:
    assert compile_named(text) == (expected_sql, expected_params)


@pytest.mark.parametrize(
    "text",
    ["SELECT $1", "SELECT 'open", 'SELECT "open', "SELECT $$ open", "/* open"],
)
def test_positional_parameters_and_unterminated_text_are_rejected(text: str) -> None:
    with pytest.raises(SqlFileError, match="<sql>"):
        compile_named(text)


def test_every_sql_file_is_loaded() -> None:
    files = {p.relative_to(SQL_DIR).with_suffix("").as_posix() for p in SQL_DIR.rglob("*.sql")}
    assert files == set(QUERIES)
    assert files, "no SQL files found"


def test_every_sql_file_is_called_through_its_generated_function_by_a_repository() -> None:
    unused = []
    for name in QUERIES:
        domain, function = name.split("/")
        repository = (CHECKOUT / "service" / domain / "repository.py").read_text()
        if f"q.{function}(" not in repository:
            unused.append(name)
    assert unused == []


def test_a_missing_query_name_fails_naming_its_path() -> None:
    with pytest.raises(SqlFileError, match=r"sql/users/no_such_query\.sql"):
        query("users/no_such_query")
