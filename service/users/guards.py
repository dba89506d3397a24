"""Who may act on a user: the user itself or an admin (visibility is decided in SQL)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers.base import BaseRouteHandler

from service.auth.security import caller_of, signed_in
from service.errors import ForbiddenError


async def owner_or_admin(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """401 without a caller; 403 for anyone but the user itself or an admin, the same for
    every id (existing or not), so the answer tells nothing about which users exist."""
    await signed_in(connection, handler)
    caller = caller_of(connection)
    assert caller is not None
    try:
        user_id = uuid.UUID(connection.path_params["user_id"])
    except (KeyError, ValueError):
        # Refused here too, rather than trusting the route's own validation to follow.
        raise ValidationException(
            detail="Validation failed", extra=[{"key": "user_id", "message": "Invalid UUID"}]
        ) from None
    if caller.id != user_id and not caller.is_admin:
        raise ForbiddenError("only the user itself or an admin may change this user")
