"""MagentoAdapter against the Magento sandbox over loopback HTTP: pages, mapping, resume, faults."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from cc_storeplugin.platforms.base import Page
from cc_storeplugin.platforms.magento.adapter import (
    NON_PURCHASE_STATES,
    MagentoAdapter,
    map_customer,
    map_order,
)
from tests.platforms.test_magento_client_sandbox import Sandbox, receiver  # noqa: F401
from tests.sandbox.conftest import store_factory  # noqa: F401

CUSTOMERS = 400  # 1,200 orders, 200 carts


def rows(store: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def store(store_factory) -> Path:  # noqa: F811
    return store_factory(customers=CUSTOMERS, seed=5)


@pytest.fixture
def connect(receiver) -> Iterator[Callable[..., tuple[MagentoAdapter, Sandbox]]]:  # noqa: F811
    made: list[Sandbox] = []

    def make(store: Path, page_size: int = 300, **opts) -> tuple[MagentoAdapter, Sandbox]:
        sb = Sandbox(receiver, store=str(store), max_page_size=300, **opts)
        made.append(sb)
        return MagentoAdapter(sb.connected(max_retries=8), page_size=page_size), sb

    yield make
    for sb in made:
        sb.server.stop()


def drain(pages: Iterator[Page]) -> tuple[list, list[Page]]:
    seen = list(pages)
    return [r for p in seen for r in p.records], seen


def test_every_customer_once_in_id_order_with_resumable_cursors(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=150)
    customers, pages = drain(adapter.customers())
    ids = [int(c.platform_id) for c in customers]
    assert ids == [r[0] for r in rows(store, "SELECT id FROM customers ORDER BY id")]
    assert [p.number for p in pages] == [1, 2, 3]
    size = pages[0].cursor["size"]  # the page size travels with the cursor
    assert [p.cursor for p in pages] == [{"page": n, "size": size} for n in (2, 3, 4)]
    assert {p.total for p in pages} == {CUSTOMERS}
    assert all(not p.rejected for p in pages)


def test_customer_fields(store: Path, connect) -> None:
    adapter, _ = connect(store)
    by_id = {c.platform_id: c for c in drain(adapter.customers())[0]}
    db = rows(store, "SELECT id, email, firstname, lastname, group_id, created_at, updated_at, "
                     "is_subscribed FROM customers")  # fmt: skip
    for cid, email, first, last, group, created, updated, subscribed in db:
        rec = by_id[str(cid)]
        assert (rec.email, rec.first_name, rec.last_name, rec.group) == (
            email, first, last, str(group))  # fmt: skip
        assert rec.created_at == datetime.fromisoformat(created).replace(tzinfo=UTC)
        assert rec.updated_at == datetime.fromisoformat(updated).replace(tzinfo=UTC)
        assert rec.subscribed is (True if subscribed else None)  # never False from an import
    assert any(c.subscribed for c in by_id.values())


def test_orders_guests_purchases_and_money(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=300)
    orders, pages = drain(adapter.orders())
    sql = ("SELECT id, increment_id, customer_id, customer_email, customer_is_guest, state, "
           "grand_total, total_refunded, created_at FROM orders")  # fmt: skip
    db = {r[0]: r for r in rows(store, sql)}
    assert sorted(int(o.platform_id) for o in orders) == sorted(db)
    assert len(orders) == len({o.platform_id for o in orders}) == len(db)
    assert len(pages) == 4 and pages[-1].total == len(db)
    states = set()
    for o in orders:
        _, inc, cid, email, guest, state, grand, refunded, created = db[int(o.platform_id)]
        states.add(state)
        assert (o.number, o.email, o.state) == (inc, email, state)
        assert o.customer_platform_id == (None if guest else str(cid))
        assert o.is_purchase is (state not in {"canceled", "closed", "pending_payment"})
        assert o.grand_total == Decimal(str(grand)).quantize(Decimal("0.01"))
        assert o.total_refunded == Decimal(str(refunded)).quantize(Decimal("0.01"))
        assert o.placed_at == datetime.fromisoformat(created).replace(tzinfo=UTC)
    assert states >= NON_PURCHASE_STATES | {"complete", "processing"}
    assert any(o.customer_platform_id is None for o in orders)  # the store has guest orders
    lines = rows(store, "SELECT COUNT(*), SUM(qty * price) FROM order_items")[0]
    assert sum(len(o.lines) for o in orders) == lines[0]
    total = sum(line.qty * line.price for o in orders for line in o.lines)
    assert abs(float(total) - lines[1]) < 0.01


def test_carts(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=64)
    carts, pages = drain(adapter.carts())
    db = {r[0]: r for r in rows(store, "SELECT id, customer_id, customer_email, is_active, "
                                       "items_count, reserved_order_id FROM carts")}  # fmt: skip
    assert sorted(int(c.platform_id) for c in carts) == sorted(db) and len(carts) == len(db)
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    for c in carts:
        _, cid, email, active, count, reserved = db[int(c.platform_id)]
        assert c.is_active is bool(active) and c.items_count == count
        assert c.customer_platform_id == (str(cid) if cid else None)
        assert c.converted_order_id == reserved
        if cid is None:
            assert c.email == (email or None)
    assert any(c.email is None for c in carts)  # guest carts without an email
    assert any(c.grand_total > 0 for c in carts)


def test_resume_from_a_cursor_yields_exactly_the_rest(store: Path, connect) -> None:
    adapter, sb = connect(store, page_size=100)
    all_ids = [o.platform_id for o in drain(adapter.orders())[0]]
    stream = adapter.orders()
    first = [next(stream), next(stream)]  # the worker dies after writing page 2
    stream.close()
    before = adapter.calls
    rest = drain(adapter.orders(first[-1].cursor))[1]
    assert rest[0].number == 3
    got = [o.platform_id for p in first + rest for o in p.records]
    assert got == all_ids
    assert adapter.calls - before == len(rest)  # no page fetched twice


def test_resume_past_the_end_yields_nothing(store: Path, connect) -> None:
    adapter, _ = connect(store)
    assert list(adapter.customers({"page": 99})) == []
    with pytest.raises(ValueError):
        next(adapter.customers({"page": 0}))


def test_poison_records_are_rejected_and_the_rest_continues(store: Path, connect) -> None:
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE customers SET email = '' WHERE id = 7")
        conn.execute("UPDATE customers SET created_at = 'yesterday-ish' WHERE id = 301")
        conn.execute("UPDATE orders SET created_at = '2026-13-45 99:00:00' WHERE id = 20")
    inc = rows(store, "SELECT increment_id FROM orders WHERE id = 20")[0][0]
    adapter, _ = connect(store, page_size=300)
    customers, pages = drain(adapter.customers())
    rejected = [r for p in pages for r in p.rejected]
    assert [ref for ref, _ in rejected] == ["customer 7", "customer 301"]
    assert rejected[0][1] == "no email" and "created_at" in rejected[1][1]
    assert len(customers) == CUSTOMERS - 2
    assert "7" not in {c.platform_id for c in customers}
    orders, pages = drain(adapter.orders())
    assert [ref for p in pages for ref, _ in p.rejected] == [f"order {inc}"]
    assert len(orders) == rows(store, "SELECT COUNT(*) FROM orders")[0][0] - 1


def test_faults_lose_nothing(store: Path, connect) -> None:
    adapter, sb = connect(store, page_size=100)
    clean = [o.platform_id for o in drain(adapter.orders())[0]]
    faults = {"p429": 0.2, "p5xx": 0.15, "pdrop": 0.1, "seed": 11}
    assert requests.post(f"{sb.url}/_sandbox/faults", json=faults, timeout=10).ok
    before = adapter.calls
    stormy = [o.platform_id for o in drain(adapter.orders())[0]]
    assert stormy == clean
    assert adapter.calls - before > 12  # faults were met and retried
    log = requests.get(f"{sb.url}/_sandbox/log?limit=1000", timeout=10).json()["entries"]
    assert {e["fault"] for e in log} >= {"429", "drop"}


def test_legacy_paging_store_terminates(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=300, legacy_paging=True)
    customers, pages = drain(adapter.customers())
    assert len(customers) == CUSTOMERS and [p.number for p in pages] == [1, 2]


def test_set_marketing_opt_out_round_trip(store: Path, connect) -> None:
    adapter, _ = connect(store)
    cid = rows(store, "SELECT id FROM customers WHERE is_subscribed = 1 LIMIT 1")[0][0]
    adapter.set_marketing_opt_out(str(cid), True)
    assert rows(store, "SELECT is_subscribed FROM customers WHERE id = ?", (cid,)) == [(0,)]
    rec = next(c for c in drain(adapter.customers())[0] if c.platform_id == str(cid))
    assert rec.subscribed is None
    adapter.set_marketing_opt_out(str(cid), False)
    assert rows(store, "SELECT is_subscribed FROM customers WHERE id = ?", (cid,)) == [(1,)]


def test_mapping_of_documented_samples() -> None:
    cust = map_customer({"id": 5, "email": "a@example.com", "firstname": "A", "lastname": "B",
                         "group_id": 1, "created_at": "2020-07-22 23:12:47",
                         "extension_attributes": {"is_subscribed": False}})  # fmt: skip
    assert cust.created_at == datetime(2020, 7, 22, 23, 12, 47, tzinfo=UTC)
    assert cust.subscribed is None and cust.group == "1"
    order = map_order({"entity_id": 9, "increment_id": "000000009", "customer_is_guest": 1,
                       "customer_email": "g@example.com", "state": "closed", "status": "closed",
                       "grand_total": 19.99, "total_refunded": 19.99,
                       "created_at": "2024-01-02 03:04:05",
                       "items": [{"sku": "P", "qty_ordered": 2, "price": 5.5},
                                 {"sku": "P-child", "qty_ordered": 2, "price": 0,
                                  "parent_item_id": 1}]})  # fmt: skip
    assert order.customer_platform_id is None and order.is_purchase is False
    assert order.grand_total == Decimal("19.99") and order.currency is None
    assert [(ln.sku, ln.qty, ln.price) for ln in order.lines] == [
        ("P", Decimal("2"), Decimal("5.5"))]  # fmt: skip


def test_page_size_is_kept_within_the_store_limit(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=1000)  # the store rejects pages above 300
    customers, pages = drain(adapter.customers())
    assert adapter.page_size == 300 and len(pages) == 2 and len(customers) == CUSTOMERS
