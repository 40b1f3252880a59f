"""POST /v3/contacts/sign_up_form: create-or-update with the person's explicit consent.

New contacts: 201, permission_to_send explicit, opt_in_source/create_source Contact. Existing
(also deleted or unsubscribed) contacts: 200, partial update, lists and custom fields appended,
permission_to_send explicit (the swagger says updated contacts are set to explicit).
"""

from __future__ import annotations

import json

from flask import Flask, Response

from . import errors
from .api import account, json_body
from .contact_write import core_values, list_rows_for
from .contacts import CORE
from .context import sandbox
from .store import valid_email


def sign_up_form() -> Response:
    """Create or update one contact from a sign-up form submission."""
    sb, acc = sandbox(), account()
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation("Request body must be a JSON object")
    lists = body.get("list_memberships")
    if not isinstance(lists, list) or not 1 <= len(lists) <= 50:
        raise errors.validation("list_memberships is required and must contain 1 to 50 list ids")
    address = body.get("email_address")
    if not isinstance(address, str) or not address:
        if not body.get("sms_channel"):
            raise errors.validation("email_address or sms_channel is required")
        raise errors.validation("sms_channel contacts are not supported by this sandbox")
    if not valid_email(address, 50):
        raise errors.validation(f"email_address is not a valid email: {address}")
    list_rows = list_rows_for(acc, lists)
    vals = core_values(body)
    custom = body.get("custom_fields") if isinstance(body.get("custom_fields"), list) else []
    now = sb.now()
    with sb.store.tx() as conn:
        row = conn.execute(
            "SELECT id, contact_id, extra FROM contacts WHERE account=? AND email_key=?",
            (acc, address.lower()),
        ).fetchone()
        if row is None:
            cid = sb.store.new_id()
            cur = conn.execute(
                "INSERT INTO contacts (account, contact_id, email_key, address, first_name,"
                " last_name, job_title, company_name, birthday_month, birthday_day, anniversary,"
                " permission, opt_in_source, opt_in_date, create_source, update_source,"
                " created_at, updated_at, email_created_at, email_updated_at, extra)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,'explicit','Contact',?,'Contact','Contact',"
                "?,?,?,?,?)",
                (
                    acc,
                    cid,
                    address.lower(),
                    address,
                    *vals.values(),
                    now,
                    now,
                    now,
                    now,
                    now,
                    json.dumps({"custom_fields": custom} if custom else {}),
                ),
            )
            row_id, status, action = cur.lastrowid, 201, "created"
        else:
            row_id, cid = row[0], row[1]
            extra = json.loads(row[2] or "{}")
            if custom:
                known = {c.get("custom_field_id"): c for c in extra.get("custom_fields", [])}
                known.update({c.get("custom_field_id"): c for c in custom})
                extra["custom_fields"] = list(known.values())
            sets = ", ".join(f"{k}=COALESCE(?, {k})" for k in CORE)
            conn.execute(
                f"UPDATE contacts SET {sets}, permission='explicit',"
                " opt_in_source=COALESCE(opt_in_source, 'Contact'), opt_in_date=?,"
                " opt_out_source=NULL, opt_out_date=NULL, opt_out_reason=NULL, deleted_at=NULL,"
                " update_source='Contact', updated_at=?, email_updated_at=?, extra=? WHERE id=?",
                (*vals.values(), now, now, now, json.dumps(extra), row_id),
            )
            status, action = 200, "updated"
        conn.executemany(
            "INSERT OR IGNORE INTO memberships VALUES (?,?)", [(lr, row_id) for lr in list_rows]
        )
    return Response(
        json.dumps({"contact_id": cid, "action": action}),
        status=status,
        mimetype="application/json",
    )


def register(app: Flask) -> None:
    """Add POST /v3/contacts/sign_up_form."""
    app.add_url_rule("/v3/contacts/sign_up_form", "cc_sign_up_form", sign_up_form, methods=["POST"])
