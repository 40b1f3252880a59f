"""KiboAdapter against the Kibo sandbox over loopback HTTP: pages, mapping, resume, faults."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from cc_storeplugin.platforms.base import Page
from cc_storeplugin.platforms.kibo.adapter import KiboAdapter, is_purchase, map_order
from cc_storeplugin.platforms.kibo.client import KiboClient
from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, create_app
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from tests.sandbox.conftest import store_factory  # noqa: F401

CUSTOMERS = 300  # 900 orders
NOT_PURCHASES = {"canceled", "closed", "pending_payment"}  # the Magento rule, same store rows


def rows(store: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def store(store_factory) -> Path:  # noqa: F811
    return store_factory(customers=CUSTOMERS, seed=9)


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[KiboAdapter, RunningServer]]]:
    servers: list[RunningServer] = []

    def make(store: Path, page_size: int = 200, **opts) -> tuple[KiboAdapter, RunningServer]:
        server = serve_in_thread(create_app(store=str(store), **opts))
        servers.append(server)
        client = KiboClient(server.url, DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, 12345,
                            backoff_s=0.01, max_retries=8)  # fmt: skip
        return KiboAdapter(client, page_size=page_size), server

    yield make
    for server in servers:
        server.stop()


def drain(pages: Iterator[Page]) -> tuple[list, list[Page]]:
    seen = list(pages)
    return [r for p in seen for r in p.records], seen


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_customer_once_with_fields(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=120)
    customers, pages = drain(adapter.customers())
    db = rows(store, "SELECT id, email, firstname, lastname, created_at, updated_at, "
                     "accepts_marketing FROM customers ORDER BY id")  # fmt: skip
    assert [c.platform_id for c in customers] == [str(r[0]) for r in db]
    assert [p.number for p in pages] == [1, 2, 3]
    assert [p.cursor for p in pages] == [{"start": 120}, {"start": 240}, {"start": 300}]
    assert {p.total for p in pages} == {CUSTOMERS}
    for rec, (_, email, first, last, created, updated, marketing) in zip(
        customers, db, strict=True
    ):
        assert (rec.email, rec.first_name, rec.last_name) == (email, first, last)
        assert (rec.created_at, rec.updated_at) == (ts(created), ts(updated))
        assert rec.subscribed is (True if marketing else None)  # never False from an import
    assert any(c.subscribed for c in customers) and any(c.subscribed is None for c in customers)


def test_every_order_once_guests_and_purchases(store: Path, connect) -> None:
    adapter, _ = connect(store)
    orders, pages = drain(adapter.orders())
    sql = ("SELECT id, customer_id, customer_email, state, grand_total, total_refunded, "
           "created_at FROM orders")  # fmt: skip
    db = {r[0]: r for r in rows(store, sql)}
    assert [int(o.number) for o in orders] == sorted(db)
    assert len({o.platform_id for o in orders}) == len(db) == pages[0].total
    assert len(pages) == 5 and all(not p.rejected for p in pages)
    states = set()
    for o in orders:
        _, cid, email, state, grand, refunded, created = db[int(o.number)]
        states.add(state)
        assert o.email == email and o.placed_at == ts(created)
        assert o.customer_platform_id == (None if cid is None else str(cid))
        assert o.is_purchase is (state not in NOT_PURCHASES), (state, o.state, o.status)
        assert o.grand_total == Decimal(str(round(grand, 2)))
        assert o.total_refunded == Decimal(str(round(refunded, 2)))
    assert states >= NOT_PURCHASES | {"complete", "new", "processing", "holded"}
    assert any(o.customer_platform_id is None for o in orders)
    n_lines = rows(store, "SELECT COUNT(*) FROM order_items")[0][0]
    assert sum(len(o.lines) for o in orders) == n_lines
    assert all(line.sku and line.category for o in orders for line in o.lines)


def test_resume_from_a_cursor_yields_exactly_the_rest(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=100)
    everyone = [c.platform_id for c in drain(adapter.customers())[0]]
    stream = adapter.customers()
    done = next(stream)  # the worker dies after writing page 1
    stream.close()
    rest = drain(adapter.customers(done.cursor))[1]
    assert rest[0].number == 2
    assert [c.platform_id for p in [done, *rest] for c in p.records] == everyone
    assert list(adapter.customers({"start": CUSTOMERS})) == []


def test_poison_records_are_rejected_and_the_rest_continues(store: Path, connect) -> None:
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE customers SET email = '' WHERE id = 5")
        conn.execute("UPDATE customers SET created_at = 'not a date' WHERE id = 250")
        conn.execute("UPDATE orders SET customer_email = '' WHERE id = 3")
    adapter, _ = connect(store, page_size=200)
    customers, pages = drain(adapter.customers())
    rejected = [r for p in pages for r in p.rejected]
    assert [ref for ref, _ in rejected] == ["customer 5", "customer 250"]
    assert rejected[0][1] == "no email" and "createDate" in rejected[1][1]
    assert len(customers) == CUSTOMERS - 2
    orders, pages = drain(adapter.orders())
    assert [r for p in pages for r in p.rejected] == [("order 3", "no email")]
    assert len(orders) == rows(store, "SELECT COUNT(*) FROM orders")[0][0] - 1


def test_faults_lose_nothing(store: Path, connect) -> None:
    adapter, server = connect(store, page_size=100)
    clean = [o.platform_id for o in drain(adapter.orders())[0]]
    faults = {"p429": 0.2, "p5xx": 0.15, "pdrop": 0.1, "seed": 4}
    assert requests.post(f"{server.url}/_sandbox/faults", json=faults, timeout=10).ok
    before = adapter.calls
    assert [o.platform_id for o in drain(adapter.orders())[0]] == clean
    assert adapter.calls - before > 9  # 9 pages, and retries on top
    log = requests.get(f"{server.url}/_sandbox/log?limit=1000", timeout=10).json()["entries"]
    assert {e["fault"] for e in log} >= {"429", "drop"}


def test_set_marketing_opt_out_round_trip(store: Path, connect) -> None:
    adapter, _ = connect(store)
    cid, email = rows(store, "SELECT id, email FROM customers WHERE accepts_marketing = 1")[0]
    adapter.set_marketing_opt_out(str(cid), True)
    assert rows(store, "SELECT accepts_marketing, email FROM customers WHERE id = ?", (cid,)) == [
        (0, email)
    ]
    rec = next(c for c in drain(adapter.customers())[0] if c.platform_id == str(cid))
    assert rec.subscribed is None
    adapter.set_marketing_opt_out(str(cid), False)
    assert rows(store, "SELECT accepts_marketing FROM customers WHERE id = ?", (cid,)) == [(1,)]


def test_carts_cannot_be_listed(store: Path, connect) -> None:
    adapter, _ = connect(store)
    before = adapter.calls
    assert list(adapter.carts()) == [] and adapter.calls == before


@pytest.mark.parametrize(
    ("status", "payment", "total", "refunded", "expected"),
    [
        ("Completed", "Paid", "50", "0", True),
        ("Completed", "Paid", "50", "20", True),  # partly refunded still counts
        ("Completed", "Paid", "50", "50", False),  # refunded in full
        ("Completed", "Paid", "0", "0", True),  # a free order is not "refunded"
        ("Cancelled", "Void", "50", "0", False),
        ("Abandoned", "Pending", "50", "0", False),
        ("Pending", "AwaitingPayment", "50", "0", False),
        ("Submitted", "AwaitingPayment", "50", "0", False),
        ("Submitted", "Authorized", "50", "0", True),
        ("PendingReview", "Authorized", "50", "0", True),
    ],
)
def test_purchase_rule(status, payment, total, refunded, expected) -> None:
    assert is_purchase(status, payment, Decimal(total), Decimal(refunded)) is expected


def test_order_without_submitted_date_uses_create_date() -> None:
    order = map_order({"id": "ab", "status": "Processing", "email": "x@example.com",
                       "auditInfo": {"createDate": "2026-01-02T03:04:05.000Z"}})  # fmt: skip
    assert order.placed_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert order.customer_platform_id is None and order.number is None


def test_page_size_is_kept_within_kibos_maximum(store: Path, connect) -> None:
    adapter, _ = connect(store, page_size=1000)  # the sandbox answers 400 above 200
    customers, pages = drain(adapter.customers())
    assert adapter.page_size == 200 and len(pages) == 2 and len(customers) == CUSTOMERS
