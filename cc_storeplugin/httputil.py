"""Small HTTP helpers shared by the clients of outside systems."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests


def retry_after_s(resp: requests.Response) -> float:
    """Seconds from a ``Retry-After`` header (delta or HTTP date); 0 when absent or bad."""
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
