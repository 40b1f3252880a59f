"""Generated stores for the sandboxes: one SQLite file per store, so a million customers
and three million orders never need to fit in memory.

The schema below is the contract between the generator and the Magento and Kibo
sandboxes. Timestamps are UTC text ``YYYY-MM-DD HH:MM:SS`` (Magento's own format);
``state`` uses Magento's order states and the Kibo sandbox maps them to Kibo statuses.

``generate_store(path, customers, orders=3*customers, carts=customers//2, seed, now)`` fills
a file deterministically from the seed: ids grow with time over the 3 years before ``now``
(meta 'now'); ~52% of customers never order, most others 1-3, a long tail past 20; ~15% guest
orders (customer_id NULL), some using a registered address, some in other case; customers
with ``id % 397 == 11`` repeat the previous address in other case on website/store 2, ids
``% 499 == 13`` have invalid emails ("bob@", "a@b", ...), ``% 601 == 17`` unicode ones.
Carts: 60% converted (``reserved_order_id`` = the order's increment_id), the rest active,
some guest carts with or without email. ``ensure_store`` reuses a matching complete file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    firstname TEXT NOT NULL,
    lastname TEXT NOT NULL,
    group_id INTEGER NOT NULL DEFAULT 1,
    website_id INTEGER NOT NULL DEFAULT 1,
    store_id INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    is_subscribed INTEGER NOT NULL DEFAULT 0,
    accepts_marketing INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS customers_updated ON customers (updated_at, id);
CREATE INDEX IF NOT EXISTS customers_email ON customers (email);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    increment_id TEXT NOT NULL,
    customer_id INTEGER,
    customer_email TEXT NOT NULL,
    customer_firstname TEXT,
    customer_lastname TEXT,
    customer_is_guest INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    grand_total REAL NOT NULL,
    subtotal REAL NOT NULL,
    total_refunded REAL NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT 'USD',
    store_id INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_updated ON orders (updated_at, id);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
CREATE TABLE IF NOT EXISTS order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS order_items_order ON order_items (order_id);
CREATE TABLE IF NOT EXISTS carts (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER,
    customer_email TEXT,
    is_active INTEGER NOT NULL,
    items_count INTEGER NOT NULL,
    grand_total REAL NOT NULL,
    reserved_order_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS carts_updated ON carts (updated_at, id);
CREATE TABLE IF NOT EXISTS cart_items (
    id INTEGER PRIMARY KEY,
    cart_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cart_items_cart ON cart_items (cart_id);
"""

ORDER_STATES = (
    "new",
    "pending_payment",
    "processing",
    "complete",
    "closed",
    "canceled",
    "holded",
)


def open_store(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a store file with the schema; rows come back as ``Row``."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.executescript(SCHEMA)
    return conn


def generate_store(*args, **kwargs) -> dict:
    """Build a store file (see :func:`cc_storeplugin.sandbox.generator.generate_store`)."""
    from cc_storeplugin.sandbox import generator

    return generator.generate_store(*args, **kwargs)


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.DatabaseError:
        return {}


def ensure_store(
    path: str | Path,
    customers: int = 1000,
    seed: int = 1,
    orders: int | None = None,
    carts: int | None = None,
) -> Path:
    """Reuse ``path`` if it is a complete store made with the same parameters, else build it."""
    path = Path(path)
    if path.exists():
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = _meta(conn)
        finally:
            conn.close()
        want = {"customers": customers, "seed": seed, "generator_version": _generator_version(),
                "complete": 1, "orders": 3 * customers if orders is None else orders}  # fmt: skip
        if carts is not None:
            want["carts"] = carts
        if all(meta.get(k) == str(v) for k, v in want.items()):
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_store(path, customers=customers, orders=orders, carts=carts, seed=seed)
    return path


def summary(conn: sqlite3.Connection) -> dict:
    """Row counts per table, guest orders, order states and cart kinds (for tests/reports)."""
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    tables = ("customers", "orders", "order_items", "carts", "cart_items")
    return {
        "counts": {t: one(f"SELECT COUNT(*) FROM {t}") for t in tables},  # noqa: S608
        "guest_orders": one("SELECT COUNT(*) FROM orders WHERE customer_is_guest = 1"),
        "states": dict(
            conn.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall()
        ),
        "carts_active": one("SELECT COUNT(*) FROM carts WHERE is_active = 1"),
        "carts_converted": one("SELECT COUNT(*) FROM carts WHERE reserved_order_id IS NOT NULL"),
        "carts_guest": one("SELECT COUNT(*) FROM carts WHERE customer_id IS NULL"),
        "subscribed": one("SELECT COUNT(*) FROM customers WHERE is_subscribed = 1"),
        "meta": _meta(conn),
    }


def _generator_version() -> str:
    from cc_storeplugin.sandbox.generator import GENERATOR_VERSION

    return GENERATOR_VERSION
