"""HTTP control endpoints of the event sender (see :mod:`.events` for the list)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .common import state

bp = Blueprint("kibo_events", __name__)


def _bad(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify({"message": message}), status


@bp.get("/_sandbox/endpoint")
def get_endpoint() -> Response:
    return jsonify({"url": state().events.endpoint})


@bp.post("/_sandbox/endpoint")
def set_endpoint() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not (body.get("url") is None or isinstance(body["url"], str)):
        return _bad('JSON {"url": "http://..."} expected')
    state().events.endpoint = body.get("url") or None
    return jsonify({"url": state().events.endpoint})


def _emit_one(spec: Any) -> list[dict[str, Any]]:
    if not isinstance(spec, dict) or not spec.get("topic") or spec.get("entityId") in (None, ""):
        raise ValueError("each event needs topic and entityId")
    return state().events.emit(
        str(spec["topic"]),
        str(spec["entityId"]),
        site_id=spec.get("siteId"),
        extended_properties=spec.get("extendedProperties"),
        is_test=bool(spec.get("isTest", False)),
        correlation_id=spec.get("correlationId"),
        stale_date_s=float(spec.get("staleDateSeconds") or 0),
        bad_signature=bool(spec.get("badSignature", False)),
        hold_s=float(spec.get("holdSeconds") or 0),
    )


@bp.post("/_sandbox/events")
def post_events() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    if not state().events.endpoint:
        return _bad("set the event endpoint first (POST /_sandbox/endpoint)", 409)
    specs = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    if not isinstance(specs, list):
        return _bad("events must be a list")
    made: list[dict[str, Any]] = []
    try:
        for spec in specs:
            made.extend(_emit_one(spec))
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))
    return jsonify({"deliveries": made}), 202


@bp.get("/_sandbox/deliveries")
def list_deliveries() -> Response:
    items = state().events.deliveries()
    for key, attr in (("topic", "topic"), ("status", "status")):
        if request.args.get(key):
            items = [d for d in items if d[attr] == request.args[key]]
    return jsonify({"deliveries": items})


@bp.get("/_sandbox/deliveries/<int:delivery_id>")
def get_delivery(delivery_id: int) -> Response | tuple[Response, int]:
    found = state().events.delivery(delivery_id)
    return jsonify(found) if found else _bad(f"no delivery {delivery_id}", 404)


@bp.post("/_sandbox/deliveries/<int:delivery_id>/replay")
def replay_delivery(delivery_id: int) -> Response | tuple[Response, int]:
    body = request.get_json(silent=True) or {}
    stale = body.get("staleDateSeconds")
    bad = body.get("badSignature")
    made = state().events.replay(
        delivery_id,
        keep_date=bool(body.get("keepDate", False)),
        stale_date_s=None if stale is None else float(stale),
        bad_signature=None if bad is None else bool(bad),
    )
    return (jsonify(made), 202) if made else _bad(f"no delivery {delivery_id}", 404)


@bp.post("/_sandbox/events/wait")
def wait_events() -> Response:
    body = request.get_json(silent=True) or {}
    return jsonify({"idle": state().events.wait_idle(float(body.get("timeout", 10)))})


@bp.post("/_sandbox/retry-policy")
def retry_policy() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True) or {}
    sender = state().events
    try:
        if "delays" in body:
            sender.retry_delays_s = tuple(float(x) for x in body["delays"]) or (60.0,)
        if "maxAttempts" in body:
            sender.max_attempts = int(body["maxAttempts"])
        if "timeoutSeconds" in body:
            sender.timeout_s = float(body["timeoutSeconds"])
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return jsonify(
        {
            "delays": list(sender.retry_delays_s),
            "maxAttempts": sender.max_attempts,
            "timeoutSeconds": sender.timeout_s,
        }
    )


def register(app: Flask) -> None:
    app.register_blueprint(bp)
