"""The skeleton's end-to-end check: a job that goes through the queue and writes the DB."""

from __future__ import annotations

from rq import get_current_job
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job
from cc_storeplugin.models import Customer, Merchant, StoreConnection
from cc_storeplugin.sync.runs import mark_complete, mark_running


@app_job
def run_smoke(run_id: int) -> dict[str, int]:
    """Count what the mirror holds and complete the run with those figures."""
    job = get_current_job()
    mark_running(run_id, job.id if job else None)
    totals = {
        "merchants": db.session.scalar(select(func.count()).select_from(Merchant)),
        "connections": db.session.scalar(select(func.count()).select_from(StoreConnection)),
        "customers": db.session.scalar(select(func.count()).select_from(Customer)),
    }
    mark_complete(run_id, totals)
    return totals
