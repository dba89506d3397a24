"""Idempotency-Key on the POST routes: the same key and body give back the first response.

The key is claimed, the write done and its response stored in one transaction, so a
client that lost a response (a cut connection, a 503 after an unknown commit) can send
the same request again with the same key and get the original answer, never a second
row. The same key with another body is a 422. Without a key, nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Response
from litestar.params import HeaderParameter

from service.conditional import tagged
from service.db.session import Session
from service.db.statements import Executor
from service.errors import ConflictError, UnprocessableError
from service.generated import idempotency as q

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional, 1..200 visible ASCII characters. Sending the same request"
        " again with the same key returns the first response (with `Idempotent-Replayed:"
        " true`) instead of doing the work twice; the same key with another body is a 422.",
    ),
]


class Outcome(msgspec.Struct, frozen=True):
    """What a POST route answered: status, the body Struct, and its Location, if any."""

    status: int
    body: msgspec.Struct
    location: str | None = None


def _response(status: int, body: bytes, location: str | None, replayed: bool) -> Response[Any]:
    # Every route behind idempotent() answers one resource: it gets its ETag (a replay,
    # the first answer's).
    headers = {"Location": location} if location else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return tagged(body, status=status, headers=headers)


async def idempotent(
    session: Session,
    *,
    route: str,
    key: str | None,
    body: bytes,
    run: Callable[[Executor], Awaitable[Outcome]],
) -> Response[Any]:
    """Run `run` (the route's write) once per (route, key); replay its response after."""
    if key is None:
        outcome = await run(session)
        return _response(outcome.status, msgspec.json.encode(outcome.body), outcome.location, False)
    request_hash = hashlib.sha256(body).hexdigest()

    async def work(conn: Executor) -> Response[Any]:
        claimed = await q.insert_idempotency_key(
            conn, route=route, key=key, request_hash=request_hash
        )
        if claimed is None:
            stored = await q.get_idempotency_key(conn, route=route, key=key)
            if stored is None or stored.status is None or stored.body is None:
                raise ConflictError("a request with this Idempotency-Key is still in progress")
            if stored.request_hash != request_hash:
                raise UnprocessableError(
                    "this Idempotency-Key was used with a different request body"
                )
            return _response(stored.status, stored.body, stored.location, True)
        outcome = await run(conn)
        encoded = msgspec.json.encode(outcome.body)
        await q.update_idempotency_key(
            conn,
            route=route,
            key=key,
            status=outcome.status,
            body=encoded,
            location=outcome.location,
        )
        return _response(outcome.status, encoded, outcome.location, False)

    return await session.transaction(work)
