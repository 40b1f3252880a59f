"""POST /kibo/events: Kibo's signed event delivery (spec kibo_constantcontact.md A1).

Order of checks, before anything is stored: body size (1 MB, 413), Date within 180 s and
``x-vol-hmac-sha256`` over Date + raw body with KIBO_SHARED_SECRET (401), JSON (400),
eventId / topic (400). Then one INSERT ... ON CONFLICT DO NOTHING and 200 at once (Kibo
waits 45 s and retries any other answer); no outbound call is made in the request.
application.* events are applied right after the insert (cheap DB writes only).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from cc_storeplugin.extensions import db
from cc_storeplugin.sandbox.kibo.signing import is_fresh, verify_kibo_hash
from cc_storeplugin.sync.kibo_events import (
    APPLICATION_TOPICS,
    apply_application_events,
    store_event,
)

MAX_BODY_BYTES = 1024 * 1024

bp = Blueprint("kibo_events", __name__, url_prefix="/kibo")
log = logging.getLogger(__name__)


def _error(message: str, status: int, **extra: str) -> tuple[Response, int]:
    return jsonify(error=message, **extra), status


def _read_body() -> bytes | None:
    """The raw body, or None when it is larger than MAX_BODY_BYTES (read no further)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return None
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    return None if len(raw) > MAX_BODY_BYTES else raw


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)[:64]


@bp.post("/events")
def receive():
    """Verify, store once, answer 200."""
    raw = _read_body()
    if raw is None:
        return _error(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    secret = current_app.config.get("KIBO_SHARED_SECRET")
    if not secret:
        return _error("Kibo event intake is not configured (KIBO_SHARED_SECRET)", 503)
    date = request.headers.get("Date", "")
    if not is_fresh(date):
        return _error("Date header missing or more than 180 s old", 401)
    if not verify_kibo_hash(secret, date, raw, request.headers.get("x-vol-hmac-sha256")):
        return _error("x-vol-hmac-sha256 signature missing or invalid", 401)
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return _error("body is not valid JSON", 400)
    if not isinstance(payload, dict):
        return _error("body must be a JSON object", 400)
    for field in ("eventId", "topic"):
        if not isinstance(payload.get(field), str) or not payload[field].strip():
            return _error(f"{field} is required", 400, field=field)
    tenant = _text(payload.get("tenantId")) or _text(request.headers.get("x-vol-tenant"))
    site = _text(request.headers.get("x-vol-site")) or _text(payload.get("siteId"))
    inserted = store_event(payload, tenant, site)
    topic = payload["topic"].strip().lower()
    if inserted and tenant and topic in APPLICATION_TOPICS:
        try:
            apply_application_events(tenant)
        except Exception:  # stored and queued: the flush job applies it later
            db.session.rollback()
            log.exception("applying %s for tenant %s failed; left queued", topic, tenant)
    return jsonify(status="accepted" if inserted else "duplicate"), 200
