"""Errors of the Kibo client, one class per thing a caller does differently.

Kibo answers errors with the SDK ``ApiException`` body: ``{"message", "applicationName",
"errorCode", "additionalErrorData", ...}`` (specs/kibo_constantcontact.md A2).
"""

from __future__ import annotations

import json


class KiboError(Exception):
    """Any failed Kibo call: ``status`` (HTTP, 0 when none), ``code`` (Kibo's errorCode)."""

    def __init__(self, message: str, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class KiboUnauthorized(KiboError):
    """401: bad app credentials, or a ticket Kibo no longer accepts after one re-auth."""


class KiboUnavailable(KiboError):
    """Retries exhausted on connection errors, timeouts, 429 or 5xx."""


def api_error(status: int, body: bytes | str) -> KiboError:
    """The exception for an error reply (Kibo's JSON body, or whatever a proxy sends)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message, code = text.strip()[:300] or f"HTTP {status}", None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("message"), str) and data["message"]:
            message = data["message"]
        if isinstance(data.get("errorCode"), str):
            code = data["errorCode"]
    if status == 401:
        return KiboUnauthorized(message, status, code)
    if status == 429 or status >= 500:
        return KiboUnavailable(message, status, code)
    return KiboError(message, status, code)
