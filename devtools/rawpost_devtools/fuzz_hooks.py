"""schemathesis hooks for `rawpost fuzz` (loaded through SCHEMATHESIS_HOOKS).

Each is for a place where the fuzzer's model of an API does not fit rawpost's contract;
none hides a status the fuzzer may check.

The fuzzer signs in as its own accounts for the whole run. A fuzzed request that deletes
one of them, or changes its email or password, would lock the fuzzer out of the account
it needs for every later case, so those cases (and only those) are not sent. Accounts the
fuzzer creates itself are deleted and changed like any other.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from typing import Any

import hypothesis
import schemathesis
from schemathesis.openapi.checks import UseAfterFree

# Hypothesis's target phase (schemathesis steers fuzzing toward accepted inputs with it)
# crashed inside Hypothesis 6.170 in one of our runs (IndexError in its optimiser's
# hill_climb), which schemathesis reports as an error: generate without it.
hypothesis.settings.register_profile(
    "rawpost-fuzz",
    phases=[phase for phase in hypothesis.Phase if phase is not hypothesis.Phase.target],
)
hypothesis.settings.load_profile("rawpost-fuzz")

# Ids of the fuzzer's own accounts, comma-separated (set by `rawpost fuzz`).
KEEP = frozenset(filter(None, os.environ.get("RAWPOST_FUZZ_KEEP", "").split(",")))
LOCKOUT_FIELDS = ("email", "password")


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """False for a case that would lock the fuzzer out of one of its accounts."""
    if case.method.upper() not in ("DELETE", "PATCH"):
        return True
    if str((case.path_parameters or {}).get("user_id", "")).lower() not in KEEP:
        return True
    if case.method.upper() == "DELETE":
        return False
    body = case.body
    return not (isinstance(body, dict) and any(field in body for field in LOCKOUT_FIELDS))


# A deleted user or post comes back with `POST .../restore`. schemathesis counts only a
# POST to the deleted path itself as bringing a resource back, so a read after delete,
# restore would be reported as a use after free. The last successful change of each
# resource is kept here, and that report (only that one) is dropped when it was a restore.
_LAST_CHANGE: dict[str, str] = {}
_LOCK = threading.Lock()
RESTORE = "/restore"


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if not 200 <= response.status_code < 300:
        return
    path, method = case.formatted_path, case.method.upper()
    with _LOCK:
        if method == "DELETE":
            _LAST_CHANGE[path] = "deleted"
        elif method == "POST" and path.endswith(RESTORE):
            _LAST_CHANGE[path.removesuffix(RESTORE)] = "restored"


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if not isinstance(failure, UseAfterFree):
        return True
    _, _, path = failure.free.partition(" ")
    with _LOCK:
        return _LAST_CHANGE.get(path) != "restored"


# An Idempotency-Key is a client's promise that two requests are one: sent again, the
# first answer is replayed, even for a post deleted since, which schemathesis reports as
# "created resource not found". The fuzzer reuses the few values it generates, so each
# request that carries a valid key gets a fresh one (replays: tests/integration).
IDEMPOTENCY_KEY = "Idempotency-Key"
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,200}")


# An If-Match the fuzzer makes up names a version the row never had: every such write is
# a 412 (tested in tests/integration/test_conditional_requests.py) and the write behind
# it goes untested. Such values are left out; `*`, and values past the documented
# 2,000 characters (a 400), are sent.
IF_MATCH = "If-Match"
IF_MATCH_MAX = 2000


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    headers = case.headers or {}
    key = headers.get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        case.headers[IDEMPOTENCY_KEY] = uuid.uuid4().hex
    tag = headers.get(IF_MATCH)
    if isinstance(tag, str) and tag.strip() != "*" and len(tag) <= IF_MATCH_MAX:
        del case.headers[IF_MATCH]
