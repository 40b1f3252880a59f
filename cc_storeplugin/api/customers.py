"""Customers of a connection and their segment transition log (JSON API).

GET /api/v1/connections/<id>/customers?email=&page=&per_page= searches the mirror by
normalized email prefix, a bounded page at a time; GET …/customers/<cid> gives one contact's
mirror facts, current segments and transition log (newest first). Both are scoped to the
signed-in merchant's connection: anyone else's connection or customer is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Segment, SegmentMembership, normalize_email
from cc_storeplugin.segments.evaluate import transitions_for
from cc_storeplugin.web.session import login_required, owned_connection

bp = Blueprint("api_customers", __name__, url_prefix="/api/v1")

MAX_PER_PAGE = 100


class CustomersQuery(Schema):
    """Query string of GET /connections/<id>/customers."""

    email = fields.String(load_default="", validate=validate.Length(max=320))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class CustomerSummaryOut(Schema):
    id = fields.Integer()
    email = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    purchases = fields.Integer(attribute="purchase_count")
    total_spent = fields.Decimal(as_string=True)
    last_purchase_at = fields.DateTime(allow_none=True)
    consent_state = fields.String()


class CustomerPageOut(Schema):
    customers = fields.List(fields.Nested(CustomerSummaryOut))
    page = fields.Integer()
    per_page = fields.Integer()
    has_more = fields.Boolean()


class SegmentOut(Schema):
    key = fields.String()
    name = fields.String()
    kind = fields.String()
    since = fields.DateTime()


class TransitionOut(Schema):
    segment = fields.String(attribute="segment_name")
    segment_key = fields.String()
    action = fields.String()
    reason = fields.String()
    occurred_at = fields.DateTime()
    run_id = fields.Integer(attribute="sync_run_id", allow_none=True)


class CustomerOut(CustomerSummaryOut):
    is_guest = fields.Boolean()
    customer_group = fields.String(allow_none=True)
    first_purchase_at = fields.DateTime(allow_none=True)
    consent_updated_at = fields.DateTime(allow_none=True)
    segments = fields.List(fields.Nested(SegmentOut))
    transitions = fields.List(fields.Nested(TransitionOut))


def search_customers(
    connection_id: int, email_prefix: str, page: int, per_page: int
) -> tuple[list[Customer], bool]:
    """One page of the connection's customers whose normalized email starts with the prefix,
    by email; plus whether another page follows (one extra row read, no COUNT over all)."""
    query = select(Customer).where(Customer.connection_id == connection_id)
    prefix = normalize_email(email_prefix)
    if prefix:
        query = query.where(Customer.email.startswith(prefix, autoescape=True))
    rows = db.session.scalars(
        query.order_by(Customer.email, Customer.id)
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    ).all()
    return list(rows[:per_page]), len(rows) > per_page


def customer_of(connection_id: int, customer_id: int) -> Customer:
    """The connection's customer, or 404 (a customer of another connection is not found)."""
    customer = db.session.scalar(
        select(Customer).where(Customer.id == customer_id, Customer.connection_id == connection_id)
    )
    if customer is None:
        abort(404, description=f"no customer {customer_id}")
    return customer


def current_segments(customer_id: int) -> list[dict[str, Any]]:
    """The segments the customer is in now, in the connection's segment order."""
    rows = db.session.execute(
        select(Segment.key, Segment.name, Segment.kind, SegmentMembership.since)
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(SegmentMembership.customer_id == customer_id)
        .order_by(Segment.id)
    )
    return [r._asdict() for r in rows]


def customer_detail(connection_id: int, customer: Customer) -> dict[str, Any]:
    """Mirror facts, current segments and the transition log newest first."""
    log = transitions_for(customer.id, connection_id=connection_id)
    facts = (
        "id", "email", "first_name", "last_name", "is_guest", "customer_group", "purchase_count",
        "total_spent", "first_purchase_at", "last_purchase_at", "consent_state",
        "consent_updated_at",
    )  # fmt: skip
    return {
        **{name: getattr(customer, name) for name in facts},
        "segments": current_segments(customer.id),
        "transitions": list(reversed(log)),
    }


@bp.get("/connections/<int:connection_id>/customers")
@login_required
def list_customers(connection_id: int):
    """Search the connection's customers by email prefix, one bounded page."""
    conn = owned_connection(connection_id)
    try:
        args = CustomersQuery().load(request.args)
    except ValidationError as err:
        return jsonify(error="invalid query", fields=err.messages), 400
    rows, more = search_customers(conn.id, args["email"], args["page"], args["per_page"])
    body = {"customers": rows, "page": args["page"], "per_page": args["per_page"]}
    return jsonify(CustomerPageOut().dump({**body, "has_more": more}))


@bp.get("/connections/<int:connection_id>/customers/<int:customer_id>")
@login_required
def get_customer(connection_id: int, customer_id: int):
    """One customer: facts, current segments, transition log (newest first)."""
    conn = owned_connection(connection_id)
    customer = customer_of(conn.id, customer_id)
    return jsonify(CustomerOut().dump(customer_detail(conn.id, customer)))


_ID = {"in": "path", "required": True, "schema": {"type": "integer"}}
_NOT_FOUND = {"description": "not your connection, or not its customer"}
_TRANSITION = {
    "type": "object",
    "properties": {
        "segment": {"type": "string"},
        "segment_key": {"type": "string"},
        "action": {"type": "string", "enum": ["entered", "left"]},
        "reason": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "run_id": {"type": "integer", "nullable": True},
    },
}
_SUMMARY_PROPS = {
    "id": {"type": "integer"},
    "email": {"type": "string"},
    "first_name": {"type": "string", "nullable": True},
    "last_name": {"type": "string", "nullable": True},
    "purchases": {"type": "integer"},
    "total_spent": {"type": "string"},
    "last_purchase_at": {"type": "string", "format": "date-time", "nullable": True},
    "consent_state": {"type": "string", "enum": ["subscribed", "unsubscribed", "not_set"]},
}

OPENAPI_PATHS: dict = {
    "/api/v1/connections/{id}/customers": {
        "get": {
            "summary": "Search a connection's customers by email prefix (paged)",
            "parameters": [
                {"name": "id", **_ID},
                {"name": "email", "in": "query", "schema": {"type": "string"}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                },
            ],
            "responses": {
                "200": {
                    "description": "a page of customers, by email",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "customers": {
                                        "type": "array",
                                        "items": {"type": "object", "properties": _SUMMARY_PROPS},
                                    },
                                    "page": {"type": "integer"},
                                    "per_page": {"type": "integer"},
                                    "has_more": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "invalid query: {error, fields}"},
                "401": {"description": "not signed in"},
                "404": _NOT_FOUND,
            },
        }
    },
    "/api/v1/connections/{id}/customers/{customer_id}": {
        "get": {
            "summary": "A customer: mirror facts, current segments, transition log newest first",
            "parameters": [{"name": "id", **_ID}, {"name": "customer_id", **_ID}],
            "responses": {
                "200": {
                    "description": "the customer",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    **_SUMMARY_PROPS,
                                    "is_guest": {"type": "boolean"},
                                    "customer_group": {"type": "string", "nullable": True},
                                    "first_purchase_at": {
                                        "type": "string",
                                        "format": "date-time",
                                        "nullable": True,
                                    },
                                    "consent_updated_at": {
                                        "type": "string",
                                        "format": "date-time",
                                        "nullable": True,
                                    },
                                    "segments": {"type": "array", "items": {"type": "object"}},
                                    "transitions": {"type": "array", "items": _TRANSITION},
                                },
                            }
                        }
                    },
                },
                "401": {"description": "not signed in"},
                "404": _NOT_FOUND,
            },
        }
    },
}
