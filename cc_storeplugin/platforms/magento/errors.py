"""Errors of the Magento client, one class per thing a caller does differently.

Token endpoints answer form-encoded ``oauth_problem=...``; REST answers JSON
``{"message": "... %1 ...", "parameters": [...] | {...}}`` (specs/magento.md §1.5, §5 item 21).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

_PLACEHOLDER = re.compile(r"%(\w+)")


class MagentoError(Exception):
    """Any failed Magento call: ``status`` (HTTP, 0 when none) and a readable ``message``."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class MagentoUnauthorized(MagentoError):
    """401: the integration was revoked, deleted or reauthorized, or the signature is wrong."""

    def __init__(self, message: str, status: int = 401, problem: str | None = None) -> None:
        super().__init__(message, status)
        self.problem = problem


class MagentoProblem(MagentoError):
    """A token endpoint refused the exchange with ``oauth_problem=<problem>``."""

    def __init__(self, problem: str, status: int) -> None:
        super().__init__(problem, status)
        self.problem = problem


class MagentoConsumerExpired(MagentoProblem):
    """The request-token call came after Magento's 300 s consumer window (§1.7)."""


class MagentoUnavailable(MagentoError):
    """Retries exhausted on connection errors, timeouts, 429 or 5xx."""


def render_message(message: str, parameters: Any) -> str:
    """Substitute ``%1``-style (list) or ``%name``-style (dict) placeholders as Magento's Phrase."""
    if isinstance(parameters, list):
        lookup = {str(i): v for i, v in enumerate(parameters, 1)}
    elif isinstance(parameters, dict):
        lookup = {str(k): v for k, v in parameters.items()}
    else:
        return message

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        return str(lookup[key]) if key in lookup else m.group(0)

    return _PLACEHOLDER.sub(sub, message)


def rest_error(status: int, body: bytes | str) -> MagentoError:
    """The exception for a REST error reply (JSON body, or anything else a proxy sends)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message = text.strip()[:300] or f"HTTP {status}"
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        message = render_message(data["message"], data.get("parameters"))
    if status == 401:
        return MagentoUnauthorized(message, status)
    if status == 429 or status >= 500:
        return MagentoUnavailable(message, status)
    return MagentoError(message, status)


def token_error(status: int, body: bytes | str) -> MagentoError:
    """The exception for a token-endpoint error reply (``oauth_problem=...``, form-encoded)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    fields = dict(parse_qsl(text.strip(), keep_blank_values=True))
    problem = fields.get("oauth_problem")
    if not problem:
        return rest_error(status, text)
    if problem == "internal_error" and fields.get("message"):
        problem = f"internal_error: {fields['message']}"
    low = problem.lower()
    if "consumer" in low and "expired" in low:
        return MagentoConsumerExpired(problem, status)
    if status == 401:
        return MagentoUnauthorized(problem, status, problem=problem)
    if status >= 500:
        return MagentoUnavailable(problem, status)
    return MagentoProblem(problem, status)
