"""Custom segments: create / update / delete / preview, and the job that syncs them after a save.

A custom segment is stored like a built-in: ``Segment.name`` is its CC list name
("Magento – VIP"), so the daily sync's CC step finds or creates that list on its first run.
Saving enqueues :func:`sync_custom_segments`, which evaluates the connection's custom segments
and applies the diff to CC under the connection's lock (pieces of the daily sync, reused); a
busy lock leaves the work to the next daily sync, which evaluates every segment anyway.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, false, func, select, update
from sqlalchemy.exc import IntegrityError

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job, enqueue
from cc_storeplugin.models import (
    Customer,
    Segment,
    SegmentMembership,
    SegmentTransition,
    StoreConnection,
    SyncRun,
    utcnow,
)
from cc_storeplugin.models.segments import BUILTIN_KEYS
from cc_storeplugin.segments import builtin
from cc_storeplugin.segments.custom_sql import compile_rule
from cc_storeplugin.segments.evaluate import display_name, evaluate_segments

log = logging.getLogger(__name__)
SAMPLE_SIZE = 10


class SegmentFieldError(ValueError):
    """Input that passed the schema but conflicts with stored data (e.g. a taken name)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("invalid segment")
        self.fields = fields


def list_name_for(platform: str, name: str) -> str:
    """The CC list name of a custom segment: "<Platform> – <name>", like the built-ins'."""
    return f"{builtin.PLATFORM_LABELS[platform]} \u2013 {name}"


def segments_of(connection_id: int) -> list[dict[str, Any]]:
    """Every segment of the connection (built-ins first) with its member count."""
    builtin.ensure_builtin_segments(connection_id)
    counts = (
        select(SegmentMembership.segment_id, func.count().label("n"))
        .group_by(SegmentMembership.segment_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Segment, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.segment_id == Segment.id)
        .where(Segment.connection_id == connection_id)
        .order_by(case((Segment.kind == "builtin", 0), else_=1), Segment.id)
    ).all()
    return [describe(seg, n) for seg, n in rows]


def segment_of(connection_id: int, segment_id: int) -> Segment | None:
    """The connection's segment ``segment_id``; None when it belongs to another connection."""
    return db.session.scalar(
        select(Segment).where(Segment.id == segment_id, Segment.connection_id == connection_id)
    )


def describe(seg: Segment, members: int | None = None) -> dict[str, Any]:
    """A segment as the API shows it."""
    if members is None:
        members = db.session.scalar(
            select(func.count())
            .select_from(SegmentMembership)
            .where(SegmentMembership.segment_id == seg.id)
        )
    return {
        "id": seg.id,
        "key": seg.key,
        "kind": seg.kind,
        "name": display_name(seg.name),
        "list_name": seg.name,
        "read_only": seg.kind == "builtin",
        "rule": seg.rule,
        "cc_list_id": seg.cc_list_id,
        "members": members,
        "evaluated_at": seg.evaluated_at,
        "created_at": seg.created_at,
        "updated_at": seg.updated_at,
    }


def _check_name(connection: StoreConnection, name: str, segment_id: int | None) -> str:
    """The list name for ``name``; a field error when a built-in's list or another segment
    of the connection has it (compared without case, as people read list names)."""
    list_name = list_name_for(connection.platform, name)
    builtin_names = {builtin.list_name(connection.platform, key).lower() for key in BUILTIN_KEYS}
    taken = list_name.lower() in builtin_names or db.session.scalar(
        select(Segment.id).where(
            Segment.connection_id == connection.id,
            func.lower(Segment.name) == list_name.lower(),
            Segment.id != (segment_id or 0),
        )
    )
    if taken:
        raise SegmentFieldError({"name": [f"a segment or list named {name!r} already exists"]})
    return list_name


def _commit_or_conflict(name: str) -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:  # a concurrent save took the name first
        db.session.rollback()
        raise SegmentFieldError({"name": [f"a segment named {name!r} already exists"]}) from exc


def create_segment(connection: StoreConnection, data: dict[str, Any]) -> Segment:
    """Save a new custom segment (``data`` loaded by ``SegmentIn``); its list comes on sync."""
    seg = Segment(
        connection_id=connection.id,
        key=f"custom-{secrets.token_hex(6)}",
        name=_check_name(connection, data["name"], None),
        kind="custom",
        rule=data["rule"],
    )
    db.session.add(seg)
    _commit_or_conflict(data["name"])
    return seg


def update_segment(connection: StoreConnection, seg: Segment, data: dict[str, Any]) -> Segment:
    """Change a custom segment's name and/or rule. A new name means a new CC list (found or
    created on the next sync and filled); the old list is left in CC as it is."""
    if "name" in data:
        list_name = _check_name(connection, data["name"], seg.id)
        if list_name != seg.name:
            seg.name, seg.cc_list_id = list_name, None
    if "rule" in data:
        seg.rule = data["rule"]
    seg.updated_at = utcnow()
    _commit_or_conflict(data.get("name", seg.name))
    return seg


def delete_segment(seg: Segment) -> dict[str, Any]:
    """Delete a custom segment with its memberships and log; its CC list is left alone."""
    gone = {"id": seg.id, "name": display_name(seg.name), "cc_list_id": seg.cc_list_id}
    gone["cc_list"] = (
        f"The Constant Contact list {seg.name!r} was left as it is; delete it in Constant "
        "Contact if you no longer need it."
        if seg.cc_list_id
        else "No Constant Contact list had been created for it yet."
    )
    db.session.execute(delete(SegmentMembership).where(SegmentMembership.segment_id == seg.id))
    db.session.execute(delete(SegmentTransition).where(SegmentTransition.segment_id == seg.id))
    db.session.execute(delete(Segment).where(Segment.id == seg.id))
    db.session.commit()
    return {**gone, "deleted": True}


def preview(connection_id: int, rule: dict[str, Any], now: datetime | None = None) -> dict:
    """Members a (validated) rule would have at one instant: count and a sample, nothing saved."""
    now = now or utcnow()
    matches = func.coalesce(compile_rule(rule, now), false())
    scope = (Customer.connection_id == connection_id, matches)
    unsubscribed = func.coalesce(
        func.sum(case((Customer.consent_state == "unsubscribed", 1), else_=0)), 0
    )
    count, unsub = db.session.execute(select(func.count(), unsubscribed).where(*scope)).one()
    sample = db.session.execute(
        select(
            Customer.id,
            Customer.email,
            Customer.first_name,
            Customer.last_name,
            Customer.consent_state,
            Customer.purchase_count,
            Customer.total_spent,
            Customer.last_purchase_at,
        )
        .where(*scope)
        .order_by(Customer.id)
        .limit(SAMPLE_SIZE)
    ).all()
    return {
        "now": now,
        "count": count,
        "unsubscribed": int(unsub),
        "sample": [row._asdict() for row in sample],
    }


# --- the sync after a save ---------------------------------------------------------------

TRIGGER = "custom segments saved"


def enqueue_segment_sync(connection_id: int) -> int:
    """Queue the sync of the connection's custom segments; returns its run's id.

    The run (kind "daily", job id ``segments-<connection>-<run>``) keeps a checkpoint, so a
    retried job resumes it instead of losing the diff it already evaluated.
    """
    from cc_storeplugin.sync.runs import create_run

    run = create_run("daily", connection_id, trigger=TRIGGER)
    run.job_id = f"segments-{connection_id}-{run.id}"
    db.session.commit()
    enqueue(
        sync_custom_segments,
        connection_id,
        run.id,
        queue="sync",
        job_id=run.job_id,
        timeout="1h",
        sync_run_id=run.id,
    )
    return run.id


@app_job
def sync_custom_segments(connection_id: int, run_id: int, now_iso: str | None = None) -> str:
    """Evaluate the connection's custom segments and bring their CC lists in step, under the
    connection's lock: CC unsubscribes first, then evaluation, then the daily sync's CC step.

    Returns "complete", "already complete", or "skipped: <why>" (lock busy: the next daily
    sync evaluates every segment; not active: the import in progress includes them).
    """
    from cc_storeplugin.sync.locks import AlreadyRunning, connection_lock

    try:
        with connection_lock(connection_id) as lock:
            return _sync_locked(connection_id, run_id, now_iso, lock)
    except AlreadyRunning:
        why = "another sync of this connection was running; the next daily sync includes them"
        log.info("custom segments of connection %s: %s", connection_id, why)
        return _skip(run_id, why)


def _sync_locked(connection_id: int, run_id: int, now_iso: str | None, lock: Any) -> str:
    from cc_storeplugin.sync.cc_diff import apply_diff
    from cc_storeplugin.sync.connections import paused_reason
    from cc_storeplugin.sync.consent_sync import pull_cc_unsubscribes
    from cc_storeplugin.sync.daily_job import UNSUBSCRIBE_OVERLAP
    from cc_storeplugin.sync.runs import mark_complete, mark_running

    run = db.session.get(SyncRun, run_id)
    if run is None or run.connection_id != connection_id or run.status == "COMPLETE":
        return "already complete"
    conn = db.session.get(StoreConnection, connection_id)
    if conn is None or conn.status != "active":
        return _skip(run_id, "the connection is not active; its import includes every segment")
    reason = paused_reason(conn)
    if reason:
        return _skip(run_id, reason)
    mark_running(run_id)
    cp = dict(run.checkpoint or {})
    cp.setdefault("now", now_iso or utcnow().isoformat())
    cp.setdefault("phase", "unsubscribes")
    cc = CCClient(conn.merchant_id)

    def save(_: Any = None) -> None:
        db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(checkpoint=dict(cp)))
        db.session.commit()
        lock.refresh()

    if cp["phase"] == "unsubscribes":
        since = ((conn.settings or {}).get("watermarks") or {}).get("unsubscribes")
        since_at = datetime.fromisoformat(since) - UNSUBSCRIBE_OVERLAP if since else None
        cp["unsubscribed"] = pull_cc_unsubscribes(cc, connection_id, since=since_at, run_id=run_id)
        cp["phase"] = "segments"
        save()
    if cp["phase"] == "segments":
        ids = db.session.scalars(
            select(Segment.id).where(
                Segment.connection_id == connection_id, Segment.kind == "custom"
            )
        ).all()
        now = datetime.fromisoformat(cp["now"])
        cp["segments"] = evaluate_segments(connection_id, now, run_id=run_id, segment_ids=ids)
        cp["phase"] = "cc_diff"
        save()
    state = apply_diff(cc, connection_id, run_id, cp.setdefault("cc_diff", {}), save)
    totals = {
        "trigger": TRIGGER,
        "now": cp["now"],
        "unsubscribed_in_cc": cp.get("unsubscribed", 0),
        "segments": cp.get("segments", {}),
        "cc": {k: state.get(k, 0) for k in ("imports", "removal_calls", "added", "removed")},
        "cc_calls": cc.calls,
    }
    mark_complete(run_id, totals)
    return "complete"


def _skip(run_id: int, why: str) -> str:
    """Close a run that had nothing to do here (its work falls to another sync)."""
    from cc_storeplugin.sync.runs import mark_complete

    mark_complete(run_id, {"trigger": TRIGGER, "skipped": why})
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(phase="skipped"))
    db.session.commit()
    return f"skipped: {why}"
