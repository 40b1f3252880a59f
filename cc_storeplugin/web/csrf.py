"""CSRF protection for the merchant's forms: a per-session token checked on every unsafe method.

Server-to-server endpoints (Magento callback, Kibo events) are exempt; they authenticate by
their own means. JSON API calls are safe when they carry ``Content-Type: application/json``
(browsers cannot send that cross-site without a CORS preflight, which we never allow).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class CSRF:
    """Flask extension: ``csrf_token()`` in templates, checks in ``before_request``."""

    def __init__(self) -> None:
        self._exempt: set[str] = set()

    def init_app(self, app: Flask) -> None:
        app.jinja_env.globals["csrf_token"] = token
        app.before_request(self._protect)

    def exempt(self, endpoint: str) -> None:
        """Skip the check for an endpoint that authenticates its caller itself."""
        self._exempt.add(endpoint)

    def _protect(self) -> None:
        if request.method not in UNSAFE or request.endpoint in self._exempt:
            return
        if (request.blueprint or "").startswith("api"):
            # A cross-site page can only send a form-like POST without a CORS preflight
            # (which this app never grants): a JSON body, or PUT / DELETE, is the API's guard.
            if request.is_json or request.method != "POST":
                return
            abort(400, description="send a JSON body (Content-Type: application/json)")
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        expected = session.get("csrf_token", "")
        if not expected or not hmac.compare_digest(sent, expected):
            abort(
                400,
                description="The form expired or came from another site (csrf_token). "
                "Reload the page and try again.",
            )


def token() -> str:
    """The session's CSRF token, created on first use."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


csrf = CSRF()
