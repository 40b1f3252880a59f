"""Unsubscribe sync-back over HTTP: an unsubscribe in the CC sandbox → acceptsMarketing false on
the Kibo sandbox after the poll, logged in the ledger under the poll's run, captured once."""

from __future__ import annotations

import contextlib

from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import ConsentEvent, Customer, StoreConnection, SyncRun
from cc_storeplugin.sync.kibo_unsubscribes import run_unsubscribe_poll
from tests.sync import test_kibo_flush as flush_tests
from tests.sync.test_kibo_flush import get, post

kibo_stack = flush_tests.kibo_stack


def poll(ks, period: str) -> SyncRun:
    with ks.app.app_context():
        run_unsubscribe_poll(ks.connection_id, period)
        run = db.session.scalar(
            select(SyncRun).where(
                SyncRun.job_id == f"kibo-unsubscribes-{ks.connection_id}-{period}"
            )
        )
        db.session.expunge(run)
        return run


def test_an_unsubscribe_in_cc_sets_accepts_marketing_false_once_and_is_logged(kibo_stack):
    ks = kibo_stack
    account = ks.signup("una@example.com", "Una", "Sub")
    keep = ks.signup("stay@example.com", "Stay", "Subscribed")
    ks.wait_delivered()
    ks.flush("f1")
    resp = post(f"{ks.stack.cc.url}/_sandbox/unsubscribe", json={"email": "una@example.com"})
    resp.raise_for_status()

    run = poll(ks, "u1")
    assert run.status == "COMPLETE"
    assert {k: run.totals[k] for k in ("captured", "updated_in_kibo", "not_found", "errors")} == {
        "captured": 1,
        "updated_in_kibo": 1,
        "not_found": 0,
        "errors": 0,
    }
    assert ks.accepts_marketing(account) is False
    assert ks.accepts_marketing(keep) is True
    with ks.app.app_context():
        logged = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.sync_run_id == run.id)
        ).all()
        assert [(e.email, e.action, e.source) for e in logged] == [
            ("una@example.com", "unsubscribed", "constantcontact")
        ]
        customer = db.session.scalar(select(Customer).where(Customer.email == "una@example.com"))
        assert customer.consent_state == "unsubscribed"
        conn = db.session.get(StoreConnection, ks.connection_id)
        assert conn.settings["kibo_unsubscribes"]["watermark"]

    # the next poll overlaps the window but captures nothing twice; nothing goes back to CC
    again = poll(ks, "u2")
    assert again.totals["captured"] == 0 and again.totals["updated_in_kibo"] == 0
    assert poll(ks, "u2").totals == again.totals  # the same period twice: one run
    stats = get(f"{ks.stack.cc.url}/_sandbox/stats").json()["calls"]
    assert not any(rule.startswith(("PUT", "DELETE")) for rule in stats), stats


def test_a_poll_after_an_outage_keeps_its_window(kibo_stack):
    ks = kibo_stack
    account = ks.signup("late@example.com", "Late", "Comer")
    ks.wait_delivered()
    ks.flush("f1")
    assert poll(ks, "u1").status == "COMPLETE"
    post(f"{ks.stack.cc.url}/_sandbox/unsubscribe", json={"email": "late@example.com"})
    post(f"{ks.stack.cc.url}/_sandbox/faults", json={"p5xx": 1.0})
    # the outage: the attempt fails (RQ would retry it) and the watermark stays put
    with ks.app.app_context(), contextlib.suppress(Exception):
        run_unsubscribe_poll(ks.connection_id, "u2")
    post(f"{ks.stack.cc.url}/_sandbox/faults", json={"p5xx": 0})
    assert ks.accepts_marketing(account) is True
    run = poll(ks, "u3")
    assert run.totals["captured"] == 1
    assert ks.accepts_marketing(account) is False
