"""Built-in segment rules at their exact boundaries, list names, and idempotent creation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Merchant, Segment, StoreConnection
from cc_storeplugin.segments.builtin import ensure_builtin_segments, list_name, rule

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def merchant(any_db_app) -> Merchant:
    m = Merchant(cc_account_id="acct-rules", name="Acme")
    db.session.add(m)
    db.session.commit()
    return m


def _connection(merchant: Merchant, platform: str = "magento") -> StoreConnection:
    conn = StoreConnection(merchant=merchant, platform=platform)
    db.session.add(conn)
    db.session.commit()
    return conn


def _customer(conn: StoreConnection, email: str, count: int, last: datetime | None) -> None:
    db.session.add(
        Customer(
            connection_id=conn.id,
            email=email,
            purchase_count=count,
            first_purchase_at=last,
            last_purchase_at=last,
        )
    )


def _members(conn: StoreConnection, key: str, now: datetime = NOW) -> set[str]:
    query = select(Customer.email).where(Customer.connection_id == conn.id, rule(key, now))
    return set(db.session.scalars(query))


def test_recent_includes_a_purchase_exactly_30_days_ago_and_not_one_second_more(merchant):
    conn = _connection(merchant)
    _customer(conn, "exact@x.io", 1, NOW - 30 * DAY)
    _customer(conn, "older@x.io", 1, NOW - 30 * DAY - SECOND)
    _customer(conn, "today@x.io", 1, NOW)
    db.session.commit()
    assert _members(conn, "recent") == {"exact@x.io", "today@x.io"}


def test_lapsed_excludes_exactly_120_days_and_includes_one_second_more(merchant):
    conn = _connection(merchant)
    _customer(conn, "exact@x.io", 3, NOW - 120 * DAY)
    _customer(conn, "older@x.io", 3, NOW - 120 * DAY - SECOND)
    _customer(conn, "year@x.io", 1, NOW - 365 * DAY)
    db.session.commit()
    assert _members(conn, "lapsed") == {"older@x.io", "year@x.io"}
    assert _members(conn, "recent") == set()


def test_purchase_counts_decide_first_time_and_repeat(merchant):
    conn = _connection(merchant)
    _customer(conn, "never@x.io", 0, None)
    _customer(conn, "once@x.io", 1, NOW - 200 * DAY)
    _customer(conn, "twice@x.io", 2, NOW - 5 * DAY)
    _customer(conn, "often@x.io", 9, NOW - 50 * DAY)
    db.session.commit()
    assert _members(conn, "all") == {"never@x.io", "once@x.io", "twice@x.io", "often@x.io"}
    assert _members(conn, "first_time") == {"once@x.io"}
    assert _members(conn, "repeat") == {"twice@x.io", "often@x.io"}
    assert _members(conn, "recent") == {"twice@x.io"}
    assert _members(conn, "lapsed") == {"once@x.io"}


def test_a_contact_who_never_bought_is_in_all_only(merchant):
    conn = _connection(merchant)
    _customer(conn, "never@x.io", 0, None)
    db.session.commit()
    later = NOW + 1000 * DAY
    assert _members(conn, "all", later) == {"never@x.io"}
    for key in ("first_time", "repeat", "recent", "lapsed"):
        assert _members(conn, key, later) == set(), key


def test_rules_refuse_a_naive_now():
    with pytest.raises(ValueError, match="aware"):
        rule("recent", datetime(2026, 11, 23, 12, 0))


def test_list_names_use_an_en_dash_and_the_platform():
    assert list_name("magento", "all") == "Magento \u2013 All Customers"
    assert list_name("kibo", "lapsed") == "Kibo \u2013 Lapsed Customers"


def test_ensure_builtin_segments_names_them_for_the_platform(merchant):
    magento, kibo = _connection(merchant), _connection(merchant, "kibo")
    assert [s.name for s in ensure_builtin_segments(magento.id)] == [
        "Magento \u2013 All Customers",
        "Magento \u2013 First-time Customers",
        "Magento \u2013 Repeat Customers",
        "Magento \u2013 Recent Customers",
        "Magento \u2013 Lapsed Customers",
    ]
    kibo_segments = ensure_builtin_segments(kibo.id)
    assert [s.key for s in kibo_segments] == ["all", "first_time", "repeat", "recent", "lapsed"]
    assert [s.name for s in kibo_segments] == [
        "Kibo \u2013 All Customers",
        "Kibo \u2013 First-time Customers",
        "Kibo \u2013 Repeat Customers",
        "Kibo \u2013 Recent Customers",
        "Kibo \u2013 Lapsed Customers",
    ]
    assert {s.kind for s in kibo_segments} == {"builtin"}


def test_ensure_builtin_segments_is_idempotent(merchant):
    conn = _connection(merchant)
    first = [s.id for s in ensure_builtin_segments(conn.id)]
    second = [s.id for s in ensure_builtin_segments(conn.id)]
    assert first == second
    count = select(func.count()).select_from(Segment).where(Segment.connection_id == conn.id)
    assert db.session.scalar(count) == 5


def test_ensure_builtin_segments_adds_only_the_missing_ones(merchant):
    conn = _connection(merchant)
    db.session.add(Segment(connection_id=conn.id, key="recent", name="Recent", kind="builtin"))
    db.session.commit()
    segments = ensure_builtin_segments(conn.id)
    assert len(segments) == 5
    assert segments[3].name == "Recent"
    with pytest.raises(LookupError):
        ensure_builtin_segments(conn.id + 1000)
