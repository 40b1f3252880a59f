"""Errors of the Constant Contact client, one class per thing a caller does differently.

CC answers most errors with an array ``[{"error_key", "error_message"}]`` and 401/429 with a
single object (spec B7); the OAuth2 server answers ``{"error", "error_description"}`` (B1).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any


class CCError(Exception):
    """A failed CC call: HTTP ``status`` (0 when none), the first ``error_key`` and message,
    and every ``{error_key, error_message}`` item in ``errors``."""

    def __init__(
        self,
        status: int,
        error_key: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_key = error_key
        self.message = message
        self.errors = (
            errors if errors is not None else [{"error_key": error_key, "error_message": message}]
        )

    @property
    def blocks_run(self) -> bool:
        """True when no further call can succeed now (auth, quota, outage, 403): pause the
        merchant's run instead of quarantining the record at hand (DESIGN invariant 5)."""
        return type(self) is not CCError or self.status in (401, 403, 429) or self.status >= 500

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status else ""
        return f"{self.message} ({where}{self.error_key})"

    @classmethod
    def from_response(cls, status: int, body: bytes | str | None) -> CCError:
        """The error for a response body of either shape, as the subclass its key calls for."""
        items = parse_error_items(body, status)
        first = items[0]
        key, message = first["error_key"], first["error_message"]
        if status == 429 and key == "quota_exceeded":
            return QuotaExceeded(message, items)
        if status == 429:
            return Throttled(message, items)
        return CCError(status, key, message, items)


def parse_error_items(body: bytes | str | None, status: int) -> list[dict[str, Any]]:
    """``[{error_key, error_message}, ...]`` from an array, a single object or anything else."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    raw = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    items = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        key = item.get("error_key") or item.get("error") or item.get("errorCode")
        message = (
            item.get("error_message")
            or item.get("error_description")
            or item.get("errorSummary")
            or key
        )
        if key or message:
            items.append({"error_key": str(key or f"http.{status}"), "error_message": str(message)})
    if not items:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        items = [{"error_key": f"http.{status}", "error_message": text[:200] or f"HTTP {status}"}]
    return items


class Throttled(CCError):
    """429 ``throttled``: over 4 requests/second for the app key; retried after ~1 s."""

    def __init__(self, message: str = "Too Many Requests", errors: list | None = None) -> None:
        super().__init__(429, "throttled", message, errors)


class QuotaExceeded(CCError):
    """429 ``quota_exceeded``: the app key's daily quota is spent; stop until 00:00 UTC."""

    def __init__(self, message: str = "Limit Exceeded", errors: list | None = None) -> None:
        super().__init__(429, "quota_exceeded", message, errors)
        self.resets_at = next_utc_midnight()


class QuotaExhausted(QuotaExceeded):
    """Our own daily counter says the quota is used up, so no request was sent."""

    def __init__(self, used: int, quota: int) -> None:
        super().__init__(f"daily quota used up ({used} of {quota} requests; resets 00:00 UTC)")
        self.used = used
        self.quota = quota


class CCUnavailable(CCError):
    """CC kept failing (connection errors, timeouts, 5xx or throttling) after every retry."""

    def __init__(self, message: str, status: int = 0, errors: list | None = None) -> None:
        super().__init__(status, "unavailable", message, errors)


class ReauthorizationRequired(CCError):
    """The merchant's authorization is revoked or lapsed: they must sign in to CC again."""

    def __init__(self, merchant_id: int | None, reason: str = "authorization revoked") -> None:
        who = f"merchant {merchant_id}" if merchant_id is not None else "this token"
        super().__init__(401, "reauthorization_required", f"{who}: {reason}; reconnect to CC")
        self.merchant_id = merchant_id


class AuthorizationFailed(CCError):
    """The OAuth2 server refused a code exchange (``error`` and ``description`` from CC)."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(status, error, description or error)
        self.error = error
        self.description = description

    def __str__(self) -> str:
        return f"{self.description} ({self.error})" if self.description else self.error


def next_utc_midnight(now: datetime | None = None) -> datetime:
    """When CC's daily quota resets (00:00 UTC, spec B6)."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
