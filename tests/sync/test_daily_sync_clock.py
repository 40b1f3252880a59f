"""The daily sync against the sandboxes, with the store dated from today's clock.

Adds to test_daily_sync.py: the exact 30- and 120-day boundaries (a buyer is still Recent at
30 days to the second and Lapsed only past 120), a missed quarter (Recent → Lapsed in one
run), and a run killed twice — mid-way through the orders' pages, then mid-way through the
segments — that resumes after its last saved page without re-reading the store or doubling
the transition log. The CC lists are compared with the oracle after every completed run.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, SegmentTransition, SyncRun
from cc_storeplugin.sandbox.stack import Stack
from cc_storeplugin.sandbox.storegen import generate_store
from cc_storeplugin.segments import evaluate
from cc_storeplugin.segments.evaluate import transitions_for
from cc_storeplugin.sync import incremental
from cc_storeplugin.sync.daily_job import run_daily_sync
from cc_storeplugin.web.customers import readable_log
from tests.sync.conftest import build_stack, stop_stack
from tests.sync.test_daily_sync import (
    STORE_TIME,
    assert_lists,
    cc_emails,
    daily,
    import_store,
    last_purchases,
)


@pytest.fixture
def today_stack(tmp_path: Path) -> Iterator[Stack]:
    """The sandboxes and plugin over a 300-customer store whose newest rows are an hour old:
    the import reads the real clock, so its Recent list is never empty."""
    store = tmp_path / "store.sqlite"
    store_now = (datetime.now(UTC) - timedelta(hours=1)).strftime(STORE_TIME)
    generate_store(store, customers=300, seed=11, now=store_now)
    stack = build_stack(tmp_path, store)
    yield stack
    stop_stack(stack)


def list_ids(s: Stack, connection_id: int) -> dict[str, str]:
    from cc_storeplugin.models import Segment

    with s.app.app_context():
        rows = db.session.execute(
            db.select(Segment.key, Segment.cc_list_id).where(Segment.connection_id == connection_id)
        ).all()
    return dict(rows)


def history(s: Stack, email: str) -> list[dict]:
    with s.app.app_context():
        cid = db.session.scalar(db.select(Customer.id).where(Customer.email == email))
        return transitions_for(cid)


def test_the_30_and_120_day_boundaries_are_exact_in_the_cc_lists(today_stack):
    s = today_stack
    connection_id, import_now = import_store(s)
    got = assert_lists(s, connection_id, import_now)
    newest, c = last_purchases(s.store_file)[0]
    assert c in got["recent"] and got["recent"]
    ids = list_ids(s, connection_id)

    daily(s, connection_id, "at30", newest + timedelta(days=30))  # 30 days to the second
    assert_lists(s, connection_id, newest + timedelta(days=30))
    assert c in cc_emails(s, ids["recent"])
    daily(s, connection_id, "past30", newest + timedelta(days=30, minutes=1))
    assert_lists(s, connection_id, newest + timedelta(days=30, minutes=1))
    assert c not in cc_emails(s, ids["recent"]) and c not in cc_emails(s, ids["lapsed"])

    daily(s, connection_id, "at120", newest + timedelta(days=120))
    assert c not in cc_emails(s, ids["lapsed"])
    run = daily(s, connection_id, "past120", newest + timedelta(days=120, minutes=1))
    assert_lists(s, connection_id, newest + timedelta(days=120, minutes=1))
    assert c in cc_emails(s, ids["lapsed"])
    assert run["totals"]["segments"]["lapsed"]["entered"] >= 1

    log = history(s, c)
    moves = [(t["segment_key"], t["action"], t["occurred_at"]) for t in log[-2:]]
    assert moves == [
        ("recent", "left", newest + timedelta(days=30, minutes=1)),
        ("lapsed", "entered", newest + timedelta(days=120, minutes=1)),
    ]
    assert log[-1]["reason"] == (
        f"entered Lapsed: last purchase {newest:%Y-%m-%d}, 120 days ago"
    )  # whole days elapsed: 120 days and a minute


def test_a_missed_quarter_moves_recent_buyers_straight_to_lapsed(today_stack):
    s = today_stack
    connection_id, import_now = import_store(s)
    newest, c = last_purchases(s.store_file)[0]
    now = newest + timedelta(days=121, hours=1)
    run = daily(s, connection_id, "late", now)
    got = assert_lists(s, connection_id, now)
    assert c in got["lapsed"] and c not in got["recent"]
    moved = [t for t in history(s, c) if t["sync_run_id"] == run["id"]]
    assert {(t["segment_key"], t["action"]) for t in moved} == {
        ("recent", "left"),
        ("lapsed", "entered"),
    }
    assert readable_log(history(s, c))[0]["text"] == (
        f"Recent \u2192 Lapsed on {now:%Y-%m-%d}: last purchase {newest:%Y-%m-%d}, 121 days ago"
    )


def order_calls(s: Stack) -> dict[str, int]:
    calls = requests.get(f"{s.magento.url}/_sandbox/stats", timeout=30).json()["calls"]
    return {
        kind: sum(n for key, n in calls.items() if key.endswith(suffix))
        for kind, suffix in (("orders", "V1/orders"), ("customers", "V1/customers/search"))
    }


def test_a_killed_daily_sync_resumes_after_its_last_saved_page_and_segment(
    today_stack, monkeypatch
):
    s = today_stack
    connection_id, _ = import_store(s)
    con = sqlite3.connect(s.store_file)
    registered = [e for (e,) in con.execute("SELECT email FROM customers ORDER BY id")]
    emails = [registered[i % len(registered)] for i in range(650)]
    next_order = con.execute("SELECT MAX(id) + 1 FROM orders").fetchone()[0]
    now = datetime.now(UTC) + timedelta(days=2)
    changed_at = datetime.now(UTC).strftime(STORE_TIME)
    with con:  # 650 new orders: three pages of 300 for the incremental fetch
        con.executemany(
            "INSERT INTO orders (id, increment_id, customer_id, customer_email,"
            " customer_is_guest, state, status, grand_total, subtotal, created_at, updated_at)"
            " VALUES (?, ?, NULL, ?, 1, 'complete', 'complete', 19.9, 19.9, ?, ?)",
            [
                (next_order + i, f"8{next_order + i:08d}", email,
                 (now - timedelta(days=1)).strftime(STORE_TIME), changed_at)
                for i, email in enumerate(emails)
            ],
        )  # fmt: skip
    con.close()

    real_upsert, pages = incremental.mirror.upsert_orders, []

    def dies_on_second_page(connection_id, records):
        pages.append(len(records))
        if len(pages) == 2:
            raise RuntimeError("worker killed")
        return real_upsert(connection_id, records)

    monkeypatch.setattr(incremental.mirror, "upsert_orders", dies_on_second_page)
    with s.app.app_context(), pytest.raises(RuntimeError):
        run_daily_sync(connection_id, "k", now.isoformat())
    monkeypatch.undo()
    with s.app.app_context():
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.job_id.like("%-k")))
        assert run.status == "RUNNING" and run.checkpoint["phase"] == "orders"
        saved = run.checkpoint["orders"]
        assert saved["seen"] == 300 and saved["after"] and not saved["done"]
        since = datetime.fromisoformat(saved["since"])
    con = sqlite3.connect(s.store_file)
    to_read = con.execute(
        "SELECT COUNT(*) FROM orders WHERE updated_at >= ?", (since.strftime(STORE_TIME),)
    ).fetchone()[0]
    con.close()
    assert to_read >= 650

    # second attempt: the fetch goes on after the saved page; it dies in the 4th segment
    before = order_calls(s)
    real_apply, applied = evaluate._apply, []

    def dies_in_fourth_segment(*args, **kwargs):
        applied.append(1)
        if len(applied) == 4:
            raise RuntimeError("worker killed")
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(evaluate, "_apply", dies_in_fourth_segment)
    with s.app.app_context(), pytest.raises(RuntimeError):
        run_daily_sync(connection_id, "k", now.isoformat())
    monkeypatch.undo()
    after = order_calls(s)
    assert after["customers"] == before["customers"]  # the customers phase was done
    assert after["orders"] - before["orders"] == math.ceil((to_read - 300) / 300)
    with s.app.app_context():
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.job_id.like("%-k")))
        assert run.checkpoint["phase"] == "segments"
        assert run.checkpoint["orders"]["seen"] == to_read  # every row read exactly once

    # third attempt completes: no store call, lists equal the oracle, no doubled log entry
    result = daily(s, connection_id, "k", now)
    assert result["attempts"] == 3
    assert order_calls(s) == after
    got = assert_lists(s, connection_id, now)
    assert {e.strip().lower() for e in emails} - {""} <= got["recent"] | _unsendable(s)
    assert result["totals"]["changed_orders"] == 650
    with s.app.app_context():
        doubled = db.session.execute(
            db.select(SegmentTransition.customer_id, SegmentTransition.segment_id)
            .where(SegmentTransition.sync_run_id == result["id"])
            .group_by(SegmentTransition.customer_id, SegmentTransition.segment_id)
            .having(db.func.count() > 1)
        ).all()
        assert doubled == []


def _unsendable(s: Stack) -> set[str]:
    """Store emails CC refuses (invalid addresses): never in any list."""
    from cc_storeplugin.constantcontact.emails import check_email

    con = sqlite3.connect(s.store_file)
    emails = {e.strip().lower() for (e,) in con.execute("SELECT email FROM customers")}
    con.close()
    return {e for e in emails if check_email(e)[0] is None}
