"""A lapsed Constant Contact authorization pauses the merchant's jobs and asks to reconnect."""

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection, SyncRun
from cc_storeplugin.queueing import queues
from cc_storeplugin.sync.connections import resume_paused_runs
from cc_storeplugin.sync.import_job import run_import
from cc_storeplugin.sync.runs import create_run


def test_reconnect_prompt_and_paused_jobs_then_resume(signed_in, merchant):
    conn = StoreConnection(merchant=merchant, platform="magento", status="importing")
    db.session.add(conn)
    merchant.cc_auth_state = "reconnect_required"
    db.session.commit()
    conn_id, merchant_id = conn.id, merchant.id
    page = signed_in.get("/").get_data(as_text=True)
    assert 'id="reconnect"' in page and "paused" in page

    run_id = create_run("import", conn_id).id
    assert run_import(run_id) == "paused"  # no work, no failure
    run = db.session.get(SyncRun, run_id)
    assert run.status == "QUEUED" and "sign in again" in run.phase

    db.session.get(Merchant, merchant_id).cc_auth_state = "connected"  # signing in again
    db.session.commit()
    assert resume_paused_runs(conn_id) == [run_id]
    (job_id,) = queues.get("imports").job_ids
    assert job_id.startswith(f"import-{run_id}-resume-")
