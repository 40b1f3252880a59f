"""The initial import job. Until the import pipeline lands it records the request: it reads
the store's customer and order totals (one page of one row each) so the run shows what is
to come, and leaves the run QUEUED for the pipeline.
"""

from __future__ import annotations

from rq import get_current_job

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job
from cc_storeplugin.models import SyncRun
from cc_storeplugin.platforms.magento.errors import MagentoUnauthorized
from cc_storeplugin.sync.connections import mark_disconnected, paused_reason
from cc_storeplugin.sync.magento_api import client_for


@app_job
def record_import_request(run_id: int) -> dict[str, int] | str:
    """Record the import request with the store's totals; pause if the store revoked access."""
    run = db.session.get(SyncRun, run_id)
    if run is None:
        return "gone"
    conn = run.connection
    reason = paused_reason(conn)
    if reason:
        run.phase = f"paused: {reason}"
        db.session.commit()
        return "paused"
    job = get_current_job()
    run.job_id = run.job_id or (job.id if job else None)
    client = client_for(conn)
    try:
        totals = {
            "customers_in_store": client.search("customers/search", page_size=1, current_page=1)[
                "total_count"
            ],
            "orders_in_store": client.search("orders", page_size=1, current_page=1)["total_count"],
        }
    except MagentoUnauthorized:
        mark_disconnected(conn.id)
        run.phase = "paused: store access revoked"
        db.session.commit()
        return "disconnected"
    run.totals = {**(run.totals or {}), **totals}
    run.progress_total = totals["customers_in_store"]
    run.phase = "requested"
    db.session.commit()
    return totals
