"""The whole loop over HTTP, driven by the cron ticks and the plugin's worker: a shopper opts
in on the Kibo sandbox → in the CC list after the flush; unsubscribes in CC → acceptsMarketing
false on Kibo after the poll; the event that write causes does not loop or re-add the contact."""

from __future__ import annotations

from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import ConsentEvent, SyncRun
from cc_storeplugin.sync.kibo_flush import dispatch_kibo_flushes
from cc_storeplugin.sync.kibo_unsubscribes import dispatch_unsubscribe_polls
from tests.sync import test_kibo_flush as flush_tests
from tests.sync.conftest import wait_for
from tests.sync.test_kibo_flush import post

kibo_stack = flush_tests.kibo_stack


def completed_runs(app, kind: str) -> list[SyncRun] | None:
    runs = db.session.scalars(select(SyncRun).where(SyncRun.kind == kind)).all()
    if runs and all(r.status in ("COMPLETE", "FAILED") for r in runs):
        return runs
    return None


def tick(ks, dispatch, kind: str, now_iso: str) -> list[SyncRun]:
    """A cron tick (fired twice: enqueued once), then the worker runs the job."""
    with ks.app.app_context():
        first = dispatch(now_iso)
        second = dispatch(now_iso)
        assert first == second and len(first) == 1
        runs = wait_for(ks.app, lambda: completed_runs(ks.app, kind), timeout=60)
        return [r for r in runs if r.job_id == first[0]]


def test_opt_in_export_unsubscribe_write_back_and_no_loop(kibo_stack):
    ks = kibo_stack
    ks.set(welcome_email=True)
    account = ks.signup("loop@example.com", "Lou", "Loop")
    ks.wait_delivered()

    [flush] = tick(ks, dispatch_kibo_flushes, "events", "2030-01-01T10:00:05+00:00")
    assert flush.status == "COMPLETE" and flush.totals["exported"] == 1
    assert ks.list_emails() == ["loop@example.com"]

    post(f"{ks.stack.cc.url}/_sandbox/unsubscribe", json={"email": "loop@example.com"})
    [poll] = tick(ks, dispatch_unsubscribe_polls, "unsubscribes", "2030-01-01T10:00:05+00:00")
    assert poll.status == "COMPLETE" and poll.totals["updated_in_kibo"] == 1
    assert ks.accepts_marketing(account) is False
    ks.wait_delivered()  # Kibo fired customeraccount.updated for the plugin's own PUT

    with ks.app.app_context():
        ledger_before = db.session.scalar(select(db.func.count()).select_from(ConsentEvent))
    result = ks.flush("after-write-back")
    assert result["totals"]["events"] == 2  # the update, once per site
    assert result["totals"]["exported"] == 0
    contact = ks.contact("loop@example.com")
    assert contact["email_address"]["permission_to_send"] == "unsubscribed"
    with ks.app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ConsentEvent)) == ledger_before

    # an unrelated edit later does not re-add the contact either
    ks.edit(account, lastName="Looper")
    ks.wait_delivered()
    assert ks.flush("later")["totals"]["exported"] == 0
    assert ks.contact("loop@example.com")["email_address"]["permission_to_send"] == "unsubscribed"
