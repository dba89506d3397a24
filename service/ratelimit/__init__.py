"""Rate limits: every /api request per caller, sign-ins per email, sign-ups per address.

The caller is the token's user when a valid token came (the authentication middleware
runs first and sets `scope["user"]`), else the client address: the socket's peer, or,
when the peer is one of RAWPOST_TRUSTED_PROXIES, the right-most address of
X-Forwarded-For that is not a trusted proxy. Nobody else's X-Forwarded-For is read.

Counts live in the instance's shared table (service.ratelimit.table) or in Redis
(service.ratelimit.store), so a limit holds whatever the number of worker processes.
Headers follow draft-ietf-httpapi-ratelimit-headers-10: every /api response while a
limit is on carries `RateLimit-Policy: "api";q=1200;w=60` and `RateLimit:
"api";r=<left>;t=<seconds to the window's end>` (sign-in and sign-up responses list
their own policy too); a refused request gets 429 with `Retry-After`.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, TypeAlias

import msgspec
from litestar import Litestar, Request
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings, metrics_dir
from service.errors import PROBLEM_JSON, Problem, TooManyRequestsError
from service.ratelimit.store import Store
from service.ratelimit.table import Hit, Table

__all__ = ["Hit", "Outcome", "Policy", "RateLimits", "RateLimitsDep", "rate_headers"]

API_WINDOW = 60
TABLE_FILE = "rate-limits.table"  # in the instance's shared folder (not a *.db metric file)
_OUTCOMES = "rawpost.rate_limits"  # scope key: this request's checks, for the headers

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Policy(NamedTuple):
    name: str
    limit: int
    window: int  # seconds
    per: str  # for the 429's detail

    @property
    def header(self) -> bytes:
        """This policy's item of RateLimit-Policy."""
        return _policy_header(self.name, self.limit, self.window)


@functools.cache
def _policy_header(name: str, limit: int, window: int) -> bytes:
    return f'"{name}";q={limit};w={window}'.encode()


class Outcome(NamedTuple):
    policy: Policy
    hit: Hit

    @property
    def refused(self) -> bool:
        return self.hit.requests > self.policy.limit

    @property
    def remaining(self) -> int:
        return max(0, self.policy.limit - self.hit.requests)

    @property
    def reset(self) -> int:
        return max(1, math.ceil(self.hit.reset))


def rate_headers(outcomes: Sequence[Outcome]) -> list[tuple[bytes, bytes]]:
    if len(outcomes) == 1:  # most responses: no generator, the policy's header made once
        policy, (requests, reset) = outcomes[0]
        left = policy.limit - requests
        state = b'"%s";r=%d;t=%d' % (
            policy.name.encode(),
            left if left > 0 else 0,
            math.ceil(reset) or 1,
        )
        return [(b"ratelimit-policy", policy.header), (b"ratelimit", state)]
    policies = b", ".join(o.policy.header for o in outcomes)
    states = ", ".join(f'"{o.policy.name}";r={o.remaining};t={o.reset}' for o in outcomes)
    return [(b"ratelimit-policy", policies), (b"ratelimit", states.encode())]


def _refusal(outcomes: Sequence[Outcome], *, with_headers: bool) -> TooManyRequestsError:
    refused = [o for o in outcomes if o.refused]
    wait = max(o.reset for o in refused)
    policy = refused[0].policy
    headers = {k.decode(): v.decode() for k, v in rate_headers(outcomes)} if with_headers else {}
    return TooManyRequestsError(
        f"over the limit of {policy.limit} {policy.per}; retry in {wait} s",
        retry_after=wait,
        headers=headers,
    )


async def _send_refusal(send: Send, error: TooManyRequestsError) -> None:
    body = msgspec.json.encode(
        Problem(type=f"/problems/{error.slug}", title=error.title, status=429, detail=error.detail)
    )
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", b"%d" % len(body))]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def parse_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


class RateLimits:
    """The limits of one app: its middleware, its lifespan, and the checks that the
    sign-in and sign-up handlers call once they know the email or the caller."""

    def __init__(self, settings: Settings) -> None:
        def policy(name: str, limit: int | None, window: int, per: str) -> Policy | None:
            return None if limit is None else Policy(name, limit, window, per)

        self.api = policy("api", settings.rate_limit, API_WINDOW, "requests a minute per caller")
        self.login = policy(
            "login", settings.login_rate_limit, 60, "sign-in attempts a minute per email"
        )
        self.signup = policy(
            "signup", settings.signup_rate_limit, 3600, "sign-ups an hour per client address"
        )
        self.enabled = any(p is not None for p in (self.api, self.login, self.signup))
        self._trusted = parse_networks(settings.trusted_proxies)
        self._redis_url = settings.redis_url
        self._store: Store | None = None

    def provide(self) -> RateLimits:
        """The `limits` dependency of the sign-in and sign-up handlers."""
        return self

    @asynccontextmanager
    async def running(self, app: Litestar) -> AsyncIterator[None]:
        """Lifespan: open the instance's shared table (a private one outside `rawpost
        serve`) and the Redis client."""
        if not self.enabled:
            yield
            return
        shared = metrics_dir()
        table = Table(os.path.join(shared, TABLE_FILE) if shared else None)
        self._store = Store(table, self._redis_url)
        try:
            yield
        finally:
            await self._store.close()
            table.close()

    # --- who is asking --------------------------------------------------------------------

    def client_address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.extend(value.decode("latin-1").split(","))
        last = peer
        for item in reversed(forwarded):
            item = item.strip()
            if not item:
                continue
            if not self._is_trusted(item):
                return _normal(item)
            last = item
        return _normal(last)  # every hop is a trusted proxy: the farthest one

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._trusted)

    def caller_key(self, scope: Scope) -> str:
        user = scope.get("user")
        if user is not None:
            return f"user:{user.id}"
        return "address:" + self.client_address(scope)

    # --- checks ---------------------------------------------------------------------------

    async def _hit(self, policy: Policy, key: str) -> Outcome:
        store = self._store
        assert store is not None, "the app's lifespan opens the store"
        if store.local:  # no Redis: a plain call, no coroutine on every request
            return Outcome(policy, store.table.hit(f"{policy.name}:{key}", policy.window))
        return Outcome(policy, await store.hit(f"{policy.name}:{key}", policy.window))

    async def _check(self, request: Request[Any, Any, Any], policy: Policy, key: str) -> None:
        outcome = await self._hit(policy, key)
        outcomes: list[Outcome] | None = request.scope.get(_OUTCOMES)  # type: ignore[assignment]
        if outcomes is not None:  # the middleware adds the headers, 429 included
            outcomes.append(outcome)
        if outcome.refused:
            raise _refusal([outcome], with_headers=outcomes is None)

    async def check_refused_token(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """Count a request whose token was refused against its address's API limit: its
        RateLimit headers, or TooManyRequestsError (with them) over the limit. Guessing
        tokens is not a way around the limit."""
        if self.api is None:
            return []
        outcome = await self._hit(self.api, "address:" + self.client_address(scope))
        if outcome.refused:
            raise _refusal([outcome], with_headers=True)
        return rate_headers([outcome])

    async def check_sign_in(self, request: Request[Any, Any, Any], email: str) -> None:
        """One sign-in attempt for `email` (ignoring case); 429 over the limit."""
        if self.login is not None:
            await self._check(request, self.login, email.strip().lower())

    async def check_sign_up(self, request: Request[Any, Any, Any]) -> None:
        """One sign-up from the client's address; 429 over the limit. Admins creating
        accounts are not counted."""
        user = request.scope.get("user")
        if self.signup is not None and not (user is not None and user.is_admin):
            await self._check(request, self.signup, self.client_address(request.scope))

    # --- the middleware ---------------------------------------------------------------------

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Counts every /api request against the caller's limit (429 over it) and adds the
        RateLimit headers of every check made for the request to its response."""
        if not self.enabled:
            return app
        api = self.api

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/api"):
                await app(scope, receive, send)
                return
            outcomes: list[Outcome] = []
            state: Any = scope
            state[_OUTCOMES] = outcomes
            if api is not None:
                store = self._store
                assert store is not None, "the app's lifespan opens the store"
                key = "api:" + self.caller_key(scope)
                # No Redis: a plain call, no coroutine on every request.
                hit = (
                    store.table.hit(key, API_WINDOW)
                    if store.local
                    else await store.hit(key, API_WINDOW)
                )
                outcome = Outcome(api, hit)
                outcomes.append(outcome)
                if hit.requests > api.limit:
                    # Answered here, through the outer middleware's `send` (request id,
                    # metrics, access log), as errors.handle_exception would answer it.
                    await _send_refusal(send, _refusal(outcomes, with_headers=True))
                    return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start" and outcomes:
                    start: Any = message
                    headers = start.get("headers")
                    if not isinstance(headers, list):
                        headers = start["headers"] = list(headers or ())
                    headers.extend(rate_headers(outcomes))
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware


# What the sign-in and sign-up handlers declare to get the app's RateLimits.
RateLimitsDep: TypeAlias = NamedDependency[RateLimits]


def _normal(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address: still the key a trusted proxy vouched for
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
