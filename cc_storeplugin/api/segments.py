"""Custom segments of a connection: CRUD and preview (JSON API).

Built-in segments are listed read-only. Every route goes through ``owned_connection`` and
reads segments by (connection, id), so another merchant's connection or segment is a 404.
Bad input is a 400 ``{"error", "fields": {path: [messages]}}`` and changes nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import Schema, ValidationError, fields

from cc_storeplugin.segments import custom
from cc_storeplugin.segments.custom_rules import PreviewIn, SegmentIn, flatten_errors
from cc_storeplugin.web.session import current_merchant, owned_connection

bp = Blueprint("api_segments", __name__, url_prefix="/api/v1")


class SegmentOut(Schema):
    id = fields.Integer()
    key = fields.String()
    kind = fields.String()
    name = fields.String()
    list_name = fields.String()
    read_only = fields.Boolean()
    rule = fields.Raw(allow_none=True)
    cc_list_id = fields.String(allow_none=True)
    members = fields.Integer()
    evaluated_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class ContactSample(Schema):
    id = fields.Integer()
    email = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    consent_state = fields.String()
    purchase_count = fields.Integer()
    total_spent = fields.Decimal(as_string=True, places=2)
    last_purchase_at = fields.DateTime(allow_none=True)


class PreviewOut(Schema):
    now = fields.DateTime()
    count = fields.Integer()
    unsubscribed = fields.Integer()
    sample = fields.List(fields.Nested(ContactSample))


@bp.errorhandler(404)
def _not_found(err: Any):
    return jsonify(error=getattr(err, "description", "not found")), 404


@bp.before_request
def _guard():
    """JSON 401 for a signed-out caller (no redirect); web/csrf.py requires JSON bodies."""
    if current_merchant() is None:
        return jsonify(error="sign in with Constant Contact first"), 401
    return None


def _invalid(err: ValidationError):
    return jsonify(error="invalid segment", fields=flatten_errors(err.messages)), 400


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _segment_or_404(connection_id: int, segment_id: int):
    conn = owned_connection(connection_id)
    seg = custom.segment_of(conn.id, segment_id)
    if seg is None:
        return conn, None, (jsonify(error=f"no segment {segment_id}"), 404)
    return conn, seg, None


def _read_only():
    return jsonify(error="built-in segments are read-only"), 403


@bp.get("/connections/<int:connection_id>/segments")
def list_segments(connection_id: int):
    """Built-in (read-only) and custom segments with their member counts."""
    conn = owned_connection(connection_id)
    return jsonify(segments=SegmentOut(many=True).dump(custom.segments_of(conn.id)))


@bp.post("/connections/<int:connection_id>/segments")
def create_segment(connection_id: int):
    """Save a custom segment → 201; its CC list is created and filled by the sync job."""
    conn = owned_connection(connection_id)
    try:
        data = SegmentIn().load(_body())
        seg = custom.create_segment(conn, data)
    except ValidationError as err:
        return _invalid(err)
    except custom.SegmentFieldError as err:
        return jsonify(error="invalid segment", fields=err.fields), 400
    run_id = custom.enqueue_segment_sync(conn.id)
    return jsonify({**SegmentOut().dump(custom.describe(seg)), "sync_run_id": run_id}), 201


@bp.get("/connections/<int:connection_id>/segments/<int:segment_id>")
def get_segment(connection_id: int, segment_id: int):
    _, seg, missing = _segment_or_404(connection_id, segment_id)
    if missing:
        return missing
    return jsonify(SegmentOut().dump(custom.describe(seg)))


@bp.put("/connections/<int:connection_id>/segments/<int:segment_id>")
def update_segment(connection_id: int, segment_id: int):
    """Change a custom segment's name and/or rule (each optional; at least one)."""
    conn, seg, missing = _segment_or_404(connection_id, segment_id)
    if missing:
        return missing
    if seg.kind != "custom":
        return _read_only()
    body = _body()
    try:
        data = SegmentIn(partial=True).load(body)
        if not data:
            raise ValidationError({"_schema": ["send a name, a rule or both"]})
        seg = custom.update_segment(conn, seg, data)
    except ValidationError as err:
        return _invalid(err)
    except custom.SegmentFieldError as err:
        return jsonify(error="invalid segment", fields=err.fields), 400
    run_id = custom.enqueue_segment_sync(conn.id)
    return jsonify({**SegmentOut().dump(custom.describe(seg)), "sync_run_id": run_id})


@bp.delete("/connections/<int:connection_id>/segments/<int:segment_id>")
def delete_segment(connection_id: int, segment_id: int):
    """Delete a custom segment and its memberships; the CC list stays (the response says so)."""
    _, seg, missing = _segment_or_404(connection_id, segment_id)
    if missing:
        return missing
    if seg.kind != "custom":
        return _read_only()
    return jsonify(custom.delete_segment(seg))


@bp.post("/connections/<int:connection_id>/segments/preview")
def preview_segment(connection_id: int):
    """Count and a sample of 10 contacts a rule would hold now; nothing is saved."""
    conn = owned_connection(connection_id)
    try:
        data = PreviewIn().load(_body())
    except ValidationError as err:
        return _invalid(err)
    return jsonify(PreviewOut().dump(custom.preview(conn.id, data["rule"])))


_ID = {"in": "path", "required": True, "schema": {"type": "integer"}}
_SEGMENT = {"$ref": "#/components/schemas/Segment"}
_RULE_DOC = (
    'A group {"all": [...]} (AND) or {"any": [...]} (OR) of groups and conditions '
    '{"field", "op", "value"}; at most 4 groups deep, 20 items a group, 50 conditions. '
    "Fields and ops: purchase_count, total_spent, average_order_value: eq ne gt gte lt lte "
    "between ([low, high]); first_purchase_at, last_purchase_at: within / before / after "
    '({"days_ago": n} or an ISO date), between ([date, date]); purchased_sku, '
    "purchased_category: in / not_in (list); customer_group, consent_state: eq ne in not_in."
)
_RULE = {"type": "object", "description": _RULE_DOC}
_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["name", "rule"],
                "properties": {"name": {"type": "string", "maxLength": 100}, "rule": _RULE},
            }
        }
    }
}
_ERRORS = {
    "400": {"description": "invalid field: {error, fields: {path: [messages]}}"},
    "401": {"description": "not signed in"},
    "404": {"description": "not yours or not there"},
}
_ONE = {
    "200": {"description": "the segment", "content": {"application/json": {"schema": _SEGMENT}}}
}

OPENAPI_PATHS: dict = {
    "/api/v1/connections/{id}/segments": {
        "parameters": [{"name": "id", **_ID}],
        "get": {
            "summary": "Built-in (read-only) and custom segments with member counts",
            "responses": {"200": {"description": "segments"}, **_ERRORS},
        },
        "post": {
            "summary": "Create a custom segment; its CC list '<Platform> – <name>' follows",
            "requestBody": _BODY,
            "responses": {"201": _ONE["200"], **_ERRORS},
        },
    },
    "/api/v1/connections/{id}/segments/{sid}": {
        "parameters": [{"name": "id", **_ID}, {"name": "sid", **_ID}],
        "get": {"summary": "A segment", "responses": {**_ONE, **_ERRORS}},
        "put": {
            "summary": "Change a custom segment's name and/or rule",
            "requestBody": _BODY,
            "responses": {**_ONE, **_ERRORS, "403": {"description": "built-in: read-only"}},
        },
        "delete": {
            "summary": "Delete a custom segment (its CC list is left in Constant Contact)",
            "responses": {
                "200": {"description": "deleted"},
                **_ERRORS,
                "403": {"description": "built-in: read-only"},
            },
        },
    },
    "/api/v1/connections/{id}/segments/preview": {
        "parameters": [{"name": "id", **_ID}],
        "post": {
            "summary": "Count and a sample of 10 contacts for a rule, nothing saved",
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["rule"],
                            "properties": {"rule": _RULE},
                        }
                    }
                }
            },
            "responses": {"200": {"description": "count, unsubscribed, sample"}, **_ERRORS},
        },
    },
}
