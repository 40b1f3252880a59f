"""Page upserts into the mirror, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    Cart,
    ConsentEvent,
    Customer,
    Merchant,
    Order,
    OrderItem,
    StoreConnection,
)
from cc_storeplugin.platforms.base import CartRecord, CustomerRecord, OrderLine, OrderRecord
from cc_storeplugin.sync.mirror import upsert_carts, upsert_customers, upsert_orders

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def conns(any_db_app):
    """Two connections of one merchant: (a, b) ids."""
    merchant = Merchant(cc_account_id="acct-1")
    a = StoreConnection(merchant=merchant, platform="magento")
    b = StoreConnection(merchant=merchant, platform="magento")
    db.session.add_all([merchant, a, b])
    db.session.commit()
    return a.id, b.id


def cust(pid, email, first="Ann", last="Lee", subscribed=None, updated=T0, group=None):
    return CustomerRecord(
        platform_id=str(pid),
        email=email,
        first_name=first,
        last_name=last,
        group=group,
        subscribed=subscribed,
        updated_at=updated,
    )


def order(pid, email, *, total="10.00", purchase=True, lines=(("SKU-1", "1"),), **kw):
    return OrderRecord(
        platform_id=str(pid),
        email=email,
        state="complete" if purchase else "canceled",
        is_purchase=purchase,
        placed_at=kw.pop("placed_at", T0),
        grand_total=Decimal(total),
        updated_at=kw.pop("updated", T0),
        lines=tuple(OrderLine(sku=s, qty=Decimal(q), price=Decimal("5")) for s, q in lines),
        **kw,
    )


def contacts(connection_id):
    return db.session.scalars(
        select(Customer).where(Customer.connection_id == connection_id).order_by(Customer.email)
    ).all()


def contact(connection_id, email):
    db.session.expire_all()
    return db.session.scalar(
        select(Customer).where(Customer.connection_id == connection_id, Customer.email == email)
    )


def count(model, **where):
    q = select(func.count()).select_from(model)
    for k, v in where.items():
        q = q.where(getattr(model, k) == v)
    return db.session.scalar(q)


def ledger(connection_id, email):
    return [
        (e.action, e.source)
        for e in db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.connection_id == connection_id, ConsentEvent.email == email)
            .order_by(ConsentEvent.id)
        )
    ]


def test_the_same_pages_twice_change_nothing(conns):
    a, _ = conns
    customers = [cust(i, f"C{i}@Example.com", subscribed=bool(i % 2)) for i in range(1, 31)]
    orders = [
        order(100 + i, f"c{i}@example.com", lines=(("A", "1"), ("B", "2"))) for i in range(1, 31)
    ]
    orders.append(order(999, "Guest@Example.com"))

    first = upsert_customers(a, customers)
    first_ids = upsert_orders(a, orders)
    db.session.commit()
    snapshot = [(c.id, c.email, c.consent_state, c.updated_at) for c in contacts(a)]
    item_ids = set(db.session.scalars(select(OrderItem.id)))

    again = upsert_customers(a, customers)
    again_ids = upsert_orders(a, orders)
    db.session.commit()

    assert first["inserted"] == 30 and first["updated"] == 0 and first["consent_changes"] == 30
    assert again["inserted"] == 0 and again["updated"] == 0 and again["unchanged"] == 30
    assert again["consent_changes"] == 0 and again_ids == set()
    assert len(first_ids) == 31
    db.session.expire_all()
    assert [(c.id, c.email, c.consent_state, c.updated_at) for c in contacts(a)] == snapshot
    assert count(Customer) == 31 and count(Order) == 31 and count(OrderItem) == 61
    assert set(db.session.scalars(select(OrderItem.id))) == item_ids
    assert count(ConsentEvent) == 30


def test_emails_differing_only_in_case_are_one_contact_and_the_lowest_id_wins(conns):
    a, b = conns
    high = cust(20, "Ann@Example.com ", first="Annie", last="", group="wholesale")
    low = cust(3, " ann@example.COM", first="Ann", last="Lee")
    upsert_customers(a, [high, low])  # one page
    upsert_customers(b, [high])  # two pages, the higher id first...
    upsert_customers(b, [low])
    db.session.commit()

    for connection_id in (a, b):
        [only] = contacts(connection_id)
        assert (only.email, only.platform_customer_id) == ("ann@example.com", "3")
        assert (only.first_name, only.last_name, only.customer_group) == ("Ann", "Lee", "wholesale")

    upsert_customers(b, [high])  # ...and the loser coming back does not take over
    db.session.commit()
    assert contact(b, "ann@example.com").platform_customer_id == "3"
    assert contact(b, "ann@example.com").first_name == "Ann"


def test_integer_ids_are_compared_as_numbers():
    from cc_storeplugin.sync.mirror import _id_rank

    assert min(["10", "9", "100"], key=_id_rank) == "9"


def test_a_guest_order_makes_a_guest_contact_that_a_registered_customer_upgrades(conns):
    a, _ = conns
    ids = upsert_orders(a, [order(1, " Pat@Shop.test", first_name="Pat", last_name="Guest")])
    db.session.commit()
    guest = contact(a, "pat@shop.test")
    assert guest.is_guest and guest.platform_customer_id is None
    assert (guest.first_name, guest.last_name) == ("Pat", "Guest")
    assert ids == {guest.id}

    result = upsert_customers(a, [cust(42, "PAT@shop.test", first="Patricia", last="")])
    db.session.commit()
    upgraded = contact(a, "pat@shop.test")
    assert result["updated"] == 1 and result["inserted"] == 0
    assert upgraded.id == guest.id and not upgraded.is_guest
    assert upgraded.platform_customer_id == "42"
    assert (upgraded.first_name, upgraded.last_name) == ("Patricia", "Guest")
    assert count(Customer) == 1


def test_orders_link_to_contacts_by_normalized_email(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com")])
    upsert_orders(a, [order(10, "  ANN@example.com", customer_platform_id="1")])
    db.session.commit()
    linked = db.session.scalar(select(Order).where(Order.platform_order_id == "10"))
    assert linked.customer_id == contact(a, "ann@example.com").id
    assert linked.email == "ann@example.com"
    assert count(Customer) == 1


def test_an_order_moving_to_another_email_affects_both_contacts(conns):
    a, _ = conns
    upsert_orders(a, [order(10, "one@example.com", lines=(("A", "1"), ("B", "1")))])
    later = order(10, "two@example.com", updated=T0 + timedelta(hours=1), lines=(("C", "3"),))
    affected = upsert_orders(a, [later])
    db.session.commit()
    one, two = contact(a, "one@example.com"), contact(a, "two@example.com")
    assert affected == {one.id, two.id}
    assert db.session.scalars(select(OrderItem.sku)).all() == ["C"]
    assert db.session.scalar(select(Order.customer_id)) == two.id


def test_an_older_version_never_overwrites_a_newer_one(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com", first="New", updated=T0 + timedelta(days=1))])
    upsert_orders(a, [order(10, "ann@example.com", total="20.00", updated=T0 + timedelta(days=1))])
    stale = upsert_customers(a, [cust(1, "ann@example.com", first="Old", updated=T0)])
    assert upsert_orders(a, [order(10, "ann@example.com", total="5.00", updated=T0)]) == set()
    db.session.commit()
    assert stale["updated"] == 0
    assert contact(a, "ann@example.com").first_name == "New"
    assert db.session.scalar(select(Order.grand_total)) == Decimal("20.00")


def test_names_are_never_blanked(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com", first="Ann", last="Lee")])
    upsert_customers(
        a, [cust(1, "ann@example.com", first="", last=None, updated=T0 + timedelta(1))]
    )
    db.session.commit()
    ann = contact(a, "ann@example.com")
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")


def test_store_consent_fills_not_set_and_records_unsubscribes(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com"), cust(2, "bob@example.com", subscribed=True)])
    db.session.commit()
    assert contact(a, "ann@example.com").consent_state == "not_set"
    assert ledger(a, "ann@example.com") == []
    assert contact(a, "bob@example.com").consent_state == "subscribed"
    assert ledger(a, "bob@example.com") == [("subscribed", "store")]

    later = T0 + timedelta(days=2)
    upsert_customers(a, [cust(2, "bob@example.com", subscribed=False, updated=later)])
    db.session.commit()
    bob = contact(a, "bob@example.com")
    assert bob.consent_state == "unsubscribed" and bob.consent_updated_at == later
    assert ledger(a, "bob@example.com") == [("subscribed", "store"), ("unsubscribed", "store")]


def test_an_unsubscribed_contact_stays_unsubscribed_when_the_store_says_subscribed(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com", subscribed=False)])
    db.session.commit()
    result = upsert_customers(
        a, [cust(1, "ann@example.com", subscribed=True, updated=T0 + timedelta(days=30))]
    )
    db.session.commit()
    assert contact(a, "ann@example.com").consent_state == "unsubscribed"
    assert result["consent_changes"] == 0
    assert ledger(a, "ann@example.com") == [("unsubscribed", "store")]


def test_case_variant_accounts_with_one_unsubscribe_are_unsubscribed(conns):
    a, _ = conns
    upsert_customers(
        a,
        [cust(5, "ann@example.com", subscribed=True), cust(9, "ANN@example.com", subscribed=False)],
    )
    db.session.commit()
    assert contact(a, "ann@example.com").consent_state == "unsubscribed"
    assert ledger(a, "ann@example.com") == [("unsubscribed", "store")]


def test_other_connections_are_untouched(conns):
    a, b = conns
    upsert_customers(b, [cust(1, "ann@example.com", first="Bee", subscribed=True)])
    upsert_orders(b, [order(10, "ann@example.com", total="99.00")])
    db.session.commit()
    before = [(c.id, c.first_name, c.consent_state, c.is_guest) for c in contacts(b)]

    upsert_customers(a, [cust(1, "ann@example.com", first="Aye", subscribed=False)])
    upsert_orders(a, [order(10, "ann@example.com", total="1.00"), order(11, "new@example.com")])
    db.session.commit()
    db.session.expire_all()
    assert [(c.id, c.first_name, c.consent_state, c.is_guest) for c in contacts(b)] == before
    assert count(Order, connection_id=b) == 1 and count(Customer, connection_id=b) == 1
    b_order = db.session.scalar(select(Order).where(Order.connection_id == b))
    assert b_order.grand_total == Decimal("99.00") and b_order.customer_id == before[0][0]
    assert count(Customer, connection_id=a) == 2


def test_records_without_email_are_rejected_not_fatal(conns):
    a, _ = conns
    result = upsert_customers(a, [cust(1, "  "), cust(2, "ok@example.com")])
    assert upsert_orders(a, [order(5, "")]) == set()
    db.session.commit()
    assert result["rejected"] == [("1", "missing_field")] and result["inserted"] == 1
    assert count(Customer) == 1 and count(Order) == 0


def test_carts_link_to_contacts_and_upsert_idempotently(conns):
    a, _ = conns
    upsert_customers(a, [cust(1, "ann@example.com"), cust(2, "bob@example.com")])
    carts = [
        CartRecord(platform_id="c1", is_active=True, email="Ann@Example.com", items_count=2),
        CartRecord(platform_id="c2", is_active=True, customer_platform_id="2", updated_at=T0),
        CartRecord(platform_id="c3", is_active=False, email="stranger@example.com"),
    ]
    first = upsert_carts(a, carts)
    again = upsert_carts(a, carts)
    moved = upsert_carts(
        a,
        [
            CartRecord(
                platform_id="c2",
                is_active=False,
                customer_platform_id="2",
                updated_at=T0 + timedelta(1),
            )
        ],
    )
    db.session.commit()
    assert (first["inserted"], again["inserted"], again["updated"]) == (3, 0, 0)
    assert moved["updated"] == 1
    linked = dict(db.session.execute(select(Cart.platform_cart_id, Cart.customer_id)).all())
    assert linked == {
        "c1": contact(a, "ann@example.com").id,
        "c2": contact(a, "bob@example.com").id,
        "c3": None,
    }
    assert count(Customer) == 2  # carts do not create contacts
    assert db.session.scalar(select(Cart.is_active).where(Cart.platform_cart_id == "c2")) is False
