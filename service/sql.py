"""Loads sql/**/*.sql by name into a read-only registry; named `:params` become `$n`.

Parameter convention: a file refers to its parameters as `:name` (letters, digits,
underscore). The loader rewrites them to asyncpg's `$1, $2, ...` in order of first
appearance, so the same `:name` used twice is one parameter. It leaves alone `::`
casts, anything inside '...' / E'...' strings, "quoted identifiers", $tag$ dollar
quotes $tag$ and comments. Writing `$1` yourself is an error: one convention per file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import msgspec

from service.resources import SQL_DIR

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_POSITIONAL = re.compile(r"\$[0-9]+")
# Comments and string literals, to blank out before looking for keywords.
COMMENTS_AND_STRINGS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.S)
_STARTS_WITH_READ = re.compile(r"\s*(SELECT|WITH)\b", re.I)
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|FOR\s+UPDATE|FOR\s+SHARE)\b", re.I)
_ANNOTATION = re.compile(r"^--\s*@([a-z][a-z-]*)\s*:?\s*(.*)$")


class SqlFileError(Exception):
    """A SQL file is missing, unreadable or breaks the parameter convention."""


class Query(msgspec.Struct, frozen=True):
    """One statement: its name (`users/get_user`), source path, asyncpg text and params.

    Generated functions hand the Query itself to the executor, which names it in logs
    and metrics and retries it after a lost connection only if `readonly`.
    """

    name: str
    path: str
    sql: str
    params: tuple[str, ...]
    source: str  # the file's text as written
    digest: str  # sha256 of `source`, so generated code can tell when it is stale
    readonly: bool  # a plain read (SELECT, or WITH without a data-modifying part)

    @property
    def annotations(self) -> dict[str, tuple[str, ...]]:
        """`-- @key: a, b` header lines (docs/contracts.md, "How to add a query")."""
        found: dict[str, tuple[str, ...]] = {}
        for line in self.source.splitlines():
            if m := _ANNOTATION.match(line):
                values = (m.group(2) or "").replace(",", " ").split()
                found[m.group(1)] = found.get(m.group(1), ()) + tuple(values)
        return found


def is_read_only(sql: str) -> bool:
    """A plain read (SELECT, or WITH without a data-modifying part): safe to run again."""
    code = COMMENTS_AND_STRINGS.sub(" ", sql)
    return _STARTS_WITH_READ.match(code) is not None and not _WRITES.search(code)


def compile_named(text: str, *, origin: str = "<sql>") -> tuple[str, tuple[str, ...]]:
    """Rewrite `:name` parameters to `$n`; return the new text and the names in order."""
    names: list[str] = []

    def number(name: str) -> str:
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return substitute_params(text, number, keep_comments=True, origin=origin), tuple(names)


def substitute_params(
    text: str, replace: Callable[[str], str], *, keep_comments: bool, origin: str = "<sql>"
) -> str:
    """`text` with each `:name` parameter replaced by `replace(name)`.

    Literals, quoted identifiers, dollar quotes and `::` casts are copied as written, and
    comments too unless `keep_comments` is false (a block comment then becomes a space).
    Unterminated text and `$1`-style parameters raise SqlFileError naming `origin`.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = text.find("\n", i)
            end = n if end == -1 else end
            if keep_comments:
                out.append(text[i:end])
            i = end
        elif ch == "/" and nxt == "*":
            end = _block_comment_end(text, i, origin)
            out.append(text[i:end] if keep_comments else " ")
            i = end
        elif ch in "'\"":
            escapes = (
                ch == "'" and i > 0 and text[i - 1] in "eE" and not _is_ident_char(text, i - 2)
            )
            end = _quoted_end(text, i, ch, backslash=escapes, origin=origin)
            out.append(text[i:end])
            i = end
        elif ch == "$":
            tag = _DOLLAR_TAG.match(text, i)
            if tag and not _is_ident_char(text, i - 1):
                close = text.find(tag.group(0), tag.end())
                if close == -1:
                    raise SqlFileError(f"{origin}: unterminated dollar-quoted string")
                end = close + len(tag.group(0))
                out.append(text[i:end])
                i = end
            elif positional := _POSITIONAL.match(text, i):
                raise SqlFileError(
                    f"{origin}: positional parameter {positional.group(0)} found;"
                    " use :name parameters"
                )
            else:
                out.append(ch)
                i += 1
        elif ch == ":" and nxt == ":":
            out.append("::")
            i += 2
        elif ch == ":" and (m := _NAME.match(text, i + 1)):
            out.append(replace(m.group(0)))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _is_ident_char(text: str, i: int) -> bool:
    return i >= 0 and (text[i].isalnum() or text[i] == "_")


def _quoted_end(text: str, start: int, quote: str, *, backslash: bool, origin: str) -> int:
    i = start + 1
    while i < len(text):
        if backslash and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlFileError(f"{origin}: unterminated {quote} quote")


def _block_comment_end(text: str, start: int, origin: str) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlFileError(f"{origin}: unterminated /* comment")


def load_queries(root: Path = SQL_DIR) -> Mapping[str, Query]:
    """Read every `.sql` file under `root`; the name is its path without the suffix."""
    if not root.is_dir():
        raise SqlFileError(f"{root}: SQL folder not found")
    found: dict[str, Query] = {}
    for path in sorted(root.rglob("*.sql")):
        name = path.relative_to(root).with_suffix("").as_posix()
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise SqlFileError(f"{path}: file is empty")
        sql, params = compile_named(text, origin=str(path))
        digest = hashlib.sha256(text.encode()).hexdigest()
        found[name] = Query(
            name=name,
            path=str(path),
            sql=sql,
            params=params,
            source=text,
            digest=digest,
            readonly=is_read_only(sql),
        )
    return MappingProxyType(found)


QUERIES: Mapping[str, Query] = load_queries()


def query(
    name: str, digest: str | None = None, *, registry: Mapping[str, Query] = QUERIES
) -> Query:
    """The loaded query called `name`; a missing file fails at import, naming its path.

    Generated code passes the digest of the file it was generated from, so a SQL file
    edited without `rawpost contracts generate` stops the start instead of lying.
    """
    try:
        found = registry[name]
    except KeyError:
        raise SqlFileError(f"{SQL_DIR / name}.sql: no such SQL file") from None
    if digest is not None and found.digest != digest:
        raise SqlFileError(
            f"{found.path}: changed since its typed function was generated;"
            " run `rawpost contracts generate`"
        )
    return found
