"""SyncRun bookkeeping: the durable record of a job's status, progress and failures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, update

from cc_storeplugin.extensions import db
from cc_storeplugin.models import SyncError, SyncRun, utcnow


def create_run(kind: str, connection_id: int | None = None, **totals: Any) -> SyncRun:
    """A new QUEUED run; its id goes into the job's args and meta."""
    run = SyncRun(kind=kind, connection_id=connection_id, status="QUEUED", totals=dict(totals))
    db.session.add(run)
    db.session.commit()
    return run


def mark_running(run_id: int, job_id: str | None = None) -> SyncRun:
    """Start (or resume, on a retry) a run; counts the attempt."""
    run = db.session.get(SyncRun, run_id)
    if run is None:
        raise LookupError(f"sync run {run_id} does not exist")
    run.status = "RUNNING"
    run.attempts += 1
    run.started_at = run.started_at or utcnow()
    if job_id:
        run.job_id = job_id
    db.session.commit()
    return run


def set_progress(
    run_id: int, done: int, total: int | None = None, phase: str | None = None
) -> None:
    """Persist live progress in one UPDATE (cheap enough to call after every page)."""
    values: dict[str, Any] = {"progress_done": done, "updated_at": utcnow()}
    if total is not None:
        values["progress_total"] = total
    if phase is not None:
        values["phase"] = phase
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))
    db.session.commit()


def mark_complete(run_id: int, totals: dict[str, Any] | None = None) -> None:
    """Finish a run successfully."""
    values: dict[str, Any] = {"status": "COMPLETE", "finished_at": utcnow(), "error_message": None}
    if totals is not None:
        values["totals"] = totals
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))
    db.session.commit()


def note_attempt_failed(run_id: int, message: str) -> None:
    """An attempt failed and will be retried: keep the reason visible, status unchanged."""
    db.session.rollback()
    note = f"retrying after: {message}"
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(error_message=note))
    db.session.commit()


def mark_failed(run_id: int, message: str) -> None:
    """The last attempt failed: the run is FAILED with the reason."""
    db.session.rollback()
    db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(status="FAILED", error_message=message, finished_at=utcnow())
    )
    db.session.commit()


def quarantine(
    connection_id: int,
    run_id: int,
    items: list[tuple[int | None, str, str]],
    reason: str,
    *,
    record_type: str = "contact",
) -> None:
    """Quarantine records as SyncErrors, once per run and record (a resumed run does not
    double them). ``items`` are (customer id or None, record ref, message)."""
    refs = [email for _, email, _ in items]
    db.session.execute(
        delete(SyncError).where(
            SyncError.run_id == run_id, SyncError.reason == reason, SyncError.record_ref.in_(refs)
        )
    )
    db.session.execute(
        insert(SyncError),
        [
            {
                "run_id": run_id,
                "connection_id": connection_id,
                "record_type": record_type,
                "record_ref": email,
                "reason": reason,
                "message": message[:1000],
            }
            for _, email, message in items
        ],
    )
    db.session.commit()
