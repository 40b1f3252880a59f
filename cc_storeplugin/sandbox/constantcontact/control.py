"""/_sandbox control endpoints for tests, demos and benchmarks (no auth, never faulted)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from .activities import pump
from .contact_write import unsubscribe_row
from .context import sandbox
from .oauth2 import revoke_account
from .reports import create_campaign
from .store import iso


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _account(body: dict[str, Any]) -> str:
    return body.get("account") or sandbox().settings.accounts[0]["encoded_account_id"]


def revoke():
    """POST /_sandbox/revoke {account?}: the merchant disconnects the app (all grants die)."""
    body = _body()
    return jsonify({"revoked_grants": revoke_account(sandbox(), body.get("account"))})


def clock():
    """POST /_sandbox/clock {advance_s}: move sandbox time forward (token expiry, activities)."""
    sb = sandbox()
    sb.clock_offset += float(_body().get("advance_s", 0))
    pump(sb)
    return jsonify({"now": iso(sb.now()), "epoch": sb.now()})


def unsubscribe():
    """POST /_sandbox/unsubscribe {email, reason?}: the person clicks the unsubscribe link."""
    sb = sandbox()
    body = _body()
    email = str(body.get("email", "")).strip().lower()
    pump(sb)
    with sb.store.tx() as conn:
        row = conn.execute(
            "SELECT id, contact_id FROM contacts WHERE account=? AND email_key=?",
            (_account(body), email),
        ).fetchone()
        if row is None:
            return jsonify({"error": f"no contact with email {email}"}), 404
        unsubscribe_row(conn, row[0], "Contact", body.get("reason"), sb.now())
    return jsonify(
        {
            "contact_id": row[1],
            "email": email,
            "permission_to_send": "unsubscribed",
            "opt_out_source": "Contact",
            "opt_out_date": iso(sb.now()),
        }
    )


def list_emails(list_id: str):
    """GET /_sandbox/lists/<list_id>/emails: the member email addresses (lower-cased, sorted)."""
    sb = sandbox()
    pump(sb)
    row = sb.store.one("SELECT id, name FROM lists WHERE list_id=?", (list_id,))
    if row is None:
        return jsonify({"error": "unknown list"}), 404
    emails = [
        r[0]
        for r in sb.store.query(
            "SELECT c.email_key FROM memberships m JOIN contacts c ON c.id=m.contact WHERE m.list=?"
            " ORDER BY c.email_key",
            (row[0],),
        )
    ]
    return jsonify({"list_id": list_id, "name": row[1], "count": len(emails), "emails": emails})


def state():
    """GET /_sandbox/state: counts of contacts by permission, lists with sizes, activities."""
    sb = sandbox()
    pump(sb)
    q = sb.store.query
    perms = dict(
        q("SELECT permission, COUNT(*) FROM contacts WHERE deleted_at IS NULL GROUP BY permission")
    )
    lists = [
        {"list_id": r[0], "name": r[1], "members": r[2]}
        for r in q(
            "SELECT l.list_id, l.name, (SELECT COUNT(*) FROM memberships m WHERE m.list=l.id)"
            " FROM lists l WHERE l.deleted_at IS NULL ORDER BY l.id"
        )
    ]
    acts = dict(
        q(
            "SELECT CASE applied WHEN 1 THEN 'completed' ELSE 'pending' END, COUNT(*)"
            " FROM activities GROUP BY applied"
        )
    )
    deleted = q("SELECT COUNT(*) FROM contacts WHERE deleted_at IS NOT NULL")[0][0]
    quota = {cid: sb.limiter.used_today(cid) for cid in sb.settings.clients}
    return jsonify(
        {
            "now": iso(sb.now()),
            "contacts": {"by_permission": perms, "total": sum(perms.values()), "deleted": deleted},
            "lists": lists,
            "activities": acts,
            "quota_used_today": quota,
            "accounts": [a["encoded_account_id"] for a in sb.settings.accounts],
        }
    )


def send_campaign():
    """POST /_sandbox/send_campaign {name, list_ids?}: a sent campaign with its sends report."""
    sb = sandbox()
    body = _body()
    acc = _account(body)
    rows = sb.store.list_ids_to_rows(acc, body.get("list_ids") or []) or []
    out = create_campaign(
        sb,
        acc,
        body.get("name", "Sandbox campaign"),
        sb.now(),
        list(rows.values()) if isinstance(rows, dict) else [],
    )
    return jsonify(out), 201


def limits():
    """POST /_sandbox/limits {rate_per_s?, daily_quota?}: change the per-key limits."""
    body = _body()
    sandbox().limiter.configure(**{k: body[k] for k in ("rate_per_s", "daily_quota") if k in body})
    lim = sandbox().limiter
    return jsonify({"rate_per_s": lim.rate_per_s, "daily_quota": lim.daily_quota})


def register(app: Flask) -> None:
    """Add the CC-specific /_sandbox endpoints."""
    app.add_url_rule("/_sandbox/revoke", "cc_sb_revoke", revoke, methods=["POST"])
    app.add_url_rule("/_sandbox/clock", "cc_sb_clock", clock, methods=["POST"])
    app.add_url_rule("/_sandbox/unsubscribe", "cc_sb_unsub", unsubscribe, methods=["POST"])
    app.add_url_rule(
        "/_sandbox/lists/<list_id>/emails", "cc_sb_list_emails", list_emails, methods=["GET"]
    )
    app.add_url_rule("/_sandbox/state", "cc_sb_state", state, methods=["GET"])
    app.add_url_rule("/_sandbox/send_campaign", "cc_sb_send", send_campaign, methods=["POST"])
    app.add_url_rule("/_sandbox/limits", "cc_sb_limits", limits, methods=["POST"])
