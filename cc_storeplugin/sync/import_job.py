"""The initial import: store → mirror → segments → Constant Contact lists → system email.

Phases run in order and persist a checkpoint after every page and every CC activity
(``SyncRun.checkpoint``), so a retried job resumes where the killed one stopped. ``now``
is fixed once per run (stored in the checkpoint) so a resumed run evaluates the same rules.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from redis.exceptions import LockError
from redis.lock import Lock
from rq import Retry, get_current_job
from sqlalchemy import func, select, update

from cc_storeplugin.constantcontact import lists as cc_lists
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import QuotaExceeded, ReauthorizationRequired
from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job, enqueue
from cc_storeplugin.models import (
    Customer,
    Segment,
    SegmentMembership,
    StoreConnection,
    SyncError,
    SyncRun,
    utcnow,
)
from cc_storeplugin.platforms.base import CustomerRecord, OrderRecord
from cc_storeplugin.platforms.magento.errors import MagentoUnauthorized
from cc_storeplugin.queueing import queues
from cc_storeplugin.segments.builtin import ensure_builtin_segments
from cc_storeplugin.segments.evaluate import evaluate_segments
from cc_storeplugin.sync import customer_stage, mirror, order_stage
from cc_storeplugin.sync.adapters import adapter_for
from cc_storeplugin.sync.cc_export import export_segments
from cc_storeplugin.sync.connections import mark_disconnected, paused_reason
from cc_storeplugin.sync.consent_sync import pull_cc_unsubscribes, record_skipped_unsubscribed
from cc_storeplugin.sync.prefetch import prefetch
from cc_storeplugin.sync.runs import create_run, mark_complete, mark_running, quarantine
from cc_storeplugin.sync.stats import recompute_all_stats

log = logging.getLogger(__name__)
_RUN_LOCKS: dict[int, Lock] = {}


class RunBusy(RuntimeError):
    """Another attempt of the same run holds its lock."""


PHASES = ("customers", "orders", "stats", "segments", "cc_lists", "consent", "cc_export")
PHASES += ("kibo_list", "verify")


def start_import(connection_id: int, *, now: datetime | None = None) -> int:
    """Create the import's SyncRun and enqueue it once (unique job id per run)."""
    run = create_run("import", connection_id)
    enqueue_run(run.id, now=now)
    return run.id


def enqueue_run(run_id: int, *, resume: bool = False, now: datetime | None = None) -> None:
    """Enqueue (or, after a pause, re-enqueue) an import run; it resumes from its checkpoint.

    A resume gets its own job id (per second), since the paused job's id stays taken for
    its result TTL; two resumes in the same second collapse into one.
    """
    job_id = f"import-{run_id}" if not resume else f"import-{run_id}-resume-{int(time.time())}"
    enqueue(
        run_import,
        run_id,
        now.isoformat() if now else None,
        queue="imports",
        job_id=job_id,
        sync_run_id=run_id,
        timeout="12h",
        retry=Retry(max=5, interval=[15, 60, 300, 900, 1800]),
        meta={"final_failure": "cc_storeplugin.sync.import_job.import_failed"},
    )


@app_job
def run_import(run_id: int, now_iso: str | None = None) -> str:
    """Run (or resume) an import from its checkpoint."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.status == "COMPLETE":
        return "nothing to do"
    conn = run.connection
    reason = paused_reason(conn)
    if reason:
        _set(run_id, phase=f"paused: {reason}")
        return "paused"
    ttl = current_app.config.get("RUN_LOCK_TTL_S", 600)
    lock = queues.connection.lock(f"cc:run-lock:{run_id}", timeout=ttl, blocking=False)
    if not lock.acquire():
        # A previous attempt (e.g. a work horse whose worker died) is still going: retry later.
        raise RunBusy(f"run {run_id} is still being worked on by another attempt")
    _RUN_LOCKS[run_id] = lock
    try:
        return _locked_run(run_id, conn, now_iso)
    finally:
        _RUN_LOCKS.pop(run_id, None)
        with contextlib.suppress(LockError):
            lock.release()


def _locked_run(run_id: int, conn: StoreConnection, now_iso: str | None) -> str:
    run = db.session.get(SyncRun, run_id)
    job = get_current_job()
    mark_running(run_id, job.id if job else None)
    cp = dict(run.checkpoint or {})
    cp.setdefault("now", now_iso or utcnow().isoformat())
    cp.setdefault("started", time.time())
    cp.setdefault("phase", PHASES[0])
    cp.setdefault("calls", {"store": 0, "constantcontact": 0})
    _save(run_id, cp)
    if conn.status != "importing":
        conn.status = "importing"
        db.session.commit()
    try:
        return _run_phases(run_id, conn.id, cp)
    except MagentoUnauthorized:
        mark_disconnected(conn.id)
        _set(run_id, phase="paused: the store revoked access — reauthorize in Magento")
        return "disconnected"
    except ReauthorizationRequired:
        _set(run_id, phase="paused: Constant Contact authorization lapsed — sign in again")
        return "paused"
    except QuotaExceeded as exc:
        _set(run_id, phase=f"paused: Constant Contact daily quota reached ({exc})")
        raise


def _run_phases(run_id: int, connection_id: int, cp: dict[str, Any]) -> str:
    conn = db.session.get(StoreConnection, connection_id)
    now = datetime.fromisoformat(cp["now"])
    adapter = adapter_for(conn)
    cc = CCClient(conn.merchant_id)
    seen = {"store": 0, "constantcontact": 0}

    def count_calls() -> None:
        """Add this attempt's new calls to the run's totals (kept across retries)."""
        now_calls = {"store": _adapter_calls(adapter), "constantcontact": cc.calls}
        for key, value in now_calls.items():
            cp["calls"][key] += value - seen[key]
            seen[key] = value

    def at(phase: str) -> bool:
        return PHASES.index(cp["phase"]) <= PHASES.index(phase)

    def advance(phase: str) -> None:
        cp["phase"] = phase
        count_calls()
        _save(run_id, cp)

    if at("orders"):
        if _staged():
            _fetch_staged(run_id, cp, adapter, connection_id, at, advance)
        else:
            if at("customers"):
                _fetch(run_id, cp, "customers", adapter.customers, mirror.upsert_customers,
                       connection_id)  # fmt: skip
                advance("orders")
            _fetch(run_id, cp, "orders", adapter.orders, mirror.upsert_orders, connection_id)
        advance("stats")
    if at("stats"):
        _set(run_id, phase="stats")
        recompute_all_stats(connection_id)
        advance("segments")
    if at("segments"):
        _set(run_id, phase="segments")
        ensure_builtin_segments(connection_id)
        cp["segments"] = evaluate_segments(connection_id, now, run_id=run_id)
        advance("cc_lists")
    if at("cc_lists"):
        _set(run_id, phase="cc_lists")
        for seg in db.session.scalars(
            select(Segment).where(Segment.connection_id == connection_id)
        ):
            if not seg.cc_list_id:
                seg.cc_list_id = cc_lists.find_or_create_list(cc, seg.name)
                db.session.commit()
        advance("consent")
    if at("consent"):
        _set(run_id, phase="consent")
        pull_cc_unsubscribes(cc, connection_id, run_id=run_id)
        record_skipped_unsubscribed(connection_id, run_id)
        advance("cc_export")
    if at("cc_export"):
        _set(run_id, phase="cc_export")

        def save(export_cp: dict[str, Any]) -> None:
            cp["export"] = export_cp
            _save(run_id, cp)

        def progress(sent: int) -> None:
            _set(run_id, progress_done=sent, phase="cc_export")

        _set(run_id, progress_done=0, progress_total=_sendable(connection_id))
        cp["export"] = export_segments(
            cc, connection_id, run_id, cp.get("export") or {}, save, progress
        )
        advance("kibo_list")
    if at("kibo_list") and _platform(connection_id) == "kibo":
        # Kibo's "Sync Contacts": the opted-in customers also go to the list chosen on the
        # Settings tab (idempotent: a resumed run sends the same set again).
        from cc_storeplugin.sync.kibo_flush import export_opted_in

        _set(run_id, phase="kibo_list")
        cp["kibo_list"] = export_opted_in(cc, connection_id, run_id)
        advance("verify")
    totals = _totals(run_id, connection_id, cp, cc)
    count_calls()
    totals["api_calls"] = cp["calls"]
    # The email is written from the stored figures before the run is shown COMPLETE, so
    # whoever sees COMPLETE can also find the email.
    _set(run_id, totals=totals, phase="notify")
    _notify("send_import_completed", run_id)
    mark_complete(run_id, totals)
    conn = db.session.get(StoreConnection, connection_id)
    conn.status, conn.status_reason, conn.last_synced_at = "active", None, utcnow()
    db.session.commit()
    return "complete"


def _platform(connection_id: int) -> str:
    return db.session.get(StoreConnection, connection_id).platform


def _staged() -> bool:
    """PostgreSQL imports stage customer and order pages with COPY and merge them in batches."""
    return db.session.connection().dialect.name == "postgresql"


def _fetch_staged(run_id, cp, adapter, connection_id, at, advance) -> None:
    """PostgreSQL: customer, then order pages are each staged with their checkpoint, and one
    background session merges what is staged (customers first: orders need their contacts)
    every MERGE_EVERY rows while the next pages download; this thread merges the rest.

    Customers still being merged when their last page is in do not hold up the orders'
    download: the merger goes on with them while order pages are staged.
    """
    merger = order_stage.BackgroundMerger(connection_id, run_id, _merge_staged)
    pending = 0

    def staging(stage: Any) -> Any:
        def write(cid: int, records: Sequence[Any]) -> Any:
            nonlocal pending
            staged, result = stage(run_id, records)
            pending += staged
            if pending >= order_stage.MERGE_EVERY:
                merger.request()  # it sees this page once _fetch commits the checkpoint
                pending = 0
            return result

        return write

    try:
        if at("customers"):
            _fetch(run_id, cp, "customers", adapter.customers, staging(_stage_customers),
                   connection_id)  # fmt: skip
            advance("orders")
        _fetch(run_id, cp, "orders", adapter.orders, staging(_stage_orders), connection_id)
    finally:
        merger.close()
    _set(run_id, phase="orders")
    _merge_staged(connection_id, run_id)


def _stage_customers(run_id: int, records: Sequence[CustomerRecord]) -> tuple[int, Any]:
    result = customer_stage.stage_customers(run_id, records)
    return result["staged"], result  # the result's rejected records are quarantined


def _stage_orders(run_id: int, records: Sequence[OrderRecord]) -> tuple[int, None]:
    return order_stage.stage_orders(run_id, records), None


def _merge_staged(connection_id: int, run_id: int) -> int:
    """Merge every committed staged customer, then every staged order, in one transaction."""
    merged = customer_stage.merge_staged_customers(connection_id, run_id)
    return merged + order_stage.merge_staged_orders(connection_id, run_id)


def _fetch(run_id, cp, kind, pages, upsert, connection_id) -> None:
    """Stream one record kind page by page into the mirror, checkpointing after each page."""
    cursor = cp.get(f"{kind}_cursor")
    done = cp.get(f"{kind}_done", 0)
    _set(run_id, phase=kind)
    for page in prefetch(pages(cursor)):
        result = upsert(connection_id, page.records)
        rejected = list(page.rejected)
        if isinstance(result, dict):  # records the mirror refused (e.g. no email)
            rejected += [(f"{kind[:-1]} {ref}", why) for ref, why in result.get("rejected", [])]
        if rejected:
            _reject(run_id, connection_id, kind, rejected)
        done += len(page.records) + len(page.rejected)
        cp[f"{kind}_cursor"], cp[f"{kind}_done"] = page.cursor, done
        if page.total is not None:
            cp[f"{kind}_total"] = page.total
        total = cp.get("customers_total", 0) + cp.get("orders_total", 0)
        fetched = cp.get("customers_done", 0) + cp.get("orders_done", 0)
        _save(run_id, cp, progress_done=fetched, progress_total=total or None, phase=kind)


def _reject(run_id: int, connection_id: int, kind: str, rejected: list[tuple[str, str]]) -> None:
    items = [(None, ref, why) for ref, why in rejected]
    quarantine(connection_id, run_id, items, "missing_field", record_type=kind[:-1])


def _sendable(connection_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Customer)
        .where(Customer.connection_id == connection_id, Customer.consent_state != "unsubscribed")
    )


def _totals(run_id: int, connection_id: int, cp: dict[str, Any], cc: CCClient) -> dict[str, Any]:
    """The completion figures: lists in the store and in CC, skips by reason, calls, duration."""
    segs = list(
        db.session.scalars(
            select(Segment).where(Segment.connection_id == connection_id).order_by(Segment.id)
        )
    )
    counts = dict(
        db.session.execute(
            select(SegmentMembership.segment_id, func.count())
            .where(SegmentMembership.segment_id.in_([s.id for s in segs]))
            .group_by(SegmentMembership.segment_id)
        ).all()
    )
    in_cc = cc_lists.list_member_counts(cc, [s.cc_list_id for s in segs if s.cc_list_id])
    skipped = dict(
        db.session.execute(
            select(SyncError.reason, func.count())
            .where(SyncError.run_id == run_id)
            .group_by(SyncError.reason)
        ).all()
    )
    skipped["unsubscribed"] = db.session.scalar(
        select(func.count())
        .select_from(Customer)
        .where(Customer.connection_id == connection_id, Customer.consent_state == "unsubscribed")
    )
    return {
        "customers_in_store": cp.get("customers_total", cp.get("customers_done", 0)),
        "orders_in_store": cp.get("orders_total", cp.get("orders_done", 0)),
        "contacts": db.session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.connection_id == connection_id)
        ),
        "lists": [
            {
                "key": s.key,
                "name": s.name,
                "cc_list_id": s.cc_list_id,
                "members_in_store": counts.get(s.id, 0),
                "members_in_cc": in_cc.get(s.cc_list_id, 0),
            }
            for s in segs
        ],
        "skipped": skipped,
        "contacts_sent": (cp.get("export") or {}).get("sent", 0),
        "cc_activities": (cp.get("export") or {}).get("activities", 0),
        **({"kibo_list": cp["kibo_list"]} if "kibo_list" in cp else {}),
        "api_calls": cp["calls"],
        "duration_s": round(time.time() - cp["started"], 1),
    }


def import_failed(run_id: int, message: str) -> None:
    """Final failure (no retry left): the connection shows it and the merchant is emailed."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.connection is None:
        return
    run.connection.status = "failed"
    run.connection.status_reason = f"import failed: {message}"
    if _staged():  # a new import starts over; its pages are downloaded again
        customer_stage.discard_staged(run_id)
        order_stage.discard_staged(run_id)
    db.session.commit()
    _notify("send_import_failed", run_id)


def _notify(name: str, run_id: int) -> None:
    """Send a system email; a mail outage is logged, it never fails the import itself."""
    from cc_storeplugin.notify import imports as emails

    try:
        getattr(emails, name)(run_id)
    except Exception:  # SMTP down, bad address...: the run's outcome stands
        log.exception("could not send %s for run %s", name, run_id)


def _adapter_calls(adapter: Any) -> int:
    return int(getattr(adapter, "calls", 0) or 0)


def _save(run_id: int, cp: dict[str, Any], **values: Any) -> None:
    """Persist the checkpoint (and any progress ``values``, in the same UPDATE), first
    proving this attempt still owns the run."""
    lock = _RUN_LOCKS.get(run_id)
    if lock is not None:
        lock.extend(lock.timeout, replace_ttl=True)  # LockNotOwnedError stops a stale attempt
    _set(run_id, checkpoint=dict(cp), **values)


def _set(run_id: int, **values: Any) -> None:
    values["updated_at"] = datetime.now(UTC)
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))
    db.session.commit()
