"""The work behind bulk activities, in set-based SQL: JSON import, list membership changes,
and the row query of a contact export. Called with the store lock held, inside a transaction.

Joins from an activity's own rows (temp tables ``imp``, ``srcids``) to ``contacts`` are
written ``CROSS JOIN``, which SQLite never reorders: without statistics it otherwise chose
to walk the whole account's contacts and probe the temp table, so a 500-id removal cost a
scan of 1.29M contacts (seconds each) instead of 500 index lookups.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import Store, valid_email

IMPORT_FIELDS = (
    "first_name",
    "last_name",
    "job_title",
    "company_name",
    "birthday_month",
    "birthday_day",
    "anniversary",
)
MAX_ERRORS = 100


def apply_import(
    store: Store, conn: sqlite3.Connection, acc: str, payload: dict[str, Any], now: float
) -> tuple[dict[str, int], list[str]]:
    """Create/update contacts from import_data and add them to the lists; returns counts."""
    rows = payload["import_data"]
    list_rows: list[int] = payload["list_rows"]
    errs: list[str] = []
    error_count = 0
    merged: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        email = row.get("email") if isinstance(row, dict) else None
        email = email.strip() if isinstance(email, str) else ""
        if not valid_email(email, 50):
            error_count += 1
            if len(errs) < MAX_ERRORS:
                errs.append(
                    f"Row {i + 1}: invalid email address '{email}'"
                    if email
                    else f"Row {i + 1}: missing email address"
                )
            continue
        vals = [row.get(f) if row.get(f) not in ("", None) else None for f in IMPORT_FIELDS]
        key = email.lower()
        prev = merged.get(key)
        if prev is None:
            merged[key] = [email, *vals]
        else:
            merged[key] = [
                prev[0],
                *[v if v is not None else p for v, p in zip(vals, prev[1:], strict=True)],
            ]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS imp (email_key TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM imp")
    conn.executemany("INSERT INTO imp VALUES (?)", ((k,) for k in merged))
    existing = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT c.email_key, c.id, c.permission, c.opt_out_source FROM imp"
            " CROSS JOIN contacts c ON c.account=? AND c.email_key=imp.email_key",
            (acc,),
        )
    }
    new_keys = [k for k in merged if k not in existing]
    ids = store.new_ids(len(new_keys))
    conn.executemany(
        "INSERT INTO contacts (account, contact_id, email_key, address, first_name, last_name,"
        " job_title, company_name, birthday_month, birthday_day, anniversary, permission,"
        " opt_in_source, opt_in_date, create_source, update_source, created_at, updated_at,"
        " email_created_at, email_updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,'implicit',"
        "'Account',?,'Account','Account',?,?,?,?)",
        (
            (acc, cid, k, *merged[k], now, now, now, now, now)
            for cid, k in zip(ids, new_keys, strict=True)
        ),
    )
    skipped = [
        k for k, (_i, perm, src) in existing.items() if perm == "unsubscribed" and src == "Contact"
    ]
    skip = set(skipped)
    sets = ", ".join(f"{f}=COALESCE(?, {f})" for f in IMPORT_FIELDS)
    conn.executemany(
        f"UPDATE contacts SET {sets}, deleted_at=NULL, update_source='Account', updated_at=?,"
        " opt_in_date=CASE WHEN permission='unsubscribed' THEN ? ELSE opt_in_date END,"
        " opt_out_source=CASE WHEN permission='unsubscribed' THEN NULL ELSE opt_out_source END,"
        " opt_out_date=CASE WHEN permission='unsubscribed' THEN NULL ELSE opt_out_date END,"
        " opt_out_reason=CASE WHEN permission='unsubscribed' THEN NULL ELSE opt_out_reason END,"
        " permission=CASE WHEN permission='unsubscribed' THEN 'implicit' ELSE permission END"
        " WHERE id=?",
        ((*merged[k][1:], now, now, existing[k][0]) for k in existing if k not in skip),
    )
    targets = [
        r[0]
        for r in conn.execute(
            "SELECT c.id FROM imp CROSS JOIN contacts c"
            " ON c.account=? AND c.email_key=imp.email_key",
            (acc,),
        )
    ]
    skip_ids = {existing[k][0] for k in skip}
    pairs = [(lr, cid) for cid in targets if cid not in skip_ids for lr in list_rows]
    conn.executemany("INSERT OR IGNORE INTO memberships VALUES (?,?)", pairs)
    for k in skipped[: max(0, MAX_ERRORS - len(errs))]:
        errs.append(f"{merged[k][0]}: contact has unsubscribed and cannot be added to a list")
    status = {
        "items_total_count": len(rows),
        "items_completed_count": len(rows),
        "person_count": len(merged) - len(skip),
        "error_count": error_count,
        "correctable_count": error_count,
        "cannot_add_to_list_count": len(skip),
        "list_count": len(list_rows),
    }
    return status, errs


def _source_table(
    conn: sqlite3.Connection,
    acc: str,
    source: dict[str, Any],
    exclude: list[str],
    active_only: bool,
) -> tuple[int, list[str]]:
    """Fill TEMP table src(contact) from an activity source; returns (count, errors)."""
    errs: list[str] = []
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS src (contact INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM src")
    live = "c.deleted_at IS NULL" + (" AND c.permission!='unsubscribed'" if active_only else "")
    if source.get("contact_ids"):
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS srcids (cid TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM srcids")
        conn.executemany(
            "INSERT OR IGNORE INTO srcids VALUES (?)", ((str(c),) for c in source["contact_ids"])
        )
        conn.execute(
            "INSERT OR IGNORE INTO src SELECT c.id FROM srcids CROSS JOIN contacts c ON"
            f" c.contact_id=srcids.cid WHERE c.account=? AND {live}",
            (acc,),
        )
        found = {
            r[0]
            for r in conn.execute(
                "SELECT c.contact_id FROM srcids CROSS JOIN contacts c ON c.contact_id=srcids.cid"
                " WHERE c.account=?",
                (acc,),
            )
        }
        errs += [f"Contact {c} not found" for c in source["contact_ids"] if str(c) not in found]
    elif source.get("list_rows"):
        marks = ",".join("?" * len(source["list_rows"]))
        conn.execute(
            "INSERT OR IGNORE INTO src SELECT m.contact FROM memberships m JOIN"
            f" contacts c ON c.id=m.contact WHERE m.list IN ({marks}) AND {live}",
            source["list_rows"],
        )
    elif source.get("all_active_contacts"):
        conn.execute(
            "INSERT INTO src SELECT id FROM contacts c WHERE account=? AND"
            " c.deleted_at IS NULL AND c.permission IN ('implicit','explicit')",
            (acc,),
        )
    if exclude:
        conn.executemany(
            "DELETE FROM src WHERE contact=(SELECT id FROM contacts WHERE contact_id=?)",
            ((str(c),) for c in exclude),
        )
    return conn.execute("SELECT COUNT(*) FROM src").fetchone()[0], errs


def apply_membership(
    conn: sqlite3.Connection, acc: str, payload: dict[str, Any], now: float, add: bool
) -> tuple[dict[str, int], list[str]]:
    """Add or remove the source contacts to/from the target lists."""
    n, errs = _source_table(conn, acc, payload["source"], payload.get("exclude", []), add)
    conn.execute("UPDATE contacts SET updated_at=? WHERE id IN (SELECT contact FROM src)", (now,))
    for lr in payload["list_rows"]:
        if add:
            conn.execute("INSERT OR IGNORE INTO memberships SELECT ?, contact FROM src", (lr,))
        else:
            conn.execute(
                "DELETE FROM memberships WHERE list=? AND contact IN (SELECT contact FROM src)",
                (lr,),
            )
    return {
        "items_total_count": n,
        "items_completed_count": n,
        "list_count": len(payload["list_rows"]),
    }, errs


EXPORT_FIELDS = {
    "contact_id": "contact_id",
    "email_address": "address",
    "first_name": "first_name",
    "last_name": "last_name",
    "job_title": "job_title",
    "company_name": "company_name",
    "birthday_month": "birthday_month",
    "birthday_day": "birthday_day",
    "anniversary": "anniversary",
    "email_permission_status": "permission",
    "email_optin_source": "opt_in_source",
    "email_optin_date": "opt_in_date",
    "email_optout_source": "opt_out_source",
    "email_optout_date": "opt_out_date",
    "email_optout_reason": "opt_out_reason",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
DATE_FIELDS = {"email_optin_date", "email_optout_date", "created_at", "updated_at"}


def export_where(acc: str, spec: dict[str, Any]) -> tuple[str, list[Any]]:
    """WHERE clause (over contacts c) selecting the rows of an export spec."""
    conds, params = ["+c.account=?"], [acc]
    status = spec.get("status")
    if status in ("removed", "deleted"):
        conds.append("c.deleted_at IS NOT NULL")
    else:
        conds.append("c.deleted_at IS NULL")
        if status == "active":
            conds.append("c.permission IN ('implicit','explicit')")
        elif status:
            conds.append("c.permission=?")
            params.append(status)
    if spec.get("contact_ids"):
        marks = ",".join("?" * len(spec["contact_ids"]))
        conds.append(f"c.contact_id IN ({marks})")
        params += [str(x) for x in spec["contact_ids"]]
    if spec.get("list_rows"):
        marks = ",".join("?" * len(spec["list_rows"]))
        conds.append(f"c.id IN (SELECT contact FROM memberships WHERE list IN ({marks}))")
        params += spec["list_rows"]
    if spec.get("exclude"):
        marks = ",".join("?" * len(spec["exclude"]))
        conds.append(f"c.contact_id NOT IN ({marks})")
        params += [str(x) for x in spec["exclude"]]
    return " AND ".join(conds), params
