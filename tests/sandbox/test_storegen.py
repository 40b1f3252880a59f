"""The store generator: counts, determinism, distributions and the quirks stores really have."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta

import pytest

from cc_storeplugin.sandbox.storegen import (
    ORDER_STATES,
    ensure_store,
    generate_store,
    open_store,
    summary,
)


@pytest.fixture(scope="module")
def db(small_store):
    conn = open_store(small_store)
    yield conn
    conn.close()


def rows(conn: sqlite3.Connection, sql: str) -> list:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def one(conn: sqlite3.Connection, sql: str):
    return conn.execute(sql).fetchone()[0]


def digest(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def test_counts_and_meta(db):
    s = summary(db)
    assert s["counts"]["customers"] == 2000
    assert s["counts"]["orders"] == 6000
    assert s["counts"]["carts"] == 1000
    assert s["counts"]["order_items"] >= 6000
    meta = s["meta"]
    assert (meta["seed"], meta["customers"], meta["orders"], meta["carts"]) == (
        "1",
        "2000",
        "6000",
        "1000",
    )
    assert meta["now"] == "2026-11-01 00:00:00" and meta["complete"] == "1"
    assert int(meta["order_items"]) == s["counts"]["order_items"]


def test_same_seed_same_store_other_seed_differs(store_factory):
    a, b, c = store_factory(300, seed=7), store_factory(300, seed=7), store_factory(300, seed=8)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_orders_per_customer_mostly_few_with_long_tail(db):
    per = rows(
        db,
        "SELECT COUNT(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
        "GROUP BY c.id",
    )
    counts = [r[0] for r in per]
    assert sum(1 for c in counts if c <= 3) / len(counts) > 0.6
    assert sum(1 for c in counts if c == 0) > 0
    assert sum(1 for c in counts if c >= 20) >= 5


def test_guests_share_and_emails_matching_customers(db):
    guests = one(db, "SELECT COUNT(*) FROM orders WHERE customer_is_guest = 1")
    assert 0.10 < guests / 6000 < 0.20
    assert (
        one(
            db,
            "SELECT COUNT(*) FROM orders WHERE customer_is_guest = 1 AND customer_id IS NOT NULL",
        )
        == 0
    )  # noqa: E501
    assert (
        one(db, "SELECT COUNT(*) FROM orders WHERE customer_is_guest = 0 AND customer_id IS NULL")
        == 0
    )  # noqa: E501
    matches = rows(
        db,
        "SELECT o.customer_email, c.email FROM orders o JOIN customers c "
        "ON lower(c.email) = lower(o.customer_email) WHERE o.customer_is_guest = 1",
    )
    assert any(g == c for g, c in matches)
    assert any(g != c for g, c in matches)


def test_order_states_refunds_and_statuses(db):
    states = dict(rows(db, "SELECT state, COUNT(*) FROM orders GROUP BY state"))
    assert set(states) == set(ORDER_STATES)
    assert states["complete"] + states["processing"] > 0.6 * 6000
    assert (
        one(
            db,
            "SELECT COUNT(*) FROM orders WHERE state = 'closed' AND total_refunded != grand_total",
        )
        == 0
    )  # noqa: E501
    assert (
        one(db, "SELECT COUNT(*) FROM orders WHERE state != 'closed' AND total_refunded != 0") == 0
    )  # noqa: E501
    assert one(db, "SELECT status FROM orders WHERE state = 'new' LIMIT 1") == "pending"


def test_dates_span_three_years_and_are_consistent(db):
    now = datetime(2026, 11, 1)
    lo, hi = rows(db, "SELECT MIN(created_at), MAX(updated_at) FROM orders")[0]
    assert datetime.fromisoformat(hi) <= now
    assert now - datetime.fromisoformat(lo) > timedelta(days=2 * 365)
    assert now - datetime.fromisoformat(lo) <= timedelta(days=3 * 365)
    for table in ("customers", "orders", "carts"):
        assert one(db, f"SELECT COUNT(*) FROM {table} WHERE updated_at < created_at") == 0  # noqa: S608
    assert one(db, "SELECT COUNT(*) FROM customers WHERE updated_at > created_at") > 0
    before = one(
        db,
        "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.created_at < c.created_at",
    )
    assert before == 0
    # Entity ids grow with time, as in a real store.
    assert rows(db, "SELECT id FROM orders ORDER BY created_at, id") == [
        (i,) for i in range(1, 6001)
    ]


def test_email_quirks(db):
    pairs = rows(
        db,
        "SELECT a.email, b.email, a.website_id, b.website_id FROM customers a JOIN customers b "
        "ON lower(a.email) = lower(b.email) AND a.id < b.id",
    )
    assert len(pairs) >= 3
    assert all(x != y and wa != wb for x, y, wa, wb in pairs)
    emails = {r[0] for r in rows(db, "SELECT email FROM customers")}
    assert {"bob@", "no-at-sign.example.com", "a@b"} <= emails
    assert {"josé@example.com", "用户@example.cn"} <= emails


def test_marketing_flags_about_forty_percent(db):
    subscribed = one(db, "SELECT AVG(is_subscribed) FROM customers")
    marketing = one(db, "SELECT AVG(accepts_marketing) FROM customers")
    assert 0.33 < subscribed < 0.47 and 0.33 < marketing < 0.47


def test_carts_active_converted_and_guest(db):
    s = summary(db)
    assert s["carts_active"] > 0 and s["carts_converted"] > 0
    assert s["carts_active"] + s["carts_converted"] == 1000
    mismatched = one(
        db,
        "SELECT COUNT(*) FROM carts c JOIN orders o ON o.increment_id = c.reserved_order_id "
        "WHERE c.customer_email != o.customer_email OR c.is_active != 0",
    )
    assert mismatched == 0
    assert one(db, "SELECT COUNT(*) FROM carts WHERE reserved_order_id IS NOT NULL") == one(
        db, "SELECT COUNT(*) FROM carts c JOIN orders o ON o.increment_id = c.reserved_order_id"
    )
    guest_with_email = "customer_id IS NULL AND customer_email IS NOT NULL AND is_active = 1"
    assert one(db, f"SELECT COUNT(*) FROM carts WHERE {guest_with_email}") > 0  # noqa: S608
    assert (
        one(db, "SELECT COUNT(*) FROM carts WHERE customer_id IS NULL AND customer_email IS NULL")
        > 0
    )  # noqa: E501
    wrong = one(
        db,
        "SELECT COUNT(*) FROM carts c WHERE items_count != "
        "(SELECT COUNT(*) FROM cart_items i WHERE i.cart_id = c.id)",
    )
    assert wrong == 0


def test_order_items_add_up(db):
    assert one(db, "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS "
                   "(SELECT 1 FROM order_items i WHERE i.order_id = o.id)") == 0  # fmt: skip
    off = one(
        db,
        "SELECT COUNT(*) FROM orders o WHERE abs(o.subtotal - "
        "(SELECT SUM(qty * price) FROM order_items i WHERE i.order_id = o.id)) > 0.01",
    )
    assert off == 0
    assert one(db, "SELECT COUNT(DISTINCT category) FROM order_items") >= 5
    assert one(db, "SELECT COUNT(*) FROM order_items WHERE sku = '' OR category = ''") == 0


def test_explicit_sizes_overwrite_and_no_temp_file(store_factory, tmp_path):
    path = tmp_path / "s.sqlite"
    generate_store(path, customers=50, orders=20, carts=7, seed=2, now="2026-11-01 00:00:00")
    generate_store(path, customers=40, orders=10, carts=5, seed=2, now="2026-11-01 00:00:00")
    conn = open_store(path)
    counts = summary(conn)["counts"]
    conn.close()
    assert (counts["customers"], counts["orders"], counts["carts"]) == (40, 10, 5)
    assert not (tmp_path / "s.sqlite.tmp").exists()
    only_guests = store_factory(customers=0, orders=30, carts=4)
    conn = open_store(only_guests)
    assert one(conn, "SELECT COUNT(*) FROM orders WHERE customer_is_guest = 1") == 30
    conn.close()


def test_ensure_store_reuses_matching_file(tmp_path):
    path = tmp_path / "sub" / "store.sqlite"
    assert ensure_store(path, customers=60, seed=3) == path
    stamp = path.stat().st_mtime_ns
    ensure_store(path, customers=60, seed=3)
    assert path.stat().st_mtime_ns == stamp
    ensure_store(path, customers=60, seed=4)
    conn = open_store(path)
    assert summary(conn)["meta"]["seed"] == "4"
    conn.close()
