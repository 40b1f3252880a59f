"""The PostgreSQL import's staged order path gives exactly the mirror of page upserts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    Customer,
    Merchant,
    Order,
    OrderItem,
    OrderStage,
    StoreConnection,
    SyncRun,
)
from cc_storeplugin.platforms.base import CustomerRecord, OrderLine, OrderRecord
from cc_storeplugin.sync.mirror import upsert_customers, upsert_orders
from cc_storeplugin.sync.order_stage import BackgroundMerger, merge_staged_orders, stage_orders

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(any_db_app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("order staging is the PostgreSQL import path")
    merchant = Merchant(cc_account_id="acct-stage")
    a = StoreConnection(merchant=merchant, platform="magento")
    b = StoreConnection(merchant=merchant, platform="magento")
    db.session.add_all([merchant, a, b])
    db.session.flush()
    run = SyncRun(connection_id=b.id, kind="import", status="RUNNING")
    db.session.add(run)
    db.session.commit()
    return a.id, b.id, run.id


def order(pid, email, *, updated, placed=T0, first=None, last=None, lines=(("A", "1"),), **kw):
    return OrderRecord(
        platform_id=str(pid),
        email=email,
        state=kw.pop("state", "complete"),
        is_purchase=kw.pop("is_purchase", True),
        placed_at=placed,
        grand_total=Decimal(kw.pop("total", "10.00")),
        updated_at=updated,
        first_name=first,
        last_name=last,
        lines=tuple(OrderLine(sku=s, category="Cat", qty=Decimal(q), price=Decimal("2.50"))
                    for s, q in lines),
        **kw,
    )  # fmt: skip


def random_pages(seed: int, undated: float = 0.1) -> list[list[OrderRecord]]:
    """Pages with repeated orders (newer, older, equal and ``undated`` share of unknown
    versions), guests whose emails differ in case and spacing, blank and changing names,
    and changing lines."""
    rng = random.Random(seed)
    pages = []
    for _ in range(12):
        page = []
        for _ in range(rng.randint(5, 25)):
            pid = rng.randint(1, 60)
            who = rng.randint(1, 15)
            dated = rng.random() >= undated
            email = rng.choice([f"p{who}@shop.test", f" P{who}@Shop.TEST", f"p{who}@SHOP.test "])
            page.append(
                order(
                    pid, email,
                    updated=T0 + timedelta(hours=rng.randint(0, 5)) if dated else None,
                    placed=T0 - timedelta(minutes=pid),
                    first=rng.choice([None, "", "  ", f"F{rng.randint(1, 3)}"]),
                    last=rng.choice([None, f"L{rng.randint(1, 3)}"]),
                    total=f"{rng.randint(1, 99)}.00",
                    lines=tuple((rng.choice("ABC"), str(rng.randint(1, 3)))
                                for _ in range(rng.randint(0, 3))),
                    is_purchase=rng.random() > 0.2,
                )
            )  # fmt: skip
        pages.append(page)
    return pages


def mirror_of(connection_id, *, guest_names=True):
    """Contacts and orders without ids. Without ``guest_names``: only contacts with orders,
    and guests without names (see the batch test)."""
    db.session.expire_all()
    people = {
        c.id: (c.email, c.is_guest, c.first_name, c.last_name, c.platform_customer_id)
        for c in db.session.scalars(select(Customer).where(Customer.connection_id == connection_id))
    }
    if not guest_names:
        buyers = set(db.session.scalars(select(Order.customer_id)))
        people = {k: (v[:2] if v[1] else v) for k, v in people.items() if k in buyers or not v[1]}
    orders = {}
    for o in db.session.scalars(select(Order).where(Order.connection_id == connection_id)):
        lines = sorted(
            (i.sku, i.category, i.qty, i.price)
            for i in db.session.scalars(select(OrderItem).where(OrderItem.order_id == o.id))
        )
        orders[o.platform_order_id] = (
            o.email, people.get(o.customer_id), o.state, o.is_purchase, o.grand_total,
            o.placed_at, o.platform_updated_at, tuple(lines),
        )  # fmt: skip
    return sorted(people.values()), orders


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("merge_every", [1, 3, 100])
def test_staged_pages_merged_in_batches_equal_page_upserts(pg, seed, merge_every):
    a, b, run = pg
    known = [CustomerRecord(platform_id=str(i), email=f"P{i}@shop.test", first_name=f"Reg{i}",
                            updated_at=T0) for i in range(1, 6)]  # fmt: skip
    upsert_customers(a, known)
    upsert_customers(b, known)
    db.session.commit()

    # An order without updated_at is an unknown version: a batch takes any dated version
    # over it, while the page path lets it overwrite a dated one seen in an earlier page.
    for n, page in enumerate(random_pages(seed, undated=0.1 if merge_every == 1 else 0), 1):
        upsert_orders(a, page)
        stage_orders(run, page)
        if n % merge_every == 0:
            merge_staged_orders(b, run)
        db.session.commit()
    merge_staged_orders(b, run)
    db.session.commit()

    # One page a merge gives the page path's mirror exactly. A bigger batch sees more of a
    # guest's orders at once: the guest is named from its latest order in the batch (the page
    # path: in the first page), and an email that only an older version of an order had gets
    # no contact. Orders, lines and their contacts are the same.
    strict = merge_every == 1
    assert mirror_of(b, guest_names=strict) == mirror_of(a, guest_names=strict)
    assert db.session.scalar(select(func.count()).select_from(OrderStage)) == 0


def test_a_staged_page_is_kept_until_merged_and_a_rolled_back_page_is_gone(pg):
    _, b, run = pg
    stage_orders(run, [order(1, "ann@shop.test", updated=T0)])
    db.session.commit()
    stage_orders(run, [order(2, "bob@shop.test", updated=T0)])
    db.session.rollback()  # the worker died before the page's checkpoint committed

    assert merge_staged_orders(b, run) == 1
    db.session.commit()
    assert db.session.scalars(select(Order.platform_order_id)).all() == ["1"]
    assert merge_staged_orders(b, run) == 0


def test_replaying_merged_pages_changes_nothing(pg):
    _, b, run = pg
    page = [order(i, f"g{i}@shop.test", updated=T0, first="G", lines=(("A", "1"), ("B", "2")))
            for i in range(1, 11)]  # fmt: skip
    stage_orders(run, page)
    merge_staged_orders(b, run)
    db.session.commit()
    item_ids = set(db.session.scalars(select(OrderItem.id)))
    stage_orders(run, page)  # a resumed job downloads the last page again
    merge_staged_orders(b, run)
    db.session.commit()
    assert set(db.session.scalars(select(OrderItem.id))) == item_ids
    assert db.session.scalar(select(func.count()).select_from(Order)) == 10


def test_a_background_merge_while_pages_are_staged_gives_the_same_mirror(pg):
    a, b, run = pg
    merger = BackgroundMerger(b, run)
    try:
        for page in random_pages(4, undated=0):
            upsert_orders(a, page)
            stage_orders(run, page)
            merger.request()  # merges what is committed; this page waits for the next one
            db.session.commit()
    finally:
        merger.close()
    merge_staged_orders(b, run)
    db.session.commit()
    assert mirror_of(b, guest_names=False) == mirror_of(a, guest_names=False)
    assert db.session.scalar(select(func.count()).select_from(OrderStage)) == 0


def test_later_merges_do_not_wade_through_the_rows_of_earlier_ones(pg):
    """Each background merge deletes what it merged and vacuums the stages, so the run_id
    index no longer leads a later merge to the dead rows of earlier ones."""
    from sqlalchemy import text

    _, b, run = pg
    merger = BackgroundMerger(b, run)
    try:
        for page in random_pages(5, undated=0)[:6]:
            stage_orders(run, page)
            db.session.commit()
            merger.request()
    finally:
        merger.close()
    db.session.commit()
    for planner in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
        db.session.execute(text(f"SET LOCAL {planner} = off"))  # the merge's bitmap scan
    plan = db.session.execute(
        text("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM order_stage WHERE run_id = :run"),
        {"run": run},
    ).scalar()
    db.session.commit()

    def rows_seen(node):
        inner = node.get("Plans", [])
        return node.get("Actual Rows", 0) if not inner else sum(rows_seen(p) for p in inner)

    staged = db.session.scalar(select(func.count()).select_from(OrderStage))
    # The index leads only to the rows still waiting (without the VACUUM: every row merged)
    assert rows_seen(plan[0]["Plan"]) == staged
