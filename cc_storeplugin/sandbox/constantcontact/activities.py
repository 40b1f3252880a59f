"""/v3/activities: asynchronous bulk jobs (JSON import, list memberships, exports) and status.

A queued activity is ``initialized`` for the first half of ``import_delay_s``, ``processing``
for the second half, and is applied (and ``completed``) by :func:`pump`, which runs before
every /v3 and /_sandbox request once its due time has passed on the sandbox clock.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from . import bulk, errors
from .api import account, decode_cursor, encode_cursor, int_arg, json_body, query_args
from .context import Sandbox, sandbox
from .store import iso

MAX_BODY = 4 * 1024 * 1024
MAX_ROWS = 40_000
ACOLS = (
    "id, activity_id, kind, applied, state, created_at, due_at, started_at, completed_at,"
    " status, errors"
)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def record_activity(
    sb: Sandbox,
    acc: str,
    kind: str,
    status: dict[str, int],
    errs: list[str],
    payload: dict[str, Any] | None = None,
) -> tuple:
    """Store an activity: applied at once when ``payload`` is None, else queued."""
    now = sb.now()
    due = now + (sb.settings.import_delay_s if payload is not None else 0)
    aid = sb.store.new_id()
    with sb.store.tx() as conn:
        conn.execute(
            "INSERT INTO activities (account, activity_id, kind, applied, state, created_at,"
            " due_at, started_at, completed_at, payload, status, errors)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                acc,
                aid,
                kind,
                int(payload is None),
                "initialized" if payload else "completed",
                now,
                due,
                None if payload else now,
                None if payload else now,
                json.dumps(payload) if payload is not None else None,
                json.dumps(status),
                json.dumps(errs),
            ),
        )
    if payload is not None:
        sb.store.next_due = min(sb.store.next_due, due)
    return sb.store.one(f"SELECT {ACOLS} FROM activities WHERE activity_id=?", (aid,))


def render_activity(sb: Sandbox, row: tuple) -> dict[str, Any]:
    """An activities row as Activity JSON with its time-derived state."""
    (_id, aid, kind, applied, state, created, due, started, completed, status, errs) = row
    now = sb.now()
    status = json.loads(status or "{}")
    if applied:
        percent = 100
    else:
        half = created + (due - created) / 2
        state, percent = ("initialized", 0) if now <= half else ("processing", 50)
        started = half if now > half else None
        status = {k: (0 if k == "items_completed_count" else v) for k, v in status.items()}
    out: dict[str, Any] = {
        "activity_id": aid,
        "state": state,
        "created_at": iso(created),
        "updated_at": iso(completed or started or created),
        "percent_done": percent,
        "activity_errors": json.loads(errs or "[]"),
        "status": status,
        "_links": {"self": {"href": f"/v3/activities/{aid}"}},
    }
    if started is not None:
        out["started_at"] = iso(started)
    if completed is not None:
        out["completed_at"] = iso(completed)
    if kind == "contact_exports" and applied:
        out["_links"]["results"] = {"href": f"/v3/contact_exports/{aid}"}
    return out


def pump(sb: Sandbox) -> None:
    """Apply every queued activity whose due time has passed, oldest first."""
    now = sb.now()
    if now < sb.store.next_due:
        return
    with sb.store.lock:
        pending = sb.store.conn.execute(
            "SELECT id, account, kind, payload, due_at, created_at FROM activities"
            " WHERE applied=0 ORDER BY id"
        ).fetchall()
        for rid, acc, kind, payload, due, created in pending:
            if due > now:
                continue
            data = json.loads(payload)
            with sb.store.tx() as conn:
                if kind == "contacts_json_import":
                    status, errs = bulk.apply_import(sb.store, conn, acc, data, due)
                elif kind in ("add_list_memberships", "remove_list_memberships"):
                    status, errs = bulk.apply_membership(
                        conn, acc, data, due, kind == "add_list_memberships"
                    )
                else:
                    where, params = bulk.export_where(acc, data)
                    n = conn.execute(
                        f"INSERT INTO export_rows SELECT ?, c.id FROM contacts c WHERE {where}",
                        [rid, *params],
                    ).rowcount
                    status, errs = {"items_total_count": n, "items_completed_count": n}, []
                    payload = json.dumps(data)
                conn.execute(
                    "UPDATE activities SET applied=1, state='completed', started_at=?,"
                    " completed_at=?, status=?, errors=?, payload=? WHERE id=?",
                    (
                        created + (due - created) / 2,
                        due,
                        json.dumps(status),
                        json.dumps(errs),
                        payload if kind == "contact_exports" else None,
                        rid,
                    ),
                )
        left = [p[4] for p in pending if p[4] > now]
        sb.store.next_due = min(left) if left else float("inf")


def queue_activity(kind: str, payload: dict[str, Any], status: dict[str, int]) -> Response:
    sb, acc = sandbox(), account()
    queued = sb.store.one("SELECT COUNT(*) FROM activities WHERE account=? AND applied=0", (acc,))[
        0
    ]
    if queued >= sb.settings.max_queued_activities:
        return errors.error_array(
            429,
            "too_many_requests",
            "Too many requests. You exceeded 1,000 queued activities for this user account.",
        )
    row = record_activity(sb, acc, kind, status, [], payload)
    return _json(render_activity(sb, row), 201)


def target_lists(body: dict[str, Any], key: str = "list_ids") -> list[int]:
    ids = body.get(key)
    if not isinstance(ids, list) or not 1 <= len(ids) <= 50:
        raise errors.validation(f"{key} is required and must contain 1 to 50 list ids")
    rows = sandbox().store.list_ids_to_rows(account(), [str(x) for x in ids])
    if rows is None:
        raise errors.validation(f"{key} contains an unknown list id")
    return list(rows.values())


def rows_within(raw: bytes, limit: int) -> int:
    """How many import_data rows end inside the first ``limit`` bytes of the body."""
    text = raw[:limit].decode("utf-8", errors="ignore")
    start = text.find('"import_data"')
    pos = text.find("[", start) + 1 if start >= 0 else 0
    if pos <= 0:
        return 0
    decoder = json.JSONDecoder()
    kept = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            _row, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return kept
        kept += 1


def contacts_json_import() -> Response:
    """POST /v3/activities/contacts_json_import (≤40,000 rows; data past 4 MB is dropped)."""
    raw_len = len(request.get_data(cache=True))
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("import_data"), list):
        raise errors.validation("import_data is required")
    rows = body["import_data"]
    if len(rows) > MAX_ROWS:
        raise errors.validation(f"import_data must contain no more than {MAX_ROWS:,} contacts")
    if not rows:
        raise errors.validation("import_data must contain at least one contact")
    list_rows = target_lists(body)
    if raw_len > MAX_BODY:
        if sandbox().settings.oversize == "reject":
            raise errors.validation("The request body must be less than 4 MB")
        kept = rows_within(request.get_data(cache=True), MAX_BODY)
        rows = rows[:kept]
    status = {
        "items_total_count": len(rows),
        "items_completed_count": 0,
        "person_count": 0,
        "error_count": 0,
        "correctable_count": 0,
        "cannot_add_to_list_count": 0,
        "list_count": len(list_rows),
    }
    return queue_activity(
        "contacts_json_import", {"import_data": rows, "list_rows": list_rows}, status
    )


def _membership(add: bool) -> Response:
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("source"), dict):
        raise errors.validation("source is required")
    list_rows = target_lists(body)
    src = body["source"]
    given = [
        k
        for k in (
            "contact_ids",
            "list_ids",
            "all_active_contacts",
            "segment_id",
            "tag_ids",
            "engagement_level",
        )
        if src.get(k)
    ]
    if len(given) != 1:
        raise errors.validation(
            "source must contain exactly one of contact_ids, list_ids or all_active_contacts"
        )
    source: dict[str, Any] = {}
    if given[0] == "contact_ids":
        if not isinstance(src["contact_ids"], list) or len(src["contact_ids"]) > 500:
            raise errors.validation("source.contact_ids must contain no more than 500 ids")
        source["contact_ids"] = [str(c) for c in src["contact_ids"]]
    elif given[0] == "list_ids":
        source["list_rows"] = target_lists(src)
    elif given[0] == "all_active_contacts":
        source["all_active_contacts"] = True
    else:
        raise errors.validation(f"source.{given[0]} is not supported by this sandbox")
    exclude = (body.get("exclude") or {}).get("contact_ids") or []
    n = len(source.get("contact_ids", []))
    kind = "add_list_memberships" if add else "remove_list_memberships"
    return queue_activity(
        kind,
        {"source": source, "exclude": exclude, "list_rows": list_rows},
        {"items_total_count": n, "items_completed_count": 0, "list_count": len(list_rows)},
    )


def get_activity(activity_id: str) -> Response:
    """GET /v3/activities/{activity_id}"""
    sb = sandbox()
    row = sb.store.one(
        f"SELECT {ACOLS} FROM activities WHERE account=? AND activity_id=?",
        (account(), activity_id),
    )
    if row is None:
        raise errors.not_found(f"Resource not found for the activity_id {activity_id}")
    return _json(render_activity(sb, row))


def list_activities() -> Response:
    """GET /v3/activities?state=&limit= (newest first, cursor paging)."""
    sb = sandbox()
    q = query_args()
    limit = int_arg("limit", 50, 1, 500, q)
    before = (
        int(decode_cursor(request.args["cursor"])["before"]) if "cursor" in request.args else 2**62
    )
    rows = sb.store.query(
        f"SELECT {ACOLS} FROM activities WHERE account=? AND id < ? ORDER BY id DESC",
        (account(), before),
    )
    acts = [(r, render_activity(sb, r)) for r in rows]
    if q.get("state"):
        acts = [(r, a) for r, a in acts if a["state"] == q["state"]]
    page = acts[:limit]
    body: dict[str, Any] = {"activities": [a for _r, a in page]}
    if len(acts) > limit:
        body["_links"] = {
            "next": {
                "href": "/v3/activities?cursor=" + encode_cursor({"q": q, "before": page[-1][0][0]})
            }
        }
    return _json(body)


def register(app: Flask) -> None:
    """Add the /v3/activities routes (exports live in exports.py)."""
    app.add_url_rule("/v3/activities", "cc_activities", list_activities, methods=["GET"])
    app.add_url_rule("/v3/activities/<activity_id>", "cc_activity", get_activity, methods=["GET"])
    app.add_url_rule(
        "/v3/activities/contacts_json_import",
        "cc_json_import",
        contacts_json_import,
        methods=["POST"],
    )
    app.add_url_rule(
        "/v3/activities/add_list_memberships",
        "cc_add_members",
        lambda: _membership(True),
        methods=["POST"],
    )
    app.add_url_rule(
        "/v3/activities/remove_list_memberships",
        "cc_remove_members",
        lambda: _membership(False),
        methods=["POST"],
    )
