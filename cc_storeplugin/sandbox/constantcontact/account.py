"""/v3/account/summary and /v3/account/emails (verified from-addresses) from the settings."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from . import errors
from .api import account
from .context import sandbox

SUMMARY_KEYS = (
    "contact_email",
    "contact_phone",
    "country_code",
    "encoded_account_id",
    "first_name",
    "last_name",
    "organization_name",
    "organization_phone",
    "state_code",
    "time_zone_id",
    "website",
)
CONFIRM = {
    "C": "CONFIRMED",
    "CONFIRMED": "CONFIRMED",
    "U": "UNCONFIRMED",
    "UNCONFIRMED": "UNCONFIRMED",
}
ROLES = {"C": "CONTACT", "B": "BILLING", "J": "JOURNALING", "R": "REPLY_TO", "O": "OTHER"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def summary() -> Response:
    """GET /v3/account/summary?extra_fields=physical_address"""
    acc = sandbox().account(account())
    body = {k: acc[k] for k in SUMMARY_KEYS if acc.get(k) is not None}
    extra = request.args.get("extra_fields", "")
    if "physical_address" in extra:
        body["physical_address"] = acc.get("physical_address") or {
            "address_line1": "1 Sandbox Way",
            "city": "Waltham",
            "state_code": "MA",
            "postal_code": "02451",
            "country_code": "US",
        }
    return _json(body)


def emails() -> Response:
    """GET /v3/account/emails?confirm_status=&role_code=&email_address="""
    acc = sandbox().account(account())
    status = request.args.get("confirm_status")
    if status is not None and status not in CONFIRM:
        raise errors.validation("confirm_status does not have a valid value")
    role = request.args.get("role_code")
    role = ROLES.get(role, role) if role else None
    if role is not None and role not in ROLES.values():
        raise errors.validation("role_code does not have a valid value")
    wanted = request.args.get("email_address", "").lower()
    out = []
    for i, e in enumerate(acc.get("emails", []), start=1):
        if status and e["confirm_status"] != CONFIRM[status]:
            continue
        if role and role not in e.get("roles", []):
            continue
        if wanted and e["email_address"].lower() != wanted:
            continue
        item = {
            "email_address": e["email_address"],
            "email_id": i,
            "confirm_status": e["confirm_status"],
            "roles": list(e.get("roles", [])),
            "pending_roles": [],
        }
        if e["confirm_status"] == "CONFIRMED":
            item.update(confirm_time="2024-01-15T10:00:00Z", confirm_source_type="SITE_OWNER")
        out.append(item)
    return _json(out)


def register(app: Flask) -> None:
    """Add the account routes."""
    app.add_url_rule("/v3/account/summary", "cc_account_summary", summary, methods=["GET"])
    app.add_url_rule("/v3/account/emails", "cc_account_emails", emails, methods=["GET"])
