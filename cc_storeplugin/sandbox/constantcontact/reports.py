"""Email campaigns and their reports: /v3/emails, campaign summaries, per-activity sends.

Campaigns are seeded at start (a few, with no sends) and created by POST /_sandbox/send_campaign,
which records one send per active contact (optionally per list) at the sandbox time.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from . import errors
from .api import account, decode_cursor, encode_cursor, int_arg, query_args
from .context import Sandbox, sandbox
from .store import iso, iso_date, parse_iso


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def create_campaign(
    sb: Sandbox, acc: str, name: str, sent_at: float | None, list_rows: list[int] | None = None
) -> dict[str, Any]:
    """Add a campaign; when ``sent_at`` is given, record sends to the active audience."""
    cid, aid = sb.store.new_id(), sb.store.new_id()
    now = sb.now()
    with sb.store.tx() as conn:
        cur = conn.execute(
            "INSERT INTO campaigns (account, campaign_id, activity_id, name, status, created_at,"
            " updated_at, sent_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                acc,
                cid,
                aid,
                name,
                "Done" if sent_at is not None else "Draft",
                now,
                sent_at or now,
                sent_at,
            ),
        )
        if sent_at is not None:
            live = "account=? AND deleted_at IS NULL AND permission IN ('implicit','explicit')"
            if list_rows:
                marks = ",".join("?" * len(list_rows))
                conn.execute(
                    f"INSERT OR IGNORE INTO sends SELECT ?, id, ? FROM contacts WHERE"
                    f" {live} AND id IN (SELECT contact FROM memberships WHERE list IN"
                    f" ({marks}))",
                    (cur.lastrowid, sent_at, acc, *list_rows),
                )
            else:
                conn.execute(
                    f"INSERT INTO sends SELECT ?, id, ? FROM contacts WHERE {live}",
                    (cur.lastrowid, sent_at, acc),
                )
    n = sb.store.one(
        "SELECT COUNT(*) FROM sends WHERE campaign=(SELECT id FROM campaigns WHERE campaign_id=?)",
        (cid,),
    )[0]
    return {"campaign_id": cid, "campaign_activity_id": aid, "sends": n}


def _campaign(row: tuple) -> dict[str, Any]:
    return {
        "campaign_id": row[1],
        "created_at": iso(row[5]),
        "current_status": row[4],
        "name": row[3],
        "type": "NEWSLETTER",
        "type_code": 10,
        "updated_at": iso(row[6]),
    }


CCOLS = "id, campaign_id, activity_id, name, status, created_at, updated_at, sent_at"


def list_emails() -> Response:
    """GET /v3/emails?limit=&after_date=&before_date="""
    q = query_args()
    limit = int_arg("limit", 50, 1, 500, q)
    after = int(decode_cursor(request.args["cursor"])["after"]) if "cursor" in request.args else 0
    conds, params = ["account=?", "id > ?"], [account(), after]
    for name, op in (("after_date", ">="), ("before_date", "<=")):
        if q.get(name):
            try:
                params.append(parse_iso(q[name]))
            except ValueError as exc:
                raise errors.validation(f"{name} is not a valid ISO-8601 date") from exc
            conds.append(f"updated_at {op} ?")
    rows = sandbox().store.query(
        f"SELECT {CCOLS} FROM campaigns WHERE {' AND '.join(conds)} ORDER BY id LIMIT ?",
        [*params, limit + 1],
    )
    body: dict[str, Any] = {"campaigns": [_campaign(r) for r in rows[:limit]]}
    if len(rows) > limit:
        body["_links"] = {
            "next": {
                "href": "/v3/emails?cursor=" + encode_cursor({"q": q, "after": rows[limit - 1][0]})
            }
        }
    return _json(body)


def get_email(campaign_id: str) -> Response:
    """GET /v3/emails/{campaign_id} with its primary_email campaign activity."""
    row = sandbox().store.one(
        f"SELECT {CCOLS} FROM campaigns WHERE account=? AND campaign_id=?", (account(), campaign_id)
    )
    if row is None:
        raise errors.not_found(f"Campaign {campaign_id} not found.")
    body = _campaign(row)
    body["campaign_activities"] = [{"campaign_activity_id": row[2], "role": "primary_email"}]
    return _json(body)


def summaries() -> Response:
    """GET /v3/reports/summary_reports/email_campaign_summaries?limit= (sent campaigns)."""
    q = query_args()
    limit = int_arg("limit", 50, 1, 500, q)
    after = int(decode_cursor(request.args["cursor"])["after"]) if "cursor" in request.args else 0
    rows = sandbox().store.query(
        "SELECT c.id, c.campaign_id, c.sent_at, (SELECT COUNT(*) FROM sends s WHERE"
        " s.campaign=c.id) FROM campaigns c WHERE c.account=? AND c.sent_at IS NOT NULL AND"
        " c.id > ? ORDER BY c.id LIMIT ?",
        (account(), after, limit + 1),
    )
    items = []
    for _id, cid, sent_at, sends in rows[:limit]:
        opens, clicks = sends * 2 // 5, sends // 10
        items.append(
            {
                "campaign_id": cid,
                "campaign_type": "NEWSLETTER",
                "last_sent_date": iso(sent_at),
                "unique_counts": {
                    "sends": sends,
                    "opens": opens,
                    "clicks": clicks,
                    "forwards": 0,
                    "optouts": 0,
                    "abuse": 0,
                    "bounces": 0,
                    "not_opened": sends - opens,
                },
            }
        )
    body: dict[str, Any] = {
        "bulk_email_campaign_summaries": items,
        "aggregate_percents": {
            "open": 40.0,
            "click": 10.0,
            "did_not_open": 60.0,
            "bounce": 0.0,
            "unsubscribe": 0.0,
        },
    }
    if len(rows) > limit:
        body["_links"] = {
            "next": {
                "href": "/v3/reports/summary_reports/email_campaign_summaries"
                "?cursor=" + encode_cursor({"q": q, "after": rows[limit - 1][0]})
            }
        }
    return _json(body)


def sends(campaign_activity_id: str) -> Response:
    """GET /v3/reports/email_reports/{campaign_activity_id}/tracking/sends?limit= (≤500)."""
    store, acc = sandbox().store, account()
    camp = store.one(
        "SELECT id FROM campaigns WHERE account=? AND activity_id=?", (acc, campaign_activity_id)
    )
    if camp is None:
        raise errors.not_found(f"Campaign activity {campaign_activity_id} not found.")
    q = query_args()
    limit = int_arg("limit", 500, 1, 500, q)
    after = int(decode_cursor(request.args["cursor"])["after"]) if "cursor" in request.args else 0
    rows = store.query(
        "SELECT c.id, c.contact_id, c.address, c.first_name, c.last_name, s.created_time,"
        " c.deleted_at FROM sends s JOIN contacts c ON c.id=s.contact WHERE s.campaign=? AND"
        " s.contact > ? ORDER BY s.contact LIMIT ?",
        (camp[0], after, limit + 1),
    )
    acts = []
    for _id, cid, email, first, last, created, deleted in rows[:limit]:
        item = {
            "contact_id": cid,
            "campaign_activity_id": campaign_activity_id,
            "tracking_activity_type": "em_sends",
            "email_address": email or "",
            "first_name": first,
            "last_name": last,
            "created_time": iso(created),
            "deleted_at": iso_date(deleted),
        }
        acts.append({k: v for k, v in item.items() if v is not None})
    body: dict[str, Any] = {"tracking_activities": acts}
    if len(rows) > limit:
        body["_links"] = {
            "next": {
                "href": f"/v3/reports/email_reports/{campaign_activity_id}"
                "/tracking/sends?cursor=" + encode_cursor({"q": q, "after": rows[limit - 1][0]})
            }
        }
    return _json(body)


def register(app: Flask) -> None:
    """Add the campaign and report routes."""
    app.add_url_rule("/v3/emails", "cc_emails", list_emails, methods=["GET"])
    app.add_url_rule("/v3/emails/<campaign_id>", "cc_email", get_email, methods=["GET"])
    app.add_url_rule(
        "/v3/reports/summary_reports/email_campaign_summaries",
        "cc_summaries",
        summaries,
        methods=["GET"],
    )
    app.add_url_rule(
        "/v3/reports/email_reports/<campaign_activity_id>/tracking/sends",
        "cc_sends",
        sends,
        methods=["GET"],
    )
