"""Generated contracts without a database: nullability, one row type per table shape and its
name, a SQL file edited without regenerating, and mypy --strict over the generated code."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec
import pytest
from mypy import api as mypy_api

from rawpost_devtools import CHECKOUT
from rawpost_devtools.contracts.introspect import Field, PyType, QueryContract, Table
from rawpost_devtools.contracts.render import row_types
from service.resources import SQL_DIR
from service.sql import Query, SqlFileError, load_queries, query
from tests.contracts_fixture import registry

FIXTURE_OUTPUT = Path(registry.__file__).parent / "generated"


def test_nullability_follows_not_null_outer_joins_and_expressions() -> None:
    from tests.contracts_fixture.generated import fixture as q

    def optional(struct: type[msgspec.Struct]) -> set[str]:
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        return {f.name for f in info.fields if isinstance(f.type, msgspec.inspect.UnionType)}

    # LEFT JOIN: the joined table's NOT NULL columns become optional.
    assert optional(q.ListParentsWithChildrenRow) == {"child_id", "child_name"}
    # A LEFT JOIN the planner reduces to an inner join (WHERE on its columns) stays required.
    assert optional(q.ListChildrenWithParentsRow) == set()
    # Aggregates and expressions are optional unless the header says @not-null.
    assert optional(q.GetChildStatsRow) == {"newest_id", "names", "measured_at", "label"}
    # A nullable table column stays optional.
    assert optional(q.ChildRow) == {"deleted_at"}
    # The same columns from the nullable side of an outer join are all optional.
    assert optional(q.ListParentChildrenRow) == {"id", "name", "deleted_at"}


def _returns(function: object) -> object:
    return typing.get_type_hints(function)["return"]


def test_statements_returning_the_same_columns_share_one_row_type() -> None:
    from tests.contracts_fixture.generated import fixture as q

    # get_child and list_all_children: same names, order, types and nullability.
    assert _returns(q.get_child) == q.ChildRow | None
    assert _returns(q.list_all_children) == list[q.ChildRow]
    # Same names and types, other nullability (an outer join): a type of its own.
    assert _returns(q.list_parent_children) == list[q.ListParentChildrenRow]
    assert not hasattr(q, "GetChildRow") and not hasattr(q, "ListAllChildrenRow")


def test_a_statement_returning_a_tables_columns_returns_the_tables_row_type() -> None:
    from tests.contracts_fixture.generated import fixture as q
    from tests.contracts_fixture.generated import rows

    assert _returns(q.get_everything) == rows.EverythingRow | None
    assert _returns(q.insert_everything) == rows.EverythingRow | None
    assert not hasattr(q, "GetEverythingRow") and not hasattr(q, "InsertEverythingRow")
    # rows.py holds only the tables some statement returns whole.
    assert [name for name in vars(rows) if name.endswith("Row")] == ["EverythingRow"]


def test_service_statements_of_one_shape_share_a_row_type() -> None:
    from service.generated import posts, users

    # Email NULL for other callers: the shape two statements about users share.
    assert _returns(users.get_user) == users.UserRow | None
    assert _returns(users.list_users) == list[users.UserRow]
    # Email always present (the user itself, or an admin's look-up): another shape, named
    # after its first statement.
    assert _returns(users.insert_user) == users.InsertUserRow | None
    assert _returns(users.list_users_by_email) == list[users.InsertUserRow]
    # The conditional writes: `matched`, then the user's columns (NULL when nothing changed).
    assert (
        _returns(users.update_user) == _returns(users.restore_user) == users.RestoreUserRow | None
    )
    assert _returns(users.get_user_with_posts) == users.GetUserWithPostsRow | None
    for read in (posts.get_post, posts.insert_post):
        assert _returns(read) == posts.PostRow | None
    assert _returns(posts.list_posts) == list[posts.PostRow]
    assert (
        _returns(posts.update_post) == _returns(posts.restore_post) == posts.RestorePostRow | None
    )
    # No service statement returns a whole table, so there is no rows.py to import.
    assert not (CHECKOUT / "service" / "generated" / "rows.py").exists()


def _contract(name: str, *columns: tuple[str, str, bool]) -> QueryContract:
    query_ = Query(
        name=name, path=f"sql/{name}.sql", sql="", params=(), source="", digest="", readonly=True
    )
    fields = tuple(Field(n, PyType(t), optional) for n, t, optional in columns)
    return QueryContract(query=query_, params=(), columns=fields, returns="many", summary="")


def test_row_types_are_named_after_the_table_the_shared_noun_or_the_statement() -> None:
    member = (("id", "int", False), ("email", "str", False))
    viewed = (("id", "int", False), ("email", "str", True))
    table = Table("members", tuple(Field(n, PyType(t), o) for n, t, o in member), False)
    contracts = [
        _contract("d/get_member", *viewed),
        _contract("d/list_members_seen", *viewed),
        _contract("d/insert_member", *member, ("extra", "int", True)),
        _contract("d/update_member", *member, ("extra", "int", True)),
        _contract("d/list_members", *member, ("extra", "int", True)),
        _contract("d/restore_member", *member),
        _contract("d/list_tags", ("tag", "str", False)),
        _contract("d/list_tags_by_member", ("tag", "str", False)),
        _contract("d/get_member_extra", ("extra", "int", True)),
    ]
    rows = row_types(contracts, [table])
    assert {name: (row.name, row.table) for name, row in rows.items()} == {
        # Exactly the table's columns: the table's Struct in rows.py.
        "d/restore_member": ("MembersRow", "members"),
        # Three statements share a shape: the shortest noun, `member`.
        "d/insert_member": ("MemberRow", None),
        "d/update_member": ("MemberRow", None),
        "d/list_members": ("MemberRow", None),
        # `MemberRow` is taken by the larger group: named after its first statement.
        "d/get_member": ("GetMemberRow", None),
        "d/list_members_seen": ("GetMemberRow", None),
        "d/list_tags": ("TagsRow", None),
        "d/list_tags_by_member": ("TagsRow", None),
        # A shape of its own.
        "d/get_member_extra": ("GetMemberExtraRow", None),
    }
    assert rows["d/list_members"].statements == (
        "d/insert_member",
        "d/list_members",
        "d/update_member",
    )


def test_a_sql_file_edited_without_regenerating_fails_at_import() -> None:
    name = "users/get_user"
    assert query(name, load_queries(SQL_DIR)[name].digest).name == name
    with pytest.raises(SqlFileError, match=r"rawpost contracts generate"):
        query(name, "0" * 64)


def test_generated_code_passes_mypy_strict() -> None:
    out, err, status = mypy_api.run(
        ["--strict", str(FIXTURE_OUTPUT), str(CHECKOUT / "service" / "generated")]
    )
    assert status == 0, out + err


def test_a_changed_column_type_is_caught_by_mypy_where_the_api_struct_is_built(
    tmp_path: Path,
) -> None:
    snippet = tmp_path / "changed_column.py"
    snippet.write_text(
        "import datetime\nimport uuid\n\nimport msgspec\n\n"
        "from service.users.schemas import user_from\n\n\n"
        "class GetUserRow(msgspec.Struct, frozen=True, kw_only=True):\n"
        "    id: uuid.UUID\n    email: str\n    name: str | None  # the column became nullable\n"
        "    created_at: datetime.datetime\n    updated_at: datetime.datetime\n\n\n"
        "def build(row: GetUserRow) -> None:\n    user_from(row)\n"
    )
    out, _, status = mypy_api.run(["--strict", str(snippet)])
    assert status == 1
    assert 'Argument 1 to "user_from" has incompatible type "GetUserRow"' in out
