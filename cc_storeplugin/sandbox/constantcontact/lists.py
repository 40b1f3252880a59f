"""/v3/contact_lists: exact-name lookup, membership counts, 409 on duplicates, 1,000-list cap."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

from . import errors
from .api import account, decode_cursor, encode_cursor, int_arg, json_body, query_args
from .context import sandbox
from .store import iso

COLS = "id, list_id, name, description, favorite, created_at, updated_at, deleted_at"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def render(row: tuple, count: int | None = None) -> dict[str, Any]:
    """A lists row as ContactList JSON."""
    out: dict[str, Any] = {
        "list_id": row[1],
        "name": row[2],
        "favorite": bool(row[4]),
        "created_at": iso(row[5]),
        "updated_at": iso(row[6]),
    }
    if row[3] is not None:
        out["description"] = row[3]
    if row[7] is not None:
        out["deleted_at"] = iso(row[7])
    if count is not None:
        out["membership_count"] = count
    return out


def _membership_count(list_row_id: int, mode: str) -> int:
    sql = "SELECT COUNT(*) FROM memberships m"
    if mode == "active":
        sql += (
            " JOIN contacts c ON c.id=m.contact WHERE m.list=? AND c.deleted_at IS NULL"
            " AND c.permission IN ('implicit','explicit')"
        )
    else:
        sql += " WHERE m.list=?"
    return sandbox().store.one(sql, (list_row_id,))[0]


def _count_mode(q: dict[str, str]) -> str | None:
    mode = q.get("include_membership_count")
    if mode is not None and mode not in ("all", "active"):
        raise errors.validation("include_membership_count does not have a valid value")
    return mode


def list_lists() -> Response:
    """GET /v3/contact_lists?name=&status=&include_count=&include_membership_count=&limit="""
    acc = account()
    q = query_args()
    after = (
        int(decode_cursor(request.args["cursor"]).get("after", 0))
        if "cursor" in request.args
        else 0
    )
    limit = int_arg("limit", 50, 1, 1000, q)
    mode = _count_mode(q)
    conds, params = ["account=?"], [acc]
    statuses = [s for s in q.get("status", "active").split(",") if s]
    if any(s not in ("all", "active", "deleted") for s in statuses):
        raise errors.validation("status does not have a valid value")
    if "all" not in statuses:
        ors = []
        if "active" in statuses:
            ors.append("deleted_at IS NULL")
        if "deleted" in statuses:
            ors.append("deleted_at IS NOT NULL")
        conds.append("(" + " OR ".join(ors) + ")")
    if "name" in q:
        conds.append("name=?")
        params.append(q["name"])
    where = " AND ".join(conds)
    store = sandbox().store
    rows = store.query(
        f"SELECT {COLS} FROM lists WHERE {where} AND id > ? ORDER BY id LIMIT ?",
        [*params, after, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    body: dict[str, Any] = {
        "lists": [render(r, _membership_count(r[0], mode) if mode else None) for r in rows]
    }
    if str(q.get("include_count", "")).lower() == "true":
        body["lists_count"] = store.one(f"SELECT COUNT(*) FROM lists WHERE {where}", params)[0]
    if more:
        body["_links"] = {
            "next": {
                "href": "/v3/contact_lists?cursor=" + encode_cursor({"q": q, "after": rows[-1][0]})
            }
        }
    return _json(body)


def _input() -> tuple[str, bool, str | None]:
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation("Request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise errors.validation("name is required")
    if len(name) > 255:
        raise errors.validation("name must be at most 255 characters")
    desc = body.get("description")
    return name, bool(body.get("favorite", False)), desc if isinstance(desc, str) else None


def _conflict(name: str) -> errors.APIError:
    return errors.APIError(
        409, errors.CONFLICT, f"Validation failed: List name '{name}' already exists"
    )


def create_list() -> Response:
    """POST /v3/contact_lists: 201; 409 on a duplicate name; 400 past the 1,000-list cap."""
    sb, acc = sandbox(), account()
    name, favorite, desc = _input()
    now = sb.now()
    with sb.store.tx() as conn:
        if conn.execute(
            "SELECT 1 FROM lists WHERE account=? AND name=? AND deleted_at IS NULL", (acc, name)
        ).fetchone():
            raise _conflict(name)
        n = conn.execute(
            "SELECT COUNT(*) FROM lists WHERE account=? AND deleted_at IS NULL", (acc,)
        ).fetchone()[0]
        if n >= sb.settings.max_lists:
            raise errors.validation(
                f"The account has reached the maximum of {sb.settings.max_lists} contact lists"
            )
        lid = sb.store.new_id()
        conn.execute(
            "INSERT INTO lists (account, list_id, name, description, favorite,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
            (acc, lid, name, desc, int(favorite), now, now),
        )
    return _json(render(sb.store.list_row(acc, lid)), 201)


def _load(list_id: str) -> tuple:
    row = sandbox().store.list_row(account(), list_id)
    if row is None:
        raise errors.not_found(f"List {list_id} not found.")
    return row


def get_list(list_id: str) -> Response:
    """GET /v3/contact_lists/{list_id}?include_membership_count="""
    row = _load(list_id)
    mode = _count_mode(dict(request.args))
    return _json(render(row, _membership_count(row[0], mode) if mode else None))


def update_list(list_id: str) -> Response:
    """PUT /v3/contact_lists/{list_id}: rename / favorite / description."""
    sb, acc = sandbox(), account()
    row = _load(list_id)
    name, favorite, desc = _input()
    with sb.store.tx() as conn:
        if (
            name != row[2]
            and conn.execute(
                "SELECT 1 FROM lists WHERE account=? AND name=? AND deleted_at IS NULL", (acc, name)
            ).fetchone()
        ):
            raise _conflict(name)
        conn.execute(
            "UPDATE lists SET name=?, favorite=?, description=?, updated_at=? WHERE id=?",
            (name, int(favorite), desc, sb.now(), row[0]),
        )
    return _json(render(sb.store.list_row(acc, list_id)))


def delete_list(list_id: str) -> Response:
    """DELETE /v3/contact_lists/{list_id}: 202 with a list_delete activity."""
    from .activities import record_activity, render_activity

    sb = sandbox()
    row = _load(list_id)
    now = sb.now()
    with sb.store.tx() as conn:
        conn.execute(
            "UPDATE contacts SET updated_at=? WHERE id IN (SELECT contact FROM"
            " memberships WHERE list=?)",
            (now, row[0]),
        )
        n = conn.execute("DELETE FROM memberships WHERE list=?", (row[0],)).rowcount
        conn.execute("UPDATE lists SET deleted_at=?, updated_at=? WHERE id=?", (now, now, row[0]))
    act = record_activity(
        sb,
        account(),
        "list_delete",
        {"items_total_count": 1, "items_completed_count": 1, "person_count": n},
        [],
    )
    body = render_activity(sb, act)
    body.pop("status", None)
    return _json(body, 202)


def register(app: Flask) -> None:
    """Add the /v3/contact_lists routes."""
    app.add_url_rule("/v3/contact_lists", "cc_lists", list_lists, methods=["GET"])
    app.add_url_rule("/v3/contact_lists", "cc_list_create", create_list, methods=["POST"])
    app.add_url_rule("/v3/contact_lists/<list_id>", "cc_list_get", get_list, methods=["GET"])
    app.add_url_rule("/v3/contact_lists/<list_id>", "cc_list_put", update_list, methods=["PUT"])
    app.add_url_rule(
        "/v3/contact_lists/<list_id>", "cc_list_delete", delete_list, methods=["DELETE"]
    )
