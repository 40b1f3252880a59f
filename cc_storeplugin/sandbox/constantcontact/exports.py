"""Contact exports: POST /v3/activities/contact_exports and the CSV at
GET /v3/contact_exports/{file_export_id}. The matching contacts are snapshotted into
``export_rows`` when the activity completes; the CSV is streamed 5,000 rows at a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response

from . import bulk, errors
from .activities import queue_activity, target_lists
from .api import account, json_body
from .context import sandbox
from .store import iso


def contact_exports() -> Response:
    """POST /v3/activities/contact_exports: CSV of contacts by ids, lists and/or status."""
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation("Request body must be a JSON object")
    spec: dict[str, Any] = {}
    if body.get("contact_ids"):
        if len(body["contact_ids"]) > 500:
            raise errors.validation("contact_ids must contain no more than 500 ids")
        spec["contact_ids"] = [str(c) for c in body["contact_ids"]]
    if body.get("list_ids"):
        spec["list_rows"] = target_lists(body)
    status = body.get("status")
    if status and status not in (
        "active",
        "unsubscribed",
        "removed",
        "deleted",
        "not_set",
        "pending_confirmation",
        "temp_hold",
    ):
        raise errors.validation("status does not have a valid value")
    spec["status"] = status
    fields = body.get("fields") or list(bulk.EXPORT_FIELDS)
    bad = [f for f in fields if f not in bulk.EXPORT_FIELDS]
    if bad:
        raise errors.validation(f"fields contains unknown field(s): {', '.join(bad)}")
    if any(f.startswith("email_opt") for f in fields) and "email_address" not in fields:
        raise errors.validation("email_address must be exported with the email opt-in/out fields")
    spec["fields"] = fields
    spec["exclude"] = (body.get("exclude") or {}).get("contact_ids") or []
    return queue_activity(
        "contact_exports", spec, {"items_total_count": 0, "items_completed_count": 0}
    )


def get_export(file_export_id: str) -> Response:
    """GET /v3/contact_exports/{id}: the CSV of a completed export, streamed."""
    sb, acc = sandbox(), account()
    row = sb.store.one(
        "SELECT payload, id FROM activities WHERE account=? AND activity_id=? AND"
        " kind='contact_exports' AND applied=1",
        (acc, file_export_id),
    )
    if row is None:
        raise errors.not_found(f"Export {file_export_id} not found.")
    spec = json.loads(row[0])
    fields = spec["fields"]
    rid = row[1]
    cols = ", ".join("c." + bulk.EXPORT_FIELDS[f] for f in fields)
    dates = [i for i, f in enumerate(fields) if f in bulk.DATE_FIELDS]

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(fields)
        last = 0
        while True:
            chunk = sb.store.query(
                f"SELECT e.contact, {cols} FROM export_rows e JOIN contacts c ON"
                " c.id=e.contact WHERE e.activity=? AND e.contact > ? ORDER BY e.contact"
                " LIMIT 5000",
                (rid, last),
            )
            for r in chunk:
                vals = list(r[1:])
                for i in dates:
                    vals[i] = iso(vals[i])
                writer.writerow(["" if v is None else v for v in vals])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if len(chunk) < 5000:
                return
            last = chunk[-1][0]

    return Response(generate(), mimetype="text/csv")


def register(app: Flask) -> None:
    """Add the export routes."""
    app.add_url_rule(
        "/v3/activities/contact_exports", "cc_exports", contact_exports, methods=["POST"]
    )
    app.add_url_rule(
        "/v3/contact_exports/<file_export_id>", "cc_export_file", get_export, methods=["GET"]
    )
