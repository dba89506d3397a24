"""Argon2id password hashes (pwdlib), computed in a thread pool: never on the event loop."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# OWASP's minimum for Argon2id (19 MiB, 2 iterations, 1 lane). A stored hash made with
# other parameters is re-made at the next successful sign-in (verify-and-update).
HASHER = PasswordHash((Argon2Hasher(memory_cost=19 * 1024, time_cost=2, parallelism=1),))


class Passwords:
    """Hash and verify in at most `threads` threads (argon2-cffi releases the GIL)."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rawpost-hash")
        # Unknown emails and password-less users are verified against this, so that a
        # wrong email costs the same time as a wrong password (no account enumeration).
        self._dummy = HASHER.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, HASHER.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, a re-made hash when the parameters changed, else None)."""

        def work() -> tuple[bool, str | None]:
            ok, updated = HASHER.verify_and_update(password, stored or self._dummy)
            return (ok and stored is not None), updated if stored is not None else None

        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
