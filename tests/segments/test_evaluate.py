"""Evaluation diffs memberships in SQL and logs each move with its reason, as the clock moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    Customer,
    Merchant,
    Segment,
    SegmentMembership,
    SegmentTransition,
    StoreConnection,
    SyncRun,
)
from cc_storeplugin.segments.evaluate import changed_customers, evaluate_segments, transitions_for

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def conn(any_db_app) -> StoreConnection:
    merchant = Merchant(cc_account_id="acct-eval", name="Acme")
    conn = StoreConnection(merchant=merchant, platform="magento")
    db.session.add(conn)
    db.session.commit()
    return conn


def _customer(conn: StoreConnection, email: str, count: int, last: datetime | None) -> int:
    c = Customer(
        connection_id=conn.id,
        email=email,
        purchase_count=count,
        first_purchase_at=last,
        last_purchase_at=last,
    )
    db.session.add(c)
    db.session.commit()
    return c.id


def _run(conn: StoreConnection) -> int:
    run = SyncRun(connection_id=conn.id, kind="daily")
    db.session.add(run)
    db.session.commit()
    return run.id


def _members(conn: StoreConnection) -> dict[str, set[str]]:
    rows = db.session.execute(
        select(Segment.key, Customer.email)
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .join(Customer, Customer.id == SegmentMembership.customer_id)
        .where(Segment.connection_id == conn.id)
    )
    out: dict[str, set[str]] = {}
    for key, email in rows:
        out.setdefault(key, set()).add(email)
    return out


def _reasons(customer_id: int) -> list[str]:
    return [t["reason"] for t in transitions_for(customer_id)]


def _transition_count() -> int:
    return db.session.scalar(select(func.count()).select_from(SegmentTransition))


def test_first_evaluation_fills_every_list_and_logs_entries_with_reasons(conn):
    never = _customer(conn, "never@x.io", 0, None)
    recent = _customer(conn, "recent@x.io", 1, NOW - 22 * DAY)
    lapsed = _customer(conn, "lapsed@x.io", 1, NOW - 121 * DAY)
    repeat = _customer(conn, "repeat@x.io", 2, NOW - 60 * DAY)
    run = _run(conn)

    result = evaluate_segments(conn.id, NOW, run_id=run)

    assert result == {
        "all": {"entered": 4, "left": 0, "members": 4},
        "first_time": {"entered": 2, "left": 0, "members": 2},
        "repeat": {"entered": 1, "left": 0, "members": 1},
        "recent": {"entered": 1, "left": 0, "members": 1},
        "lapsed": {"entered": 1, "left": 0, "members": 1},
    }
    assert _members(conn) == {
        "all": {"never@x.io", "recent@x.io", "lapsed@x.io", "repeat@x.io"},
        "first_time": {"recent@x.io", "lapsed@x.io"},
        "repeat": {"repeat@x.io"},
        "recent": {"recent@x.io"},
        "lapsed": {"lapsed@x.io"},
    }
    assert _reasons(never) == ["entered All: customer since first import"]
    assert _reasons(recent) == [
        "entered All: customer since first import",
        "entered First-time: 1 purchase",
        "entered Recent: last purchase 2026-11-01, 22 days ago",
    ]
    assert _reasons(lapsed)[-1] == "entered Lapsed: last purchase 2026-07-25, 121 days ago"
    assert _reasons(repeat)[1] == "entered Repeat: 2 purchases"
    history = transitions_for(recent)
    assert history[2]["segment_name"] == "Magento \u2013 Recent Customers"
    assert {(t["action"], t["occurred_at"], t["sync_run_id"]) for t in history} == {
        ("entered", NOW, run)
    }
    recent_segment = db.session.scalar(
        select(Segment.id).where(Segment.connection_id == conn.id, Segment.key == "recent")
    )
    assert set(db.session.scalars(changed_customers(run, recent_segment, "entered"))) == {recent}


def test_time_passing_moves_a_contact_out_of_recent_and_later_into_lapsed(conn):
    bought = NOW - 10 * DAY
    ann = _customer(conn, "ann@x.io", 1, bought)
    evaluate_segments(conn.id, NOW)
    assert _members(conn)["recent"] == {"ann@x.io"}

    day_31 = bought + 31 * DAY
    result = evaluate_segments(conn.id, day_31, run_id=_run(conn))
    assert result["recent"] == {"entered": 0, "left": 1, "members": 0}
    assert result["lapsed"] == {"entered": 0, "left": 0, "members": 0}
    assert "recent" not in _members(conn)
    left = transitions_for(ann)[-1]
    assert left["action"] == "left"
    assert left["occurred_at"] == day_31
    assert left["reason"] == "left Recent: last purchase 2026-11-13, 31 days ago"

    assert evaluate_segments(conn.id, bought + 120 * DAY)["lapsed"]["entered"] == 0
    result = evaluate_segments(conn.id, bought + 121 * DAY)
    assert result["lapsed"] == {"entered": 1, "left": 0, "members": 1}
    assert _members(conn)["lapsed"] == {"ann@x.io"}
    assert _reasons(ann)[-1] == "entered Lapsed: last purchase 2026-11-13, 121 days ago"


def test_evaluating_twice_at_the_same_instant_changes_nothing(conn):
    _customer(conn, "a@x.io", 1, NOW - 3 * DAY)
    _customer(conn, "b@x.io", 4, NOW - 300 * DAY)
    first = evaluate_segments(conn.id, NOW)
    before = _transition_count()
    again = evaluate_segments(conn.id, NOW)
    assert _transition_count() == before
    for key, counts in again.items():
        assert counts == {"entered": 0, "left": 0, "members": first[key]["members"]}, key


def test_a_new_purchase_moves_first_time_to_repeat_and_lapsed_to_recent(conn):
    bob = _customer(conn, "bob@x.io", 1, NOW - 200 * DAY)
    evaluate_segments(conn.id, NOW)
    assert _members(conn)["first_time"] == {"bob@x.io"}
    assert _members(conn)["lapsed"] == {"bob@x.io"}

    later = NOW + 2 * DAY
    db.session.execute(
        update(Customer).where(Customer.id == bob).values(purchase_count=2, last_purchase_at=later)
    )
    db.session.commit()
    result = evaluate_segments(conn.id, later + DAY)
    assert result["first_time"] == {"entered": 0, "left": 1, "members": 0}
    assert result["repeat"] == {"entered": 1, "left": 0, "members": 1}
    assert result["recent"]["entered"] == 1
    assert result["lapsed"]["left"] == 1
    assert result["all"] == {"entered": 0, "left": 0, "members": 1}
    members = _members(conn)
    assert members["repeat"] == members["recent"] == {"bob@x.io"}
    assert "first_time" not in members and "lapsed" not in members
    reasons = _reasons(bob)
    assert "left First-time: 2 purchases" in reasons
    assert "entered Repeat: 2 purchases" in reasons
    assert "entered Recent: last purchase 2026-11-25, 1 day ago" in reasons
    assert "left Lapsed: last purchase 2026-11-25, 1 day ago" in reasons


def test_a_contact_added_later_enters_all_as_a_new_contact(conn):
    _customer(conn, "old@x.io", 0, None)
    evaluate_segments(conn.id, NOW)
    new = _customer(conn, "new@x.io", 0, None)
    assert evaluate_segments(conn.id, NOW + DAY)["all"] == {"entered": 1, "left": 0, "members": 2}
    assert _reasons(new) == ["entered All: new contact in the store"]


def test_another_connections_customers_are_never_touched(conn):
    other = StoreConnection(merchant=conn.merchant, platform="kibo")
    db.session.add(other)
    db.session.commit()
    _customer(conn, "mine@x.io", 1, NOW - DAY)
    theirs = _customer(other, "theirs@x.io", 1, NOW - DAY)
    evaluate_segments(other.id, NOW)
    their_state = (_members(other), _reasons(theirs))

    result = evaluate_segments(conn.id, NOW + 200 * DAY)
    assert result["all"]["members"] == 1
    assert _members(conn)["all"] == {"mine@x.io"}
    assert (_members(other), _reasons(theirs)) == their_state
    assert _members(other)["recent"] == {"theirs@x.io"}
    other_recent = db.session.scalar(
        select(Segment.id).where(Segment.connection_id == other.id, Segment.key == "recent")
    )
    assert evaluate_segments(conn.id, NOW, segment_ids=[other_recent]) == {}
    assert _members(other)["recent"] == {"theirs@x.io"}
    assert transitions_for(theirs, connection_id=conn.id) == []


def test_segment_ids_limits_the_evaluation(conn):
    _customer(conn, "a@x.io", 1, NOW - DAY)
    evaluate_segments(conn.id, NOW)
    recent = db.session.scalar(
        select(Segment.id).where(Segment.connection_id == conn.id, Segment.key == "recent")
    )
    result = evaluate_segments(conn.id, NOW + 40 * DAY, segment_ids=[recent])
    assert result == {"recent": {"entered": 0, "left": 1, "members": 0}}
    assert _members(conn)["first_time"] == {"a@x.io"}


def test_a_refunded_only_purchase_leaves_every_purchase_list(conn):
    cid = _customer(conn, "cy@x.io", 1, NOW - 5 * DAY)
    evaluate_segments(conn.id, NOW)
    db.session.execute(
        update(Customer)
        .where(Customer.id == cid)
        .values(purchase_count=0, first_purchase_at=None, last_purchase_at=None)
    )
    db.session.commit()
    result = evaluate_segments(conn.id, NOW + DAY)
    assert result["recent"] == {"entered": 0, "left": 1, "members": 0}
    assert result["first_time"] == {"entered": 0, "left": 1, "members": 0}
    assert _members(conn) == {"all": {"cy@x.io"}}
    assert _reasons(cid)[-2:] == ["left First-time: 0 purchases", "left Recent: no purchases"]
