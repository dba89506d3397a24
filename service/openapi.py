"""What the OpenAPI document must say and Litestar's generator cannot, added once to the
generated document when the app is built (`refine`).

The document is a contract a fuzzer holds the service to (`rawpost fuzz` in CI): every
request it declares valid must be accepted, every one it declares invalid refused. So:

- every request body refuses unknown fields (`additionalProperties: false`: each body
  Struct is `forbid_unknown_fields`, and a test checks that);
- text rules the Structs' `__post_init__` enforce (names trimmed to 1..100 characters, no
  NUL anywhere) get the patterns `service.validation` derives from the same rules;
- a PATCH body needs at least one field to change, and `current_password` goes only with
  `password`;
- `GET /api/users/{user_id}` answers a User, or with `?include=posts` a UserWithPosts:
  `anyOf`, since a UserWithPosts is also a valid User;
- the reads that answer If-None-Match say so (the header is not a handler parameter);
- the Consistency-Token of read replicas (service/db/replicas.py, read from the raw
  headers too): a request header of the API's reads, a response header of its writes.
"""

from __future__ import annotations

from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    Operation,
    Parameter,
    PathItem,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from service.conditional import IF_NONE_MATCH_DOC
from service.db.replicas import replica_readable
from service.users.schemas import NAME_MAX
from service.validation import NO_NUL, trimmed_pattern

# component -> property -> pattern, for rules msgspec's Meta cannot state.
PATTERNS: dict[str, dict[str, str]] = {
    "UserCreate": {"name": trimmed_pattern(NAME_MAX), "password": NO_NUL},
    "UserPatch": {"name": trimmed_pattern(NAME_MAX), "password": NO_NUL},
    "PostCreate": {"title": NO_NUL, "content": NO_NUL},
    "PostPatch": {"title": NO_NUL, "content": NO_NUL},
}
# At least one of these in a PATCH body.
CHANGES: dict[str, tuple[str, ...]] = {
    "UserPatch": ("email", "name", "password"),
    "PostPatch": ("title", "content", "published"),
}
# The reads that answer If-None-Match (read from the raw headers: see conditional.py).
CONDITIONAL_READS = ("/api/users/me", "/api/users/{user_id}", "/api/posts/{post_id}")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CONSISTENCY_HEADER = "Consistency-Token"
CONSISTENCY_READ_DOC = (
    "With read replicas: the `Consistency-Token` of the caller's last write; the read runs"
    " where that write is visible. Any other value is ignored."
)
CONSISTENCY_WRITE_DOC = (
    "With read replicas: the write's position (16 hex digits, opaque); send it back on the"
    " reads that must see this write."
)


def refine(document: OpenAPI) -> None:
    """Make the generated `document` say what the service accepts and answers, in place."""
    assert document.components.schemas is not None and document.paths is not None
    schemas = document.components.schemas
    for name in request_body_components(document):
        schemas[name].additional_properties = False
    for name, patterns in PATTERNS.items():
        properties = schemas[name].properties or {}
        for field, pattern in patterns.items():
            prop = properties[field]
            assert isinstance(prop, Schema)
            prop.pattern = pattern
    for name, fields in CHANGES.items():
        schemas[name].min_properties = 1
        schemas[name].any_of = [Schema(required=[field]) for field in fields]
    schemas["UserPatch"].dependent_required = {"current_password": ["password"]}
    get_user = _operations(document.paths["/api/users/{user_id}"])["get"]
    answer = (get_user.responses or {})["200"]
    assert not isinstance(answer, Reference) and answer.content is not None
    schema = answer.content["application/json"].schema
    assert isinstance(schema, Schema)
    schema.any_of, schema.one_of = schema.one_of, None
    for path in CONDITIONAL_READS:
        read = _operations(document.paths[path])["get"]
        read.parameters = [*(read.parameters or []), _if_none_match()]
    for path, item in document.paths.items():
        if path.startswith("/api/"):
            for method, operation in _operations(item).items():
                _consistency_token(path, method, operation)


def _consistency_token(path: str, method: str, operation: Operation) -> None:
    """Reads take the token (those a standby may answer); writes answer it on success."""
    if method in ("get", "head"):
        if replica_readable(method.upper(), path):
            header = Parameter(
                name=CONSISTENCY_HEADER,
                param_in=ParamType.HEADER,
                required=False,
                schema=Schema(type=OpenAPIType.STRING),
                description=CONSISTENCY_READ_DOC,
            )
            operation.parameters = [*(operation.parameters or []), header]
        return
    for status, answer in (operation.responses or {}).items():
        if status.startswith("2") and not isinstance(answer, Reference):
            answer.headers = {
                **(answer.headers or {}),
                CONSISTENCY_HEADER: OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING), description=CONSISTENCY_WRITE_DOC
                ),
            }


def _if_none_match() -> Parameter:
    return Parameter(
        name="If-None-Match",
        param_in=ParamType.HEADER,
        required=False,
        schema=Schema(type=OpenAPIType.STRING),
        description=IF_NONE_MATCH_DOC,
    )


def request_body_components(document: OpenAPI) -> set[str]:
    """Names of the components used as a request body by some operation."""
    names = set()
    for item in (document.paths or {}).values():
        for operation in _operations(item).values():
            body = operation.request_body
            if body is None or isinstance(body, Reference):
                continue
            for media in body.content.values():
                if isinstance(media.schema, Reference):
                    names.add(media.schema.ref.rsplit("/", 1)[1])
    return names


def _operations(item: PathItem) -> dict[str, Operation]:
    return {m: op for m in METHODS if isinstance(op := getattr(item, m, None), Operation)}
