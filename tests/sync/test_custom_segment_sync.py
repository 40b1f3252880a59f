"""A custom segment saved through the JSON API becomes a Constant Contact list with exactly the
members an independent oracle computes from the store's rows; a later daily sync (the clock
moved, the store changed) moves members in and out of that list and logs why."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import requests

from cc_storeplugin.constantcontact.emails import check_email
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Segment, SegmentTransition, SyncRun
from cc_storeplugin.sandbox.merchant import sign_in
from tests.oracle import NOT_PURCHASES
from tests.sync.conftest import cc_list
from tests.sync.test_daily_sync import STORE_TIME, daily, import_store, store_exec
from tests.web.test_magento_journey import stack, wait_for  # noqa: F401  (fixture)


def rule_for(sku: str, days: int = 60) -> dict:
    """Repeat buyers who bought within ``days`` or bought ``sku``."""
    return {
        "all": [
            {"field": "purchase_count", "op": "gte", "value": 2},
            {
                "any": [
                    {"field": "last_purchase_at", "op": "within", "value": {"days_ago": days}},
                    {"field": "purchased_sku", "op": "in", "value": [sku]},
                ]
            },
        ]
    }


def oracle(store_file, now: datetime, sku: str, days: int) -> set[str]:
    """The segment's sendable members computed from the store's own rows."""
    con = sqlite3.connect(store_file)
    count: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    bought: set[str] = set()
    rows = con.execute(
        "SELECT o.id, o.customer_email, o.state, o.created_at,"
        " EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.sku = ?)"
        " FROM orders o",
        (sku,),
    ).fetchall()
    con.close()
    for _id, email, state, created, has_sku in rows:
        if state in NOT_PURCHASES:
            continue
        key = email.strip().lower()
        count[key] += 1
        when = datetime.strptime(created, STORE_TIME).replace(tzinfo=UTC)
        last[key] = max(last.get(key, when), when)
        if has_sku:
            bought.add(key)
    members = {
        e
        for e, n in count.items()
        if n >= 2 and (last[e] >= now - timedelta(days=days) or e in bought)
    }
    return {s for s in (check_email(e)[0] for e in members) if s}


def window_days(store_file) -> int:
    """A "bought within" window reaching 30 days past the store's newest purchase from today,
    so the test does not depend on when it runs (the generated store's clock is fixed)."""
    con = sqlite3.connect(store_file)
    newest = con.execute("SELECT MAX(created_at) FROM orders WHERE state = 'complete'")
    at = datetime.strptime(newest.fetchone()[0], STORE_TIME).replace(tzinfo=UTC)
    con.close()
    return (datetime.now(UTC) - at).days + 30


def a_shared_sku(store_file) -> str:
    """A SKU some repeat buyers bought (so the OR's second branch matters)."""
    con = sqlite3.connect(store_file)
    sku = con.execute(
        "SELECT i.sku FROM order_items i JOIN orders o ON o.id = i.order_id"
        " WHERE o.state = 'complete' GROUP BY i.sku ORDER BY COUNT(*) DESC, i.sku LIMIT 1"
    ).fetchone()[0]
    con.close()
    return sku


def segment_run(app, run_id: int):
    def done():
        run = db.session.get(SyncRun, run_id)
        return run if run.status in ("COMPLETE", "FAILED") else None

    return wait_for(app, done, timeout=120)


def custom_reasons(app, segment_id: int, run_id: int) -> dict[str, list[str]]:
    with app.app_context():
        rows = db.session.execute(
            db.select(SegmentTransition.action, SegmentTransition.reason).where(
                SegmentTransition.segment_id == segment_id, SegmentTransition.sync_run_id == run_id
            )
        ).all()
    out: dict[str, list[str]] = defaultdict(list)
    for action, reason in rows:
        out[action].append(reason)
    return out


def test_a_saved_segment_becomes_a_cc_list_that_daily_syncs_keep_in_step(
    stack,  # noqa: F811
):
    connection_id, _ = import_store(stack)
    sku, days = a_shared_sku(stack.store_file), window_days(stack.store_file)
    browser = requests.Session()
    sign_in(browser, stack.plugin_url)
    api = f"{stack.plugin_url}/api/v1/connections/{connection_id}/segments"

    # --- the merchant previews, then saves; the job creates and fills the CC list --------
    preview = browser.post(f"{api}/preview", json={"rule": rule_for(sku, days)}, timeout=30).json()
    resp = browser.post(api, json={"name": "Loyal", "rule": rule_for(sku, days)}, timeout=30)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    with stack.app.app_context():
        run = segment_run(stack.app, made["sync_run_id"])
        assert run.status == "COMPLETE", (run.error_message, run.checkpoint)
        now0 = datetime.fromisoformat(run.totals["now"])
        seg = db.session.get(Segment, made["id"])
        list_id = seg.cc_list_id
    expected0 = oracle(stack.store_file, now0, sku, days)
    assert expected0 and preview["count"] >= len(expected0)
    assert oracle(stack.store_file, now0, "no-such-sku", days) < expected0  # the OR matters
    got = cc_list(stack.cc.url, list_id)
    assert got["name"] == "Magento \u2013 Loyal"
    assert set(got["emails"]) == expected0 and got["count"] == len(expected0)
    entered = custom_reasons(stack.app, made["id"], made["sync_run_id"])["entered"]
    assert len(entered) >= len(expected0)
    assert all(r.startswith("entered Loyal: matches its rules (") for r in entered)
    listed = browser.get(api, timeout=30).json()["segments"]
    assert [s["cc_list_id"] for s in listed if s["id"] == made["id"]] == [list_id]

    # --- 45 days later, and a one-time buyer orders again: the daily sync moves members --
    now1 = now0 + timedelta(days=45)
    con = sqlite3.connect(stack.store_file)
    buyer = next(
        e.strip().lower()
        for (e,) in con.execute(
            "SELECT customer_email FROM orders WHERE state = 'complete'"
            " GROUP BY lower(trim(customer_email)) HAVING COUNT(*) = 1 ORDER BY MIN(id)"
        )
        if check_email(e.strip().lower())[0]
    )
    next_order = con.execute("SELECT MAX(id) + 1 FROM orders").fetchone()[0]
    con.close()
    assert buyer not in expected0
    changed_at = datetime.now(UTC).strftime(STORE_TIME)
    store_exec(
        stack.store_file,
        "INSERT INTO orders (id, increment_id, customer_id, customer_email, customer_is_guest,"
        " state, status, grand_total, subtotal, created_at, updated_at)"
        " VALUES (?, ?, NULL, ?, 1, 'complete', 'complete', 42.5, 42.5, ?, ?)",
        next_order,
        f"9{next_order:08d}",
        buyer,
        (now1 - timedelta(days=2)).strftime(STORE_TIME),
        changed_at,
    )
    expected1 = oracle(stack.store_file, now1, sku, days)
    assert buyer in expected1 and expected0 - expected1, "the data must move both ways"

    run1 = daily(stack, connection_id, "c1", now1)
    got = cc_list(stack.cc.url, list_id)
    assert set(got["emails"]) == expected1 and got["count"] == len(expected1)
    moved = custom_reasons(stack.app, made["id"], run1["id"])
    assert len(moved["left"]) >= len(expected0 - expected1)
    assert all(r.startswith("left Loyal: no longer matches its rules (") for r in moved["left"])
    with stack.app.app_context():
        buyer_id = db.session.scalar(db.select(Customer.id).where(Customer.email == buyer))
        assert db.session.scalar(
            db.select(SegmentTransition.reason).where(
                SegmentTransition.segment_id == made["id"],
                SegmentTransition.customer_id == buyer_id,
                SegmentTransition.sync_run_id == run1["id"],
            )
        ) == (
            "entered Loyal: matches its rules (2 purchases, last purchase "
            f"{(now1 - timedelta(days=2)).date().isoformat()})"
        )
    assert run1["totals"]["segments"][made["key"]]["left"] == len(moved["left"])


def test_a_busy_connection_leaves_the_segment_to_the_next_daily_sync(app):
    from cc_storeplugin.models import StoreConnection
    from cc_storeplugin.segments.custom import enqueue_segment_sync, sync_custom_segments
    from cc_storeplugin.sync.locks import connection_lock
    from tests.web.conftest import make_merchant

    conn = StoreConnection(merchant=make_merchant("acct-busy"), platform="magento")
    conn.status = "active"
    db.session.add(conn)
    db.session.commit()
    seg = Segment(connection_id=conn.id, key="custom-x", name="Magento \u2013 X", kind="custom")
    seg.rule = rule_for("SKU-1")
    db.session.add(seg)
    db.session.commit()
    conn_id, seg_id = conn.id, seg.id  # the job ends its DB session: keep ids, not objects
    run_id = enqueue_segment_sync(conn_id)
    with connection_lock(conn_id):  # a daily sync of the connection is running
        result = sync_custom_segments(conn_id, run_id)
    assert result.startswith("skipped: another sync")
    run = db.session.get(SyncRun, run_id)
    assert run.status == "COMPLETE" and run.phase == "skipped" and "daily" in run.totals["skipped"]
    assert db.session.get(Segment, seg_id).evaluated_at is None  # nothing half-done
    assert sync_custom_segments(conn_id, run_id) == "already complete"

    db.session.get(StoreConnection, conn_id).status = "importing"  # the import does them all
    db.session.commit()
    assert sync_custom_segments(conn_id, enqueue_segment_sync(conn_id)).startswith("skipped")
