"""Web blueprints: sign-in, dashboard, Magento handshake, JSON API, operator endpoints."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request

from cc_storeplugin.web.csrf import csrf
from cc_storeplugin.web.session import current_merchant


def register_web(app: Flask) -> None:
    """Attach every blueprint, CSRF protection and the error pages."""
    from cc_storeplugin.api.connections import bp as api_bp
    from cc_storeplugin.api.customers import bp as api_customers_bp
    from cc_storeplugin.api.openapi import bp as api_docs_bp
    from cc_storeplugin.api.segments import bp as api_segments_bp
    from cc_storeplugin.web.auth import bp as auth_bp
    from cc_storeplugin.web.customers import bp as customers_bp
    from cc_storeplugin.web.dashboard import bp as dashboard_bp
    from cc_storeplugin.web.health import bp as health_bp
    from cc_storeplugin.web.kibo_config import bp as kibo_config_bp
    from cc_storeplugin.web.kibo_events import bp as kibo_events_bp
    from cc_storeplugin.web.magento import bp as magento_bp

    for bp in (
        health_bp, auth_bp, dashboard_bp, customers_bp, magento_bp, kibo_config_bp, kibo_events_bp,
        api_bp, api_customers_bp, api_segments_bp, api_docs_bp,
    ):  # fmt: skip
        app.register_blueprint(bp)
    csrf.init_app(app)
    csrf.exempt("magento.callback")
    csrf.exempt("kibo_events.receive")

    @app.context_processor
    def _merchant() -> dict:
        return {"signed_in_merchant": current_merchant()}

    for status in (400, 403, 404, 409, 502):
        app.register_error_handler(status, _error_page)


def _error_page(err):
    """JSON errors for machines (API, callbacks), a readable page for people."""
    status = getattr(err, "code", 500)
    message = getattr(err, "description", str(err))
    if request.path.startswith("/api/") or request.endpoint == "magento.callback":
        return jsonify(error=message), status
    return render_template("message.html", title=_TITLES.get(status, "Error"), message=message), (
        status
    )


_TITLES = {
    400: "Bad request",
    403: "Not yours",
    404: "Not found",
    409: "Not ready",
    502: "Store error",
}
