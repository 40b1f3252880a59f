"""Request plumbing for /v3: bearer-token check, rate limits, scopes, bodies, cursors."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from . import errors
from .context import sandbox
from .oauth2 import lookup_access

SCOPE_BY_PREFIX = (
    ("/v3/emails", "campaign_data"),
    ("/v3/reports/email_reports", "campaign_data"),
    ("/v3/reports/summary_reports", "campaign_data"),
    ("/v3/account", "account_read"),
)


def account() -> str:
    """encoded_account_id of the token's account."""
    return g.cc_grant["account"]


def json_body() -> Any:
    """The JSON request body; 415 unless Content-Type is JSON, 400 if malformed."""
    if request.mimetype != "application/json":
        raise errors.APIError(
            415,
            errors.UNSUPPORTED_MEDIA,
            "Unsupported Media Type; the "
            "payload must be in JSON format, and Content-Type must be "
            "application/json",
        )
    try:
        return json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        raise errors.APIError(400, errors.BAD_REQUEST, f"Malformed JSON: {exc}") from exc


def int_arg(name: str, default: int, lo: int, hi: int, args: Any = None) -> int:
    """Bounded integer query parameter; 400 with CC's validation body when out of range."""
    raw = (request.args if args is None else args).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise errors.validation(f"{name} must be between {lo} and {hi}")
    return value


def encode_cursor(data: dict[str, Any]) -> str:
    """Opaque cursor carrying the original query and the position."""
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str) -> dict[str, Any]:
    """Inverse of encode_cursor; 400 if it was tampered with."""
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError as exc:
        raise errors.validation("cursor is not valid") from exc
    if not isinstance(data, dict):
        raise errors.validation("cursor is not valid")
    return data


def query_args() -> dict[str, str]:
    """The effective query: the one stored in ``cursor`` if present, else request.args."""
    if "cursor" in request.args:
        return dict(decode_cursor(request.args["cursor"]).get("q", {}))
    return dict(request.args)


def _guard() -> Response | None:
    path = request.path
    if not path.startswith("/v3/") and path != "/v3":
        return None
    sb = sandbox()
    from .activities import pump  # local import: activities imports api

    pump(sb)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return errors.unauthorized()
    grant = lookup_access(sb, header[7:].strip())
    if grant is None:
        return errors.unauthorized()
    verdict = sb.limiter.check(grant["client_id"])  # type: ignore[attr-defined]
    if verdict == "quota_exceeded":
        return errors.quota_exceeded()
    if verdict == "throttled":
        return errors.throttled()
    needed = "contact_data"
    for prefix, scope in SCOPE_BY_PREFIX:
        if path.startswith(prefix):
            needed = scope
    if needed not in grant["scopes"]:
        return errors.error_array(
            403, errors.FORBIDDEN, f"Forbidden request. You lack the necessary scopes ({needed})."
        )
    g.cc_grant = grant
    return None


def _api_error(exc: errors.APIError) -> Response:
    return errors.error_array(exc.status, exc.key, exc.message)


def _http_error(exc: HTTPException) -> Response:
    if not request.path.startswith("/v3"):
        return exc.get_response()
    key = errors.NOT_FOUND if exc.code == 404 else errors.BAD_REQUEST
    return errors.error_array(exc.code or 500, key, exc.description or exc.name)


def register(app: Flask) -> None:
    """Install the /v3 guard and the CC-shaped error handlers."""
    app.before_request(_guard)
    app.register_error_handler(errors.APIError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
