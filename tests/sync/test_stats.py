"""Purchase stats computed in SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text, update

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Merchant, StoreConnection
from cc_storeplugin.platforms.base import CustomerRecord, OrderRecord
from cc_storeplugin.sync.mirror import upsert_customers, upsert_orders
from cc_storeplugin.sync.stats import recompute_all_stats, recompute_stats

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def conns(any_db_app):
    merchant = Merchant(cc_account_id="acct-1")
    a = StoreConnection(merchant=merchant, platform="magento")
    b = StoreConnection(merchant=merchant, platform="kibo")
    db.session.add_all([merchant, a, b])
    db.session.commit()
    return a.id, b.id


def order(pid, email, total, *, state="complete", purchase=True, refunded="0", day=0, updated=0):
    return OrderRecord(
        platform_id=str(pid),
        email=email,
        state=state,
        is_purchase=purchase,
        placed_at=T0 + timedelta(days=day),
        grand_total=Decimal(total),
        total_refunded=Decimal(refunded),
        updated_at=T0 + timedelta(hours=updated),
    )


def stats(connection_id, email):
    db.session.expire_all()
    c = db.session.scalar(
        select(Customer).where(Customer.connection_id == connection_id, Customer.email == email)
    )
    return c.purchase_count, c.total_spent, c.first_purchase_at, c.last_purchase_at


def test_only_purchases_count_and_refunds_subtract(conns):
    a, _ = conns
    upsert_customers(a, [CustomerRecord(platform_id="1", email="ann@example.com")])
    upsert_orders(
        a,
        [
            order(1, "ann@example.com", "100.00", day=0),
            order(2, "ANN@example.com", "80.00", refunded="30.00", day=10),
            order(3, "ann@example.com", "500.00", state="canceled", purchase=False, day=-5),
            order(
                4, "ann@example.com", "70.00", state="closed", purchase=False, refunded="70", day=20
            ),
            order(5, "ann@example.com", "60.00", state="pending_payment", purchase=False, day=30),
            order(6, "nobuy@example.com", "10.00", state="canceled", purchase=False),
        ],
    )
    changed = recompute_stats(a)
    db.session.commit()
    assert stats(a, "ann@example.com") == (2, Decimal("150.00"), T0, T0 + timedelta(days=10))
    assert stats(a, "nobuy@example.com") == (0, Decimal("0"), None, None)
    assert changed == 1
    assert recompute_stats(a) == 0  # nothing changed, nothing rewritten


def test_contacts_whose_purchases_go_away_are_reset(conns):
    a, _ = conns
    ids = upsert_orders(a, [order(1, "ann@example.com", "40.00")])
    recompute_stats(a, ids)
    ids = upsert_orders(
        a, [order(1, "ann@example.com", "40.00", state="canceled", purchase=False, updated=1)]
    )
    assert recompute_stats(a, ids) == 1
    db.session.commit()
    assert stats(a, "ann@example.com") == (0, Decimal("0"), None, None)


def test_only_the_given_contacts_are_recomputed(conns):
    a, _ = conns
    upsert_orders(a, [order(1, "ann@example.com", "10.00"), order(2, "bob@example.com", "20.00")])
    recompute_stats(a)
    db.session.commit()
    db.session.execute(update(Customer).values(purchase_count=7))  # both drift
    affected = upsert_orders(a, [order(3, "ann@example.com", "5.00", day=3)])
    ann_id = db.session.scalar(select(Customer.id).where(Customer.email == "ann@example.com"))
    assert affected == {ann_id}

    assert recompute_stats(a, affected) == 1
    db.session.commit()
    assert stats(a, "ann@example.com") == (2, Decimal("15.00"), T0, T0 + timedelta(days=3))
    assert stats(a, "bob@example.com")[0] == 7  # not in the set: untouched
    assert recompute_stats(a, []) == 0


def test_other_connections_are_untouched(conns):
    a, b = conns
    upsert_orders(a, [order(1, "ann@example.com", "10.00")])
    upsert_orders(b, [order(1, "ann@example.com", "99.00")])
    b_ids = {c for c in db.session.scalars(select(Customer.id).where(Customer.connection_id == b))}
    assert recompute_stats(a) == 1
    db.session.commit()
    assert stats(a, "ann@example.com")[:2] == (1, Decimal("10.00"))
    assert stats(b, "ann@example.com")[:2] == (0, Decimal("0"))
    assert recompute_stats(a, b_ids) == 0  # ids of another connection are ignored
    assert stats(b, "ann@example.com")[:2] == (0, Decimal("0"))


def test_many_ids_are_chunked(conns):
    a, _ = conns
    orders = [order(i, f"c{i}@example.com", "1.50") for i in range(1200)]
    ids = set()
    for i in range(0, len(orders), 300):
        ids |= upsert_orders(a, orders[i : i + 300])
    assert len(ids) == 1200
    assert recompute_stats(a, ids) == 1200
    db.session.commit()
    assert stats(a, "c1199@example.com")[:2] == (1, Decimal("1.50"))


def test_a_full_recompute_leaves_the_session_settings_as_they_were(conns):
    a, _ = conns
    if db.engine.dialect.name != "postgresql":
        pytest.skip("work_mem is a PostgreSQL setting")
    db.session.execute(text("SET work_mem = '7MB'"))
    upsert_orders(a, [order(1, "ann@example.com", "10.00")])
    recompute_stats(a)
    assert db.session.execute(text("SHOW work_mem")).scalar() == "7MB"
    assert db.session.execute(text("SHOW enable_indexscan")).scalar() == "on"
    db.session.commit()
    assert stats(a, "ann@example.com")[0] == 1


def test_recompute_all_splits_the_contacts_and_commits_every_part(conns):
    """The import's stats phase (two sessions on PostgreSQL, by id range) gives every contact
    of the connection, at both ends of the id range, the same figures as the serial path,
    and leaves the other connection alone."""
    a, b = conns
    emails = [f"p{n}@example.com" for n in range(9)]
    upsert_customers(a, [CustomerRecord(platform_id=str(n), email=e) for n, e in enumerate(emails)])
    upsert_orders(a, [order(n, e, f"{10 + n}.00", day=n) for n, e in enumerate(emails) if n % 4])
    upsert_orders(b, [order(99, "p0@example.com", "5.00")])
    db.session.commit()

    assert recompute_all_stats(a) == 6  # contacts 1-3 and 5-7 bought
    db.session.remove()
    for n, e in enumerate(emails):
        want = (1, Decimal(f"{10 + n}.00"), T0 + timedelta(days=n), T0 + timedelta(days=n))
        assert stats(a, e) == (want if n % 4 else (0, Decimal("0"), None, None))
    assert stats(b, "p0@example.com") == (0, Decimal("0"), None, None)  # not recomputed
    assert recompute_all_stats(a) == 0
    assert recompute_all_stats(b) == 1
