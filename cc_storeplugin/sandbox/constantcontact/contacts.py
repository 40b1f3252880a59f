"""/v3/contacts: list with CC's filters and cursor paging, CRUD, and sign_up_form."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask import Flask, Response, request

from . import errors
from .api import account, decode_cursor, encode_cursor, int_arg, query_args
from .context import sandbox
from .store import iso, iso_date, parse_iso

COLS = (
    "id, contact_id, address, first_name, last_name, job_title, company_name, birthday_month,"
    " birthday_day, anniversary, permission, opt_in_source, opt_in_date, opt_out_source,"
    " opt_out_date, opt_out_reason, confirm_status, create_source, update_source, created_at,"
    " updated_at, email_created_at, email_updated_at, deleted_at, extra"
)
INCLUDES = (
    "custom_fields",
    "list_memberships",
    "phone_numbers",
    "street_addresses",
    "taggings",
    "notes",
)
STATUSES = (
    "all",
    "active",
    "deleted",
    "not_set",
    "pending_confirmation",
    "temp_hold",
    "unsubscribed",
)
CORE = (
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
)
SUBRES = ("custom_fields", "phone_numbers", "street_addresses", "taggings", "notes")
SOURCES = ("Contact", "Account")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def render(row: tuple, includes: tuple[str, ...] | list[str], lists: list[str] | None) -> dict:
    """A contacts row as ContactResource JSON (nulls omitted, as CC does)."""
    (
        _id,
        cid,
        address,
        first,
        last,
        job,
        company,
        bmonth,
        bday,
        anniv,
        perm,
        in_src,
        in_date,
        out_src,
        out_date,
        out_reason,
        confirm,
        c_src,
        u_src,
        created,
        updated,
        e_created,
        e_updated,
        deleted,
        extra,
    ) = row
    out: dict[str, Any] = {"contact_id": cid}
    if address is not None:
        email: dict[str, Any] = {
            "address": address,
            "permission_to_send": perm,
            "created_at": iso(e_created),
            "updated_at": iso(e_updated),
            "opt_in_source": in_src,
            "opt_in_date": iso(in_date),
            "confirm_status": confirm,
        }
        if out_date is not None:
            email.update(
                opt_out_source=out_src, opt_out_date=iso(out_date), opt_out_reason=out_reason
            )
        out["email_address"] = {k: v for k, v in email.items() if v is not None}
    for key, value in zip(CORE, (first, last, job, company, bmonth, bday, anniv), strict=True):
        if value is not None:
            out[key] = value
    out.update(
        create_source=c_src, update_source=u_src, created_at=iso(created), updated_at=iso(updated)
    )
    if deleted is not None:
        out["deleted_at"] = iso_date(deleted)
    subs = json.loads(extra) if extra else {}
    for key in includes:
        if key == "list_memberships":
            out["list_memberships"] = lists or []
        else:
            out[key] = subs.get(key, [])
    return {k: v for k, v in out.items() if v is not None}


def memberships_of(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[str]]:
    """contact row id -> list UUIDs (one query per page)."""
    out: dict[int, list[str]] = {i: [] for i in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for cid, lid in conn.execute(
            "SELECT m.contact, l.list_id FROM memberships m JOIN lists l ON l.id=m.list"
            f" WHERE m.contact IN ({marks}) ORDER BY l.id",
            chunk,
        ):
            out[cid].append(lid)
    return out


def _includes(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    vals = tuple(v.strip() for v in raw.split(",") if v.strip())
    for v in vals:
        if v not in INCLUDES:
            raise errors.validation(f"include does not have a valid value: {v}")
    return vals


def _filters(q: dict[str, str], acc: str) -> tuple[list[str], list[Any]]:
    # "+account" keeps SQLite off the (account, email_key) index so pages walk the primary key
    conds, params = ["account=?" if q.get("email") else "+account=?"], [acc]
    statuses = [s.strip() for s in q.get("status", "").split(",") if s.strip()]
    for s in statuses:
        if s not in STATUSES:
            raise errors.validation(f"status does not have a valid value: {s}")
    if not statuses:
        conds.append("deleted_at IS NULL")
    elif "all" not in statuses:
        ors = []
        for s in statuses:
            if s == "deleted":
                ors.append("deleted_at IS NOT NULL")
            elif s == "active":
                ors.append("(deleted_at IS NULL AND permission IN ('implicit','explicit'))")
            else:
                ors.append("(deleted_at IS NULL AND permission=?)")
                params.append(s)
        conds.append("(" + " OR ".join(ors) + ")")
    if q.get("email"):
        conds.append("email_key=?")
        params.append(q["email"].strip().lower())
    if q.get("lists"):
        list_ids = [x.strip() for x in q["lists"].split(",") if x.strip()]
        if len(list_ids) > 25:
            raise errors.validation("lists must contain no more than 25 list ids")
        marks = ",".join("?" * len(list_ids))
        conds.append(
            "EXISTS (SELECT 1 FROM memberships m WHERE m.contact=contacts.id AND m.list IN"
            f" (SELECT id FROM lists WHERE account=? AND list_id IN ({marks})))"
        )
        params += [acc, *list_ids]
    for name, col, op in (
        ("updated_after", "updated_at", ">"),
        ("updated_before", "updated_at", "<"),
        ("created_after", "created_at", ">"),
        ("created_before", "created_at", "<"),
        ("optout_after", "opt_out_date", ">"),
        ("optout_before", "opt_out_date", "<"),
    ):
        if q.get(name):
            try:
                ts = parse_iso(q[name])
            except ValueError as exc:
                raise errors.validation(f"{name} is not a valid ISO-8601 date") from exc
            conds.append(f"{col} {op} ?")
            params.append(ts)
    return conds, params


def list_contacts() -> Response:
    """GET /v3/contacts with status/email/lists/date filters, include, limit, cursor paging."""
    sb = sandbox()
    q = query_args()
    after = 0
    if "cursor" in request.args:
        after = int(decode_cursor(request.args["cursor"]).get("after", 0))
    limit = int_arg("limit", 50, 1, 500, q)
    includes = _includes(q.get("include"))
    conds, params = _filters(q, account())
    where = " AND ".join(conds)
    with sb.store.lock:
        conn = sb.store.conn
        rows = conn.execute(
            f"SELECT {COLS} FROM contacts WHERE {where} AND id > ? ORDER BY id LIMIT ?",
            [*params, after, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        lists = memberships_of(conn, [r[0] for r in rows]) if "list_memberships" in includes else {}
        count = None
        if str(q.get("include_count", "")).lower() == "true":
            count = conn.execute(f"SELECT COUNT(*) FROM contacts WHERE {where}", params).fetchone()[
                0
            ]
    body: dict[str, Any] = {"contacts": [render(r, includes, lists.get(r[0])) for r in rows]}
    if count is not None:
        body["contacts_count"] = count
    if more:
        body["_links"] = {
            "next": {"href": "/v3/contacts?cursor=" + encode_cursor({"q": q, "after": rows[-1][0]})}
        }
    return json_response(body)


def load(contact_id: str, with_deleted: bool = True) -> tuple:
    """The contacts row for ``contact_id`` in the token's account, or 404."""
    row = sandbox().store.one(
        f"SELECT {COLS} FROM contacts WHERE account=? AND contact_id=?", (account(), contact_id)
    )
    if row is None or (row[23] is not None and not with_deleted):
        raise errors.not_found(f"Contact {contact_id} not found.")
    return row


def render_one(row: tuple, includes: tuple[str, ...] | list[str]) -> dict:
    sb = sandbox()
    with sb.store.lock:
        lists = memberships_of(sb.store.conn, [row[0]])[row[0]]
    return render(row, includes, lists)


def get_contact(contact_id: str) -> Response:
    """GET /v3/contacts/{contact_id}?include=..."""
    return json_response(render_one(load(contact_id), _includes(request.args.get("include"))))


def register(app: Flask) -> None:
    """Add GET /v3/contacts and GET /v3/contacts/{id} (writes live in contact_write.py)."""
    app.add_url_rule("/v3/contacts", "cc_contacts", list_contacts, methods=["GET"])
    app.add_url_rule("/v3/contacts/<contact_id>", "cc_contact_get", get_contact, methods=["GET"])
