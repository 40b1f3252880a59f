"""/v3/contacts writes: POST (409 on an existing email), PUT (full replace), DELETE (soft)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask import Flask, Response

from . import errors
from .api import account, json_body
from .contacts import CORE, INCLUDES, SUBRES, json_response, load, render_one
from .context import sandbox
from .store import ACTIVE, valid_email

SOURCES = ("Contact", "Account")


def core_values(body: dict) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for key in CORE:
        v = body.get(key)
        if isinstance(v, str) and key != "anniversary" and len(v) > 50:
            raise errors.validation(f"{key} must be at most 50 characters")
        vals[key] = v
    return vals


def list_rows_for(acc: str, list_ids: Any) -> list[int]:
    if list_ids is None:
        return []
    if not isinstance(list_ids, list) or len(list_ids) > 50:
        raise errors.validation("list_memberships must be an array of at most 50 list ids")
    rows = sandbox().store.list_ids_to_rows(acc, [str(x) for x in list_ids])
    if rows is None:
        raise errors.validation("list_memberships contains an unknown list id")
    return list(rows.values())


def _extra(body: dict, old: dict | None = None) -> str:
    subs = dict(old or {})
    for key in SUBRES:
        if key in body and isinstance(body[key], list):
            subs[key] = body[key]
    return json.dumps(subs)


def create_contact() -> Response:
    """POST /v3/contacts: 201 with the new contact; 409 if the email exists."""
    sb, acc = sandbox(), account()
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation("Request body must be a JSON object")
    if body.get("create_source") not in SOURCES:
        raise errors.validation("create_source is required and must be Contact or Account")
    email = body.get("email_address") or {}
    address = email.get("address") if isinstance(email, dict) else None
    if not (address or body.get("first_name") or body.get("last_name") or body.get("sms_channel")):
        raise errors.validation(
            "At least one of email_address, first_name, last_name or sms_channel is required"
        )
    if address is not None and not valid_email(str(address)):
        raise errors.validation(f"email_address.address is not a valid email: {address}")
    perm = email.get("permission_to_send") or "implicit"
    if perm not in (*ACTIVE, "not_set", "pending_confirmation", "temp_hold", "unsubscribed"):
        raise errors.validation("email_address.permission_to_send does not have a valid value")
    vals = core_values(body)
    list_rows = list_rows_for(acc, body.get("list_memberships"))
    now = sb.now()
    with sb.store.tx() as conn:
        if address is not None:
            dup = conn.execute(
                "SELECT contact_id FROM contacts WHERE account=? AND email_key=?",
                (acc, address.lower()),
            ).fetchone()
            if dup:
                raise errors.APIError(
                    409,
                    errors.CONFLICT,
                    f"Validation failed: Email already exists for contact {dup[0]}",
                )
        cid = sb.store.new_id()
        src = body["create_source"]
        active = perm in ACTIVE
        cur = conn.execute(
            "INSERT INTO contacts (account, contact_id, email_key, address, first_name,"
            " last_name, job_title, company_name, birthday_month, birthday_day, anniversary,"
            " permission, opt_in_source, opt_in_date, opt_out_source, opt_out_date,"
            " create_source, update_source, created_at, updated_at, email_created_at,"
            " email_updated_at, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                acc,
                cid,
                address.lower() if address else None,
                address,
                *vals.values(),
                perm,
                src if active else None,
                now if active else None,
                src if perm == "unsubscribed" else None,
                now if perm == "unsubscribed" else None,
                src,
                src,
                now,
                now,
                now if address else None,
                now if address else None,
                _extra(body),
            ),
        )
        if perm != "unsubscribed":
            conn.executemany(
                "INSERT OR IGNORE INTO memberships VALUES (?,?)",
                [(lr, cur.lastrowid) for lr in list_rows],
            )
    row = load(cid)
    return json_response(
        render_one(row, [k for k in INCLUDES if k in body or k == "list_memberships"]), 201
    )


def unsubscribe_row(
    conn: sqlite3.Connection, row_id: int, source: str, reason: str | None, now: float
) -> None:
    """Opt a contact out as ``source`` and drop their list memberships (CC removes them)."""
    conn.execute(
        "UPDATE contacts SET permission='unsubscribed', opt_out_source=?,"
        " opt_out_date=?, opt_out_reason=?, update_source=?, updated_at=?,"
        " email_updated_at=? WHERE id=?",
        (source, now, reason, source, now, now, row_id),
    )
    conn.execute("DELETE FROM memberships WHERE contact=?", (row_id,))


def update_contact(contact_id: str) -> Response:
    """PUT /v3/contacts/{id}: full replace of core fields; included sub-resources replaced."""
    sb, acc = sandbox(), account()
    row = load(contact_id)
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation("Request body must be a JSON object")
    src = body.get("update_source")
    if src not in SOURCES:
        raise errors.validation("update_source is required and must be Contact or Account")
    email = body.get("email_address") if isinstance(body.get("email_address"), dict) else None
    address = email.get("address") if email else None
    if address is not None and not valid_email(str(address)):
        raise errors.validation(f"email_address.address is not a valid email: {address}")
    vals = core_values(body)
    list_rows = list_rows_for(acc, body.get("list_memberships"))
    old_perm, old_src = row[10], row[13]
    perm = (email or {}).get("permission_to_send") or old_perm
    if perm in ACTIVE and old_perm == "unsubscribed" and old_src == "Contact" and src != "Contact":
        raise errors.validation(
            "This contact unsubscribed and cannot be opted back in by the "
            "account; the contact must opt in again."
        )
    now = sb.now()
    with sb.store.tx() as conn:
        if address and address.lower() != (row[2] or "").lower():
            dup = conn.execute(
                "SELECT contact_id FROM contacts WHERE account=? AND email_key=?",
                (acc, address.lower()),
            ).fetchone()
            if dup:
                raise errors.APIError(
                    409,
                    errors.CONFLICT,
                    f"Validation failed: Email already exists for contact {dup[0]}",
                )
        address = address or row[2]
        conn.execute(
            "UPDATE contacts SET email_key=?, address=?, first_name=?, last_name=?, job_title=?,"
            " company_name=?, birthday_month=?, birthday_day=?, anniversary=?, update_source=?,"
            " updated_at=?, deleted_at=NULL, extra=? WHERE id=?",
            (
                address.lower() if address else None,
                address,
                *vals.values(),
                src,
                now,
                _extra(body, json.loads(row[24] or "{}")),
                row[0],
            ),
        )
        if perm == "unsubscribed" and old_perm != "unsubscribed":
            unsubscribe_row(conn, row[0], src, (email or {}).get("opt_out_reason"), now)
        elif perm != old_perm:
            conn.execute(
                "UPDATE contacts SET permission=?, opt_in_source=COALESCE(opt_in_source,"
                "?), opt_in_date=?, opt_out_source=NULL, opt_out_date=NULL,"
                " opt_out_reason=NULL, email_updated_at=? WHERE id=?",
                (perm, src, now, now, row[0]),
            )
        if "list_memberships" in body and perm != "unsubscribed":
            conn.execute("DELETE FROM memberships WHERE contact=?", (row[0],))
            conn.executemany(
                "INSERT OR IGNORE INTO memberships VALUES (?,?)", [(lr, row[0]) for lr in list_rows]
            )
    return json_response(render_one(load(contact_id), [k for k in INCLUDES if k in body]))


def delete_contact(contact_id: str) -> Response:
    """DELETE /v3/contacts/{id}: soft delete (status=deleted); 204."""
    sb = sandbox()
    row = load(contact_id, with_deleted=False)
    now = sb.now()
    with sb.store.tx() as conn:
        conn.execute(
            "UPDATE contacts SET deleted_at=?, updated_at=?, update_source='Account' WHERE id=?",
            (now, now, row[0]),
        )
        conn.execute("DELETE FROM memberships WHERE contact=?", (row[0],))
    return Response(status=204)


def register(app: Flask) -> None:
    """Add POST /v3/contacts and PUT/DELETE /v3/contacts/{contact_id}."""
    app.add_url_rule("/v3/contacts", "cc_contact_create", create_contact, methods=["POST"])
    app.add_url_rule("/v3/contacts/<contact_id>", "cc_contact_put", update_contact, methods=["PUT"])
    app.add_url_rule(
        "/v3/contacts/<contact_id>", "cc_contact_delete", delete_contact, methods=["DELETE"]
    )
