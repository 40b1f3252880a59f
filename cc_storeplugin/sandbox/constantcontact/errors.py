"""CC v3 error bodies: an array of {error_key, error_message} except 401 and 429 (one object)."""

from __future__ import annotations

import json

from flask import Response

VALIDATION = "contacts.api.validation.error"
CONFLICT = "contacts.api.conflict"
NOT_FOUND = "http.status.not_found"
BAD_REQUEST = "http.status.bad_request"
UNSUPPORTED_MEDIA = "http.status.unsupported_media_type"
FORBIDDEN = "http.status.forbidden"
SERVER_ERROR = "http.status.internal_server_error"
UNAVAILABLE = "http.status.service_unavailable"


class APIError(Exception):
    """Raised inside a handler; rendered as CC's array error body with ``status``."""

    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.key = key
        self.message = message


def _json(body: object, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error_array(status: int, key: str, message: str) -> Response:
    """``[{"error_key": key, "error_message": message}]`` with ``status`` (APIErrorSchema)."""
    return _json([{"error_key": key, "error_message": message}], status)


def unauthorized() -> Response:
    """The single-object 401 body (AuthorizationErrorSchema)."""
    return _json({"error_key": "unauthorized", "error_message": "Unauthorized"}, 401)


def throttled() -> Response:
    """Per-second throttle 429: a single object, no rate-limit headers (spec B6)."""
    return _json({"error_key": "throttled", "error_message": "Too Many Requests"}, 429)


def quota_exceeded() -> Response:
    """Daily quota 429: a single object, no rate-limit headers (spec B6)."""
    return _json({"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}, 429)


def not_found(message: str = "The requested resource was not found.") -> APIError:
    """404 error for an unknown id."""
    return APIError(404, NOT_FOUND, message)


def validation(message: str) -> APIError:
    """400 data-validation error."""
    return APIError(400, VALIDATION, message)


def injected(status: int) -> Response:
    """Body for a fault injected by instrument(): CC's throttle object or a 5xx array."""
    if status == 429:
        return throttled()
    if status == 503:
        return error_array(503, UNAVAILABLE, "Our internal service is temporarily unavailable.")
    return error_array(status, SERVER_ERROR, "There was a problem with our internal service.")
