"""Requests the fault tests send to a running `rawpost serve`, and what they count as
unavailable."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.service import Sample, timed_request


def is_unavailable(sample: Sample) -> bool:
    """A 503 that tells the client when to come back."""
    return sample.status == 503 and (sample.retry_after or "").isdigit()


def in_flight(method: str, url: str, **kwargs: Any) -> tuple[Sample, httpx.Response | None]:
    """One request on its own connection (as a separate client would send it)."""
    with httpx.Client(timeout=10) as client:
        return timed_request(client, method, url, **kwargs)
