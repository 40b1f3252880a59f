"""The daily sync over real HTTP (Magento and CC sandboxes), judged by the CC lists.

After the import, an injected clock crosses the 30- and 120-day boundaries; the store changes
(a renamed customer, a new customer, a new order) and an unsubscribe in CC happen between
runs; the CC lists must equal the oracle's sets after every run, an interrupted run resumes,
and a second worker cannot take the connection's lock.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import requests
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    Merchant,
    Segment,
    StoreConnection,
    SyncRun,
)
from cc_storeplugin.queueing import queues
from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
from cc_storeplugin.segments.evaluate import transitions_for
from cc_storeplugin.sync import cc_diff, incremental, locks
from cc_storeplugin.sync.daily_job import dispatch_daily_syncs, run_daily_sync
from cc_storeplugin.sync.locks import AlreadyRunning, connection_lock
from tests.oracle import NOT_PURCHASES, expected_lists
from tests.platforms.test_magento_client_sandbox import receiver  # noqa: F401
from tests.sandbox.conftest import store_factory  # noqa: F401  (generated stores)
from tests.web.test_magento_journey import _finished_run, stack, wait_for  # noqa: F401

STORE_TIME = "%Y-%m-%d %H:%M:%S"


def import_store(s) -> tuple[int, datetime]:
    """Connect Magento like the merchant and wait for the import; (connection id, its now)."""
    browser = requests.Session()
    sign_in(browser, s.plugin_url)
    hs = connect_magento(browser, s.plugin_url, s.magento.url)
    run = wait_for(s.app, lambda: _finished_run(hs.connection_id), timeout=120)
    assert run["status"] == "COMPLETE", run
    return hs.connection_id, datetime.fromisoformat(run["checkpoint"]["now"])


def cc_emails(s, list_id: str) -> set[str]:
    resp = requests.get(f"{s.cc.url}/_sandbox/lists/{list_id}/emails", timeout=30)
    resp.raise_for_status()
    return set(resp.json()["emails"])


def assert_lists(s, connection_id: int, now: datetime, unsubscribed=frozenset()) -> dict:
    """Every CC list equals the oracle's set at ``now``; returns the CC lists by key."""
    expected = expected_lists(s.store_file, now, set(unsubscribed))
    with s.app.app_context():
        lists = dict(
            db.session.execute(
                db.select(Segment.key, Segment.cc_list_id).where(
                    Segment.connection_id == connection_id
                )
            ).all()
        )
    assert set(lists) == set(expected)
    got = {key: cc_emails(s, list_id) for key, list_id in lists.items()}
    for key in lists:
        assert got[key] == expected[key], (key, sorted(got[key] ^ expected[key])[:10])
    return got


def last_purchases(store_file) -> list[tuple[datetime, str]]:
    """(last purchase, email) per purchaser, newest first, from the store's own rows."""
    con = sqlite3.connect(store_file)
    rows = con.execute("SELECT customer_email, state, created_at FROM orders").fetchall()
    con.close()
    last: dict[str, datetime] = {}
    for email, state, created in rows:
        if state in NOT_PURCHASES:
            continue
        when = datetime.strptime(created, STORE_TIME).replace(tzinfo=UTC)
        key = email.strip().lower()
        last[key] = max(last.get(key, when), when)
    return sorted(((at, e) for e, at in last.items()), reverse=True)


def daily(s, connection_id: int, period: str, now: datetime) -> dict:
    with s.app.app_context():
        assert run_daily_sync(connection_id, period, now.isoformat()) == "complete"
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.job_id.like(f"%-{period}")))
        assert run.status == "COMPLETE" and run.kind == "daily"
        return {"id": run.id, "totals": run.totals, "attempts": run.attempts}


def reasons(s, email: str) -> list[str]:
    with s.app.app_context():
        cid = db.session.scalar(db.select(Customer.id).where(Customer.email == email))
        return [t["reason"] for t in transitions_for(cid)]


def store_exec(store_file, sql: str, *args) -> None:
    con = sqlite3.connect(store_file)
    with con:
        con.execute(sql, args)
    con.close()


def test_daily_sync_moves_contacts_across_30_and_120_days_and_picks_up_store_changes(
    stack,  # noqa: F811  (the journey's fixture)
    monkeypatch,
):
    connection_id, import_now = import_store(stack)
    lists = assert_lists(stack, connection_id, import_now)
    newest, c = last_purchases(stack.store_file)[0]
    assert c in lists["recent"]
    con = sqlite3.connect(stack.store_file)
    renamed_id, renamed_email = con.execute(
        "SELECT id, email FROM customers ORDER BY id LIMIT 1"
    ).fetchone()
    buyer = (
        con.execute(  # a one-time purchaser, not recent: a new order makes them repeat
            "SELECT customer_email FROM orders WHERE state = 'complete' GROUP BY customer_email"
            " HAVING COUNT(*) = 1 AND MAX(created_at) < ? LIMIT 1",
            ((newest - timedelta(days=40)).strftime(STORE_TIME),),
        )
        .fetchone()[0]
        .strip()
        .lower()
    )
    next_id = con.execute("SELECT MAX(id) + 1 FROM customers").fetchone()[0]
    next_order = con.execute("SELECT MAX(id) + 1 FROM orders").fetchone()[0]
    con.close()

    # --- day 1: 31 days after c's last purchase; the store changed meanwhile --------------
    now1 = newest + timedelta(days=31, hours=1)
    changed_at = datetime.now(UTC).strftime(STORE_TIME)
    store_exec(
        stack.store_file,
        "UPDATE customers SET firstname = 'Renamed', updated_at = ? WHERE id = ?",
        changed_at,
        renamed_id,
    )
    new_email = "brand.new.customer@example.com"
    store_exec(
        stack.store_file,
        "INSERT INTO customers (id, email, firstname, lastname, created_at, updated_at)"
        " VALUES (?, ?, 'Brand', 'New', ?, ?)",
        next_id,
        new_email,
        changed_at,
        changed_at,
    )
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
    run1 = daily(stack, connection_id, "d1", now1)
    got = assert_lists(stack, connection_id, now1)
    assert c not in got["recent"] and buyer in got["recent"] and buyer in got["repeat"]
    assert new_email in got["all"]
    assert any(
        re.fullmatch(r"left Recent: last purchase \S+, 31 days ago", r) for r in reasons(stack, c)
    )
    totals = run1["totals"]
    assert totals["changed_customers"] == 2 and totals["changed_orders"] == 1, totals
    assert totals["segments"]["recent"]["left"] >= 1
    with stack.app.app_context():
        renamed = db.session.scalar(db.select(Customer).where(Customer.email == renamed_email))
        assert renamed.first_name == "Renamed"
        conn = db.session.get(StoreConnection, connection_id)
        assert conn.settings["watermarks"]["customers"].startswith(changed_at.replace(" ", "T"))
        assert conn.last_synced_at is not None

    # --- c unsubscribes in CC; day 2 is 121 days after c's last purchase -----------------
    resp = requests.post(f"{stack.cc.url}/_sandbox/unsubscribe", json={"email": c}, timeout=30)
    assert resp.status_code == 200
    now2 = newest + timedelta(days=121, hours=1)
    lapsed_before = expected_lists(stack.store_file, now1)["lapsed"]
    assert expected_lists(stack.store_file, now2)["lapsed"] - lapsed_before - {c}

    # the first attempt dies in the middle of the CC step (after the adds were submitted)
    def boom(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(cc_diff.cc_lists, "remove_members", boom)
    with stack.app.app_context(), pytest.raises(RuntimeError):
        run_daily_sync(connection_id, "d2", now2.isoformat())
    with stack.app.app_context():
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.job_id.like("%-d2")))
        assert run.status == "RUNNING" and run.checkpoint["phase"] == "cc_diff"
        assert run.checkpoint["cc_diff"]["step"] == "removals"
    monkeypatch.undo()
    store_calls = requests.get(f"{stack.magento.url}/_sandbox/stats", timeout=30).json()
    run2 = daily(stack, connection_id, "d2", now2)
    assert run2["attempts"] == 2
    assert requests.get(f"{stack.magento.url}/_sandbox/stats", timeout=30).json() == store_calls
    got = assert_lists(stack, connection_id, now2, unsubscribed={c})
    assert c not in got["lapsed"] and c not in got["all"]  # removed lists stay removed
    assert any(
        re.fullmatch(r"entered Lapsed: last purchase \S+, 121 days ago", r)
        for r in reasons(stack, c)
    )
    with stack.app.app_context():
        contact = db.session.scalar(db.select(Customer).where(Customer.email == c))
        assert contact.consent_state == "unsubscribed"
        skipped = db.session.scalar(
            db.select(db.func.count()).where(
                ConsentEvent.customer_id == contact.id, ConsentEvent.action == "skipped"
            )
        )
        assert skipped >= 1
        # the leavers' CC ids were learned in bulk and kept
        assert db.session.scalar(
            db.select(db.func.count()).where(Customer.cc_contact_id.is_not(None))
        )

    # --- a quiet day: nothing changed, nothing moved ------------------------------------
    run3 = daily(stack, connection_id, "d3", now2 + timedelta(hours=2))
    assert_lists(stack, connection_id, now2 + timedelta(hours=2), unsubscribed={c})
    print(
        "\nCC calls per daily sync:",
        {"day1": run1["totals"]["cc_calls"], "day2": run2["totals"]["cc_calls"]},
        {"quiet": run3["totals"]["cc_calls"]},
        run1["totals"]["cc"],
        run2["totals"],
    )
    assert run3["totals"]["cc_calls"] <= 2, run3["totals"]
    assert run1["totals"]["cc_calls"] <= 15, run1["totals"]
    with stack.app.app_context():  # the same period again does nothing
        assert run_daily_sync(connection_id, "d3", now2.isoformat()) == "already complete"

    # --- a segment that lost its list id is rebuilt in CC (found by name, emptied, refilled)
    with stack.app.app_context():
        seg = db.session.scalar(db.select(Segment).where(Segment.key == "lapsed"))
        list_id, seg.cc_list_id = seg.cc_list_id, None
        db.session.commit()
    run4 = daily(stack, connection_id, "d4", now2 + timedelta(hours=3))
    assert run4["totals"]["rebuilt_segments"] == 1
    got = assert_lists(stack, connection_id, now2 + timedelta(hours=3), unsubscribed={c})
    with stack.app.app_context():
        assert db.session.scalar(db.select(Segment.cc_list_id).where(Segment.key == "lapsed")) == (
            list_id
        )
    assert c not in got["lapsed"]


def test_a_second_worker_cannot_take_the_connection_lock(app):
    with connection_lock(7):
        with pytest.raises(AlreadyRunning, match="already running"), connection_lock(7):
            pass
        assert locks.is_locked(7)
        assert run_daily_sync(7, "20261123") == "already running"
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncRun)) == 0
        with connection_lock(8):  # other connections are not blocked
            pass
    assert not locks.is_locked(7)
    with connection_lock(7):  # released after the block
        pass


def test_dispatch_enqueues_each_due_connection_once_per_period(app):
    merchant = Merchant(cc_account_id="acct-d", name="Shop")
    db.session.add(merchant)
    db.session.commit()
    now = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)
    conns = {
        "fresh": ("active", now - timedelta(hours=1)),
        "stale": ("active", now - timedelta(days=3)),
        "never": ("active", None),
        "importing": ("importing", None),
    }
    ids = {}
    for name, (status, synced) in conns.items():
        conn = StoreConnection(
            merchant_id=merchant.id, platform="magento", status=status, last_synced_at=synced
        )
        db.session.add(conn)
        db.session.commit()
        ids[name] = conn.id
    jobs = dispatch_daily_syncs(now.isoformat(), hour_utc=3)
    assert jobs == [f"daily-{ids['stale']}-20261123", f"daily-{ids['never']}-20261123"]
    # an hourly tick later the same day enqueues no duplicate
    dispatch_daily_syncs((now + timedelta(hours=1)).isoformat(), hour_utc=3)
    assert sorted(queues.get("sync").job_ids) == sorted(jobs)
    # a job that ended without completing its run (the lock was busy) is replaced
    job = Job.fetch(jobs[0], connection=queues.connection, serializer=JSONSerializer)
    queues.get("sync").remove(job)
    job.set_status(JobStatus.FINISHED)
    dispatch_daily_syncs((now + timedelta(hours=2)).isoformat(), hour_utc=3)
    assert sorted(queues.get("sync").job_ids) == sorted(jobs)
    # before today's hour, the period is yesterday's
    early = dispatch_daily_syncs(datetime(2026, 11, 24, 1, tzinfo=UTC).isoformat(), hour_utc=3)
    assert f"daily-{ids['stale']}-20261123" in early


# --- incremental fetch: keyset paging over both platforms ------------------------------


@pytest.fixture
def kibo_adapter(store_factory):  # noqa: F811
    from cc_storeplugin.platforms.kibo.adapter import KiboAdapter
    from cc_storeplugin.platforms.kibo.client import KiboClient
    from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET
    from cc_storeplugin.sandbox.kibo import create_app as kibo_app
    from cc_storeplugin.sandbox.server import serve_in_thread

    store = store_factory(customers=120, seed=3)
    server = serve_in_thread(kibo_app(store=str(store)))
    client = KiboClient(server.url, DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, 12345)
    yield KiboAdapter(client, page_size=25), store
    server.stop()


@pytest.fixture
def magento_adapter(store_factory, receiver):  # noqa: F811
    from cc_storeplugin.platforms.magento.adapter import MagentoAdapter
    from tests.platforms.test_magento_client_sandbox import Sandbox

    store = store_factory(customers=120, seed=3)
    sb = Sandbox(receiver, store=str(store), max_page_size=300)
    yield MagentoAdapter(sb.connected(), page_size=25), store
    sb.server.stop()


@pytest.mark.parametrize("platform", ["magento", "kibo"])
@pytest.mark.parametrize("kind", ["customers", "orders"])
def test_changed_pages_read_every_row_since_the_watermark_once_even_while_rows_change(
    platform, kind, request
):
    adapter, store = request.getfixturevalue(f"{platform}_adapter")
    con = sqlite3.connect(store)
    stamps = sorted(r[0] for r in con.execute(f"SELECT updated_at FROM {kind}"))  # noqa: S608
    since = datetime.strptime(stamps[len(stamps) // 3], STORE_TIME).replace(tzinfo=UTC)
    expected = {
        str(i)
        for (i,) in con.execute(
            f"SELECT id FROM {kind} WHERE updated_at >= ?",  # noqa: S608
            (since.strftime(STORE_TIME),),
        )
    }
    assert len(expected) > 3 * 25
    seen: list[str] = []
    for n, (page, after) in enumerate(incremental.changed_pages(adapter, kind, since, None)):
        seen += [_ident(adapter, kind, r) for r in page.records]
        assert after[1] == int(_ident(adapter, kind, page.records[-1]))
        if n == 0:  # a row already read changes: it jumps to the end, nothing shifts
            sql = f"UPDATE {kind} SET updated_at = '2030-01-01 00:00:00' WHERE id = ?"  # noqa: S608
            store_exec(store, sql, int(seen[0]))
    con.close()
    assert set(seen) >= expected
    assert len(seen) == len(expected) + 1  # every row once, the changed one again at the end


def _ident(adapter, kind: str, record) -> str:
    """The store row id of a record (Kibo orders: the orderNumber)."""
    if adapter.platform == "kibo" and kind == "orders":
        return str(record.number)
    return str(record.platform_id)


# --- the CC step's grouping and rules, on SQLite and PostgreSQL --------------------------


class RecordingCC:
    """Stands in for the CC bulk calls and records them (the SQL under test is real)."""

    def __init__(self, monkeypatch, export: dict[str, str]) -> None:
        from cc_storeplugin.constantcontact.bulk import ActivityResult

        self.imports: list[tuple[list[str], list[str]]] = []
        self.removals: list[tuple[list[str], list[str]]] = []
        self.exports: list[list[str]] = []
        self.new_id_lookups = 0
        bulk, lists = cc_diff.bulk, cc_diff.cc_lists

        def submit_import(client, rows, list_ids):
            self.imports.append((sorted(list_ids), sorted(r["email"] for r in rows)))
            return f"imp-{len(self.imports)}"

        def remove_members(client, list_ids, ids):
            self.removals.append((sorted(list_ids), sorted(ids)))
            return [f"rm-{len(self.removals)}"]

        def iter_contact_ids(client, list_ids):
            self.exports.append(sorted(list_ids))
            yield from export.items()

        def learn_new_contact_ids(client, connection_id, since, sent):
            self.new_id_lookups += 1
            return 0

        def wait(client, ids, **kw):
            return {i: ActivityResult(activity_id=i, state="completed") for i in ids}

        monkeypatch.setattr(bulk, "submit_import", submit_import)
        monkeypatch.setattr(bulk, "iter_contact_ids", iter_contact_ids)
        monkeypatch.setattr(cc_diff, "learn_new_contact_ids", learn_new_contact_ids)
        monkeypatch.setattr(bulk, "wait_for_activities", wait)
        monkeypatch.setattr(lists, "remove_members", remove_members)


def test_the_diff_goes_to_cc_grouped_by_list_combination_and_never_re_adds(any_db_app, monkeypatch):
    from cc_storeplugin.segments.builtin import ensure_builtin_segments
    from cc_storeplugin.segments.evaluate import evaluate_segments

    merchant = Merchant(cc_account_id="acct-diff", name="Shop")
    conn = StoreConnection(merchant=merchant, platform="magento", status="active")
    db.session.add(conn)
    db.session.commit()
    for seg in ensure_builtin_segments(conn.id):
        seg.cc_list_id = f"L-{seg.key}"
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    people = {  # email: (purchases, days since the last, consent, known CC id)
        "a@x.io": (1, 22, "not_set", None),
        "b@x.io": (1, 25, "subscribed", "cc-b"),
        "u@x.io": (1, 20, "unsubscribed", None),
        "n@x.io": (0, None, "not_set", None),
    }
    for email, (count, days, consent, cc_id) in people.items():
        last = now - timedelta(days=days) if days is not None else None
        db.session.add(
            Customer(connection_id=conn.id, email=email, purchase_count=count,
                     last_purchase_at=last, consent_state=consent, cc_contact_id=cc_id)
        )  # fmt: skip
    db.session.commit()
    export = {"a@x.io": "cc-a", "n@x.io": "cc-n", "other@x.io": "cc-o"}
    cc = RecordingCC(monkeypatch, export=export)

    def run_at(when: datetime) -> dict:
        run = SyncRun(connection_id=conn.id, kind="daily")
        db.session.add(run)
        db.session.commit()
        evaluate_segments(conn.id, when, run_id=run.id)
        return cc_diff.apply_diff(None, conn.id, run.id, {}, lambda state: None)

    state = run_at(now)
    assert sorted(cc.imports) == [
        (["L-all"], ["n@x.io"]),
        (["L-all", "L-first_time", "L-recent"], ["a@x.io", "b@x.io"]),
    ]  # one import per combination of lists; u (unsubscribed) is never sent
    assert state["skipped_unsub"] == 1 and cc.removals == [] and cc.exports == []
    assert cc.new_id_lookups == 1  # the ids of the contacts the imports created

    cc.imports.clear()
    state = run_at(now + timedelta(days=10))  # a, b and u leave Recent
    assert cc.imports == []
    assert cc.exports == [["L-recent"]]  # one export for the unknown ids, not a lookup each
    assert cc.removals == [(["L-recent"], ["cc-a", "cc-b"])]
    assert state["removed"] == 2
    ids = dict(db.session.execute(db.select(Customer.email, Customer.cc_contact_id)).all())
    assert ids["a@x.io"] == "cc-a" and ids["u@x.io"] is None  # learned ids are kept
    assert ids["n@x.io"] == "cc-n"  # every id in the export, not only the leavers'
    assert cc.new_id_lookups == 1  # nothing was imported this time


def test_leavers_that_cannot_be_on_a_cc_list_cost_no_export(any_db_app, monkeypatch):
    from cc_storeplugin.segments.builtin import ensure_builtin_segments
    from cc_storeplugin.segments.evaluate import evaluate_segments

    merchant = Merchant(cc_account_id="acct-noexport", name="Shop")
    conn = StoreConnection(merchant=merchant, platform="magento", status="active")
    db.session.add(conn)
    db.session.commit()
    segments = ensure_builtin_segments(conn.id)
    for seg in segments:
        seg.cc_list_id = f"L-{seg.key}"
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    for email, consent in (("bad@@x.io", "not_set"), ("gone@x.io", "unsubscribed")):
        db.session.add(
            Customer(connection_id=conn.id, email=email, purchase_count=1,
                     last_purchase_at=now - timedelta(days=25), consent_state=consent)
        )  # fmt: skip
    db.session.commit()
    cc = RecordingCC(monkeypatch, export={"gone@x.io": "cc-gone"})
    for when in (now, now + timedelta(days=10)):  # both enter, then both leave Recent
        run = SyncRun(connection_id=conn.id, kind="daily")
        db.session.add(run)
        db.session.commit()
        evaluate_segments(conn.id, when, run_id=run.id)
        state = cc_diff.apply_diff(None, conn.id, run.id, {}, lambda state: None)
    # the bad address was never sent; CC took the unsubscribed one off every list itself
    assert cc.exports == [] and cc.removals == [] and state["exports"] == 0

    by_key = {s.key: i for i, s in enumerate(segments)}
    both = 1 << by_key["all"] | 1 << by_key["first_time"]
    db.session.add(Customer(connection_id=conn.id, email="more@x.io"))
    db.session.commit()
    evaluate_segments(conn.id, now + timedelta(days=11))
    # a leaver of All + First-time is on both lists: the smaller one is exported
    assert cc_diff._lists_to_export(segments, {both}) == ["L-first_time"]


def test_a_list_is_rebuilt_only_when_that_takes_half_the_calls():
    assert not cc_diff.rebuild_is_cheaper(members=1_000, left=500)  # 2 calls vs 1
    assert not cc_diff.rebuild_is_cheaper(members=1_000, left=1_001)  # 2 vs 3
    assert cc_diff.rebuild_is_cheaper(members=1_000, left=1_501)  # 2 vs 4
    assert not cc_diff.rebuild_is_cheaper(members=108_000, left=2_987)  # 4 vs 6: 108k re-sent
    assert cc_diff.rebuild_is_cheaper(members=80_000, left=3_000)  # 3 vs 6
