"""The daily sync of one connection: CC unsubscribes, store changes, stats, segments, CC diff.

One SyncRun (kind "daily") per connection and period, keyed by its job id
``daily-<connection>-<YYYYMMDD>``; a retried job finds the same run and resumes from its
checkpoint. ``now`` is fixed once per run (injected or the clock at the first attempt), so a
resumed run evaluates the same rules. The connection's lock is held throughout; watermarks
and ``last_synced_at`` move only when the run completes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from rq import Retry
from sqlalchemy import func, or_, select, update

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import QuotaExceeded, ReauthorizationRequired
from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job, enqueue
from cc_storeplugin.models import Segment, SegmentTransition, StoreConnection, SyncRun, utcnow
from cc_storeplugin.platforms.magento.errors import MagentoUnauthorized
from cc_storeplugin.segments.evaluate import evaluate_segments
from cc_storeplugin.sync import incremental
from cc_storeplugin.sync.adapters import adapter_for
from cc_storeplugin.sync.cc_diff import apply_diff
from cc_storeplugin.sync.connections import mark_disconnected, paused_reason
from cc_storeplugin.sync.consent_sync import pull_cc_unsubscribes
from cc_storeplugin.sync.locks import AlreadyRunning, connection_lock
from cc_storeplugin.sync.runs import create_run, mark_complete, mark_running
from cc_storeplugin.sync.stats import recompute_stats

log = logging.getLogger(__name__)
PHASES = ("unsubscribes", "customers", "orders", "stats", "segments", "cc_diff")
UNSUBSCRIBE_OVERLAP = timedelta(minutes=15)
DEFAULT_HOUR_UTC = 3


def job_id_for(connection_id: int, period: str) -> str:
    return f"daily-{connection_id}-{period}"


def enqueue_daily_sync(connection_id: int, period: str, now_iso: str | None = None) -> Any:
    """Enqueue the period's sync once (the job id is unique per connection and period).

    A job of the period that ended without completing its run (lock busy, failed) is
    replaced, so a catch-up tick can run it again.
    """

    def submit() -> Any:
        return enqueue(
            run_daily_sync,
            connection_id,
            period,
            now_iso,
            queue="sync",
            job_id=job_id_for(connection_id, period),
            timeout="4h",
            retry=Retry(max=3, interval=[60, 300, 1800]),
        )

    job = submit()
    if job.get_status(refresh=True) in ENDED and not _period_complete(connection_id, period):
        job.delete()
        job = submit()
    return job


ENDED = {"finished", "failed", "stopped", "canceled"}


def _period_complete(connection_id: int, period: str) -> bool:
    status = db.session.scalar(
        select(SyncRun.status).where(SyncRun.job_id == job_id_for(connection_id, period))
    )
    return status == "COMPLETE"


@app_job
def dispatch_daily_syncs(now_iso: str | None = None, hour_utc: int | None = None) -> list[str]:
    """Cron tick (hourly): enqueue the daily sync of every active connection that has not
    synced since the last scheduled instant (today's ``hour_utc``, or yesterday's before it).

    So the tick at the daily hour fans out to all, and any later tick catches up connections
    whose sync was missed (cron down, lock busy, failure) or is older than 24 h.
    """
    now = datetime.fromisoformat(now_iso) if now_iso else datetime.now(UTC)
    hour = hour_utc if hour_utc is not None else _configured_hour()
    scheduled = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if scheduled > now:
        scheduled -= timedelta(days=1)
    period = scheduled.strftime("%Y%m%d")
    ids = db.session.scalars(
        select(StoreConnection.id)
        .where(
            StoreConnection.status == "active",
            or_(
                StoreConnection.last_synced_at.is_(None),
                StoreConnection.last_synced_at < scheduled,
            ),
        )
        .order_by(StoreConnection.id)
    ).all()
    jobs = []
    for connection_id in ids:
        enqueue_daily_sync(connection_id, period, now_iso)
        jobs.append(job_id_for(connection_id, period))
    return jobs


def _configured_hour() -> int:
    try:
        return int(current_app.config.get("DAILY_SYNC_HOUR_UTC", DEFAULT_HOUR_UTC))
    except RuntimeError:  # no app context
        return DEFAULT_HOUR_UTC


@app_job
def run_daily_sync(connection_id: int, period: str, now_iso: str | None = None) -> str:
    """Run (or resume) the connection's sync for ``period`` under its lock.

    Returns "complete", "already complete", "already running", "paused" or "disconnected".
    """
    try:
        with connection_lock(connection_id) as lock:
            return _run_locked(connection_id, period, now_iso, lock)
    except AlreadyRunning:
        log.info("daily sync of connection %s skipped: already running", connection_id)
        return "already running"


def _run_locked(connection_id: int, period: str, now_iso: str | None, lock: Any) -> str:
    conn = db.session.get(StoreConnection, connection_id)
    if conn is None:
        return "no such connection"
    run = _run_for(connection_id, period)
    if run.status == "COMPLETE":
        return "already complete"
    reason = paused_reason(conn)
    if reason:
        _set(run.id, phase=f"paused: {reason}")
        return "paused"
    mark_running(run.id)  # the run keeps its period's job id (set when it was created)
    cp = dict(run.checkpoint or {})
    cp.setdefault("now", now_iso or utcnow().isoformat())
    cp.setdefault("started", time.time())
    cp.setdefault("phase", PHASES[0])
    cp.setdefault("calls", {"store": 0, "constantcontact": 0})
    _save(run.id, cp)
    try:
        return _Run(run.id, connection_id, cp, lock).run()
    except MagentoUnauthorized:
        mark_disconnected(connection_id)
        _set(run.id, phase="paused: the store revoked access — reauthorize in Magento")
        return "disconnected"
    except ReauthorizationRequired:
        _set(run.id, phase="paused: Constant Contact authorization lapsed — sign in again")
        return "paused"
    except QuotaExceeded as exc:
        _set(run.id, phase=f"paused: Constant Contact daily quota reached ({exc})")
        raise


def _run_for(connection_id: int, period: str) -> SyncRun:
    """The period's run: found by its job id (a retry resumes it), else created."""
    job_id = job_id_for(connection_id, period)
    run = db.session.scalar(select(SyncRun).where(SyncRun.job_id == job_id))
    if run is None:
        run = create_run("daily", connection_id, period=period)
        run.job_id = job_id
        db.session.commit()
    return run


class _Run:
    """One attempt of a daily run: its checkpoint, clients and lock, and the phases in order."""

    def __init__(self, run_id: int, connection_id: int, cp: dict[str, Any], lock: Any) -> None:
        self.run_id, self.connection_id, self.cp, self.lock = run_id, connection_id, cp, lock
        conn = db.session.get(StoreConnection, connection_id)
        self.settings = dict(conn.settings or {})
        self.adapter = adapter_for(conn)
        self.cc = CCClient(conn.merchant_id)
        self.seen = {"store": 0, "constantcontact": 0}

    def count_calls(self) -> None:
        """Add this attempt's new calls to the run's totals (kept across retries)."""
        calls = {"store": int(getattr(self.adapter, "calls", 0) or 0)}
        calls["constantcontact"] = self.cc.calls
        for key, value in calls.items():
            self.cp["calls"][key] += value - self.seen[key]
            self.seen[key] = value

    def save(self, _: Any = None) -> None:
        """Persist the checkpoint (with the calls so far) and keep holding the lock."""
        self.count_calls()
        _save(self.run_id, self.cp)
        self.lock.refresh()

    def at(self, phase: str) -> bool:
        return PHASES.index(self.cp["phase"]) <= PHASES.index(phase)

    def advance(self, phase: str) -> None:
        self.cp["phase"] = phase
        self.save()

    def run(self) -> str:
        try:
            self._phases()
        except BaseException:
            # keep this attempt's calls in the totals; the checkpoint stays as last saved
            db.session.rollback()
            stored = db.session.scalar(select(SyncRun.checkpoint).where(SyncRun.id == self.run_id))
            self.count_calls()
            _save(self.run_id, {**(stored or {}), "calls": self.cp["calls"]})
            raise
        return self._complete()

    def _phases(self) -> None:
        cp, run_id, connection_id = self.cp, self.run_id, self.connection_id
        if self.at("unsubscribes"):
            _set(run_id, phase="unsubscribes")
            since = (self.settings.get("watermarks") or {}).get("unsubscribes")
            cp.setdefault("unsubscribes_from", utcnow().isoformat())
            since_at = datetime.fromisoformat(since) - UNSUBSCRIBE_OVERLAP if since else None
            cp["unsubscribed"] = pull_cc_unsubscribes(
                self.cc, connection_id, since=since_at, run_id=run_id
            )
            self.advance("customers")
        for kind in incremental.KINDS:
            if self.at(kind):
                _set(run_id, phase=kind)
                incremental.fetch_changed(self.adapter, connection_id, kind, cp, self.save, run_id)
                self.advance(PHASES[PHASES.index(kind) + 1])
        if self.at("stats"):
            _set(run_id, phase="stats")
            cp["stats_changed"] = recompute_stats(connection_id, cp["orders"]["affected"])
            db.session.commit()
            self.advance("segments")
        if self.at("segments"):
            _set(run_id, phase="segments")
            evaluate_segments(connection_id, datetime.fromisoformat(cp["now"]), run_id=run_id)
            self.advance("cc_diff")
        _set(run_id, phase="cc_diff")
        apply_diff(self.cc, connection_id, run_id, cp.setdefault("cc_diff", {}), self.save)

    def _complete(self) -> str:
        cp = self.cp
        self.count_calls()
        mark_complete(self.run_id, _totals(self.run_id, cp))
        incremental.save_watermarks(
            self.connection_id,
            {
                "customers": cp["customers"].get("max_seen"),
                "orders": cp["orders"].get("max_seen"),
                "unsubscribes": cp["unsubscribes_from"],
            },
        )
        conn = db.session.get(StoreConnection, self.connection_id)
        conn.last_synced_at = utcnow()
        db.session.commit()
        return "complete"


def _totals(run_id: int, cp: dict[str, Any]) -> dict[str, Any]:
    """{changed_customers, changed_orders, segments: {key: {entered, left}}, cc_calls, ...}."""
    moved = db.session.execute(
        select(Segment.key, SegmentTransition.action, func.count())
        .join(Segment, Segment.id == SegmentTransition.segment_id)
        .where(SegmentTransition.sync_run_id == run_id)
        .group_by(Segment.key, SegmentTransition.action)
    ).all()
    segments: dict[str, dict[str, int]] = {}
    for key, action, n in moved:
        segments.setdefault(key, {"entered": 0, "left": 0})[action] = n
    diff = cp.get("cc_diff") or {}
    return {
        "period": db.session.get(SyncRun, run_id).totals.get("period"),
        "now": cp["now"],
        "changed_customers": cp["customers"]["changed"],
        "changed_orders": cp["orders"]["changed"],
        "unsubscribed_in_cc": cp.get("unsubscribed", 0),
        "stats_changed": cp.get("stats_changed", 0),
        "segments": segments,
        "cc": {k: diff.get(k, 0) for k in CC_TOTALS},
        "rebuilt_segments": len(diff.get("rebuilt", [])),
        "cc_calls": cp["calls"]["constantcontact"],
        "store_calls": cp["calls"]["store"],
        "duration_s": round(time.time() - cp["started"], 1),
    }


CC_TOTALS = (
    "imports",
    "removal_calls",
    "exports",
    "added",
    "removed",
    "skipped_unsub",
    "ids_learned",
)


def _save(run_id: int, cp: dict[str, Any]) -> None:
    _set(run_id, checkpoint=dict(cp))


def _set(run_id: int, **values: Any) -> None:
    values["updated_at"] = datetime.now(UTC)
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))
    db.session.commit()
