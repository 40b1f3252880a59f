"""A customer's page in the dashboard: mirror facts, segments and the transition log.

The log reads as lines like "Recent → Lapsed on 2026-11-23: last purchase 2026-07-25,
121 days ago": within a family of built-in segments that exclude each other (Recent /
Lapsed, First-time / Repeat) entering one is shown as a move from the one the customer last
left; everything else reads "Entered X on …" / "Left X on …".
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request

from cc_storeplugin.api.customers import (
    current_segments,
    customer_of,
    search_customers,
)
from cc_storeplugin.models import normalize_email
from cc_storeplugin.segments.builtin import BUILTINS
from cc_storeplugin.segments.evaluate import transitions_for
from cc_storeplugin.web.session import login_required, owned_connection

bp = Blueprint("customers", __name__)

PER_PAGE = 50
# Segments a customer moves between (never in two of one family at once).
FAMILIES = ({"recent", "lapsed"}, {"first_time", "repeat"})


def _label(t: dict[str, Any]) -> str:
    builtin = BUILTINS.get(t["segment_key"])
    return (
        builtin.label
        if builtin and t["segment_name"].endswith(builtin.list_suffix)
        else (t["segment_name"])
    )


def _family(key: str) -> frozenset[str] | None:
    return next((frozenset(f) for f in FAMILIES if key in f), None)


def _detail(reason: str) -> str:
    """The 'why' of a reason text ('left Recent: last purchase …' → 'last purchase …')."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


def readable_log(transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The transition log (oldest first, as ``transitions_for`` gives it) as readable lines,
    newest first: ``{"text", "occurred_at", "run_id"}``.

    One evaluation (same instant and run) is read as a whole: its "left" entries first, so a
    "left Lapsed" and an "entered Recent" of one run make one "Lapsed → Recent" line.
    """
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for t in transitions:
        groups.setdefault((t["occurred_at"], t["sync_run_id"]), []).append(t)
    lines: list[dict[str, Any]] = []
    last_left: dict[frozenset[str], str] = {}  # family → label of the segment last left

    def line(t: dict[str, Any], head: str) -> None:
        day = t["occurred_at"].strftime("%Y-%m-%d")
        text = f"{head} on {day}: {_detail(t['reason'])}"
        lines.append({"text": text, "occurred_at": t["occurred_at"], "run_id": t["sync_run_id"]})

    for group in groups.values():
        entering = {_family(t["segment_key"]) for t in group if t["action"] == "entered"}
        for t in (t for t in group if t["action"] == "left"):
            family = _family(t["segment_key"])
            if family is not None:
                last_left[family] = _label(t)
                if family in entering:
                    continue  # shown as the move on the "entered" line
            line(t, f"Left {_label(t)}")
        for t in (t for t in group if t["action"] == "entered"):
            family, label = _family(t["segment_key"]), _label(t)
            came_from = last_left.pop(family, None) if family is not None else None
            if came_from and came_from != label:
                line(t, f"{came_from} \u2192 {label}")
            else:
                line(t, f"Entered {label}")
    return list(reversed(lines))


@bp.get("/connections/<int:connection_id>/customers")
@login_required
def search(connection_id: int):
    """Find a customer by the start of their email address."""
    conn = owned_connection(connection_id)
    email = request.args.get("email", "")[:320]
    try:
        page = max(1, min(int(request.args.get("page", 1)), 100_000))
    except ValueError:
        abort(400, description="page must be a whole number")
    rows, more = search_customers(conn.id, email, page, PER_PAGE)
    return render_template(
        "customers/search.html",
        conn=conn,
        email=normalize_email(email),
        customers=rows,
        page=page,
        has_more=more,
    )


@bp.get("/connections/<int:connection_id>/customers/<int:customer_id>")
@login_required
def customer(connection_id: int, customer_id: int):
    """One customer: what the mirror knows, the lists they are in, and how they got there."""
    conn = owned_connection(connection_id)
    row = customer_of(conn.id, customer_id)
    return render_template(
        "customers/customer.html",
        conn=conn,
        customer=row,
        segments=current_segments(row.id),
        log=readable_log(transitions_for(row.id, connection_id=conn.id)),
    )
