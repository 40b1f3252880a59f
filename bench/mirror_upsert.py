"""Upsert a generated store into a PostgreSQL mirror page by page, then recompute stats.

Creates a private database ``cc_bench_mirror`` on TEST_DATABASE_URL's server (default
postgresql://127.0.0.1:5432/test), dropped at the end. Pages of 300 are generated on the
fly (bounded memory) and each page commits on its own, as the import pipeline does.
Rates count mirror time only (upsert + commit per page), not generating the pages.
Prints one JSON line: ``{customers, orders, customers_per_s, orders_per_s, customers_s,
orders_s, stats_s, peak_rss_mb}``.

    .venv/bin/python bench/mirror_upsert.py [--customers 200000] [--orders 600000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_storeplugin.app import create_app  # noqa: E402
from cc_storeplugin.config import normalize_database_url  # noqa: E402
from cc_storeplugin.extensions import db  # noqa: E402
from cc_storeplugin.models import Merchant, StoreConnection  # noqa: E402
from cc_storeplugin.platforms.base import CustomerRecord, OrderLine, OrderRecord  # noqa: E402
from cc_storeplugin.sync.mirror import upsert_customers, upsert_orders  # noqa: E402
from cc_storeplugin.sync.stats import recompute_stats  # noqa: E402

PAGE = 300
DB_NAME = "cc_bench_mirror"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STATES = [("complete", True)] * 16 + [
    ("canceled", False),
    ("canceled", False),
    ("closed", False),
    ("pending_payment", False),
]


def customer_pages(n: int, rng: random.Random) -> Iterator[list[CustomerRecord]]:
    """n customers; every 500th has a second account whose email differs only in case."""
    page: list[CustomerRecord] = []
    for i in range(1, n + 1):
        email = f"c{i}@example.com" if i % 500 else f"C{i - 1}@Example.com"
        page.append(
            CustomerRecord(
                platform_id=str(i),
                email=email,
                first_name=f"First{i}",
                last_name=f"Last{i}",
                group="General",
                subscribed=rng.random() < 0.6 if i % 7 else None,
                updated_at=T0 + timedelta(minutes=i),
            )
        )
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def order_pages(n: int, customers: int, rng: random.Random) -> Iterator[list[OrderRecord]]:
    """n orders: 85% by registered customers, 15% by guests (some repeat guests)."""
    page: list[OrderRecord] = []
    for i in range(1, n + 1):
        if rng.random() < 0.85:
            cid = rng.randint(1, customers)
            email, pid = f"c{cid}@example.com", str(cid)
        else:
            email, pid = f"Guest{rng.randint(1, n // 10)}@Mail.test", None
        state, purchase = rng.choice(STATES)
        total = Decimal(rng.randint(500, 50_000)) / 100
        page.append(
            OrderRecord(
                platform_id=str(i),
                email=email,
                state=state,
                is_purchase=purchase,
                placed_at=T0 + timedelta(minutes=i),
                grand_total=total,
                total_refunded=total / 4 if rng.random() < 0.05 else Decimal("0"),
                number=f"1000{i}",
                status=state,
                customer_platform_id=pid,
                first_name="Guest" if pid is None else None,
                currency="USD",
                updated_at=T0 + timedelta(minutes=i),
                lines=tuple(
                    OrderLine(sku=f"SKU-{rng.randint(1, 5000)}", category="Shoes", price=total)
                    for _ in range(rng.randint(1, 3))
                ),
            )
        )
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=600_000)
    args = parser.parse_args()
    server = normalize_database_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    )
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    url = make_url(server).set(database=DB_NAME).render_as_string(hide_password=False)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "bench",
            "REDIS_URL": None,
        }
    )
    rng = random.Random(5)
    try:
        with app.app_context():
            db.create_all()
            merchant = Merchant(cc_account_id="bench")
            conn = StoreConnection(merchant=merchant, platform="magento")
            db.session.add_all([merchant, conn])
            db.session.commit()
            cid = conn.id

            customers_s = orders_s = 0.0  # mirror time only: generating the pages is excluded
            for page in customer_pages(args.customers, rng):
                started = time.perf_counter()
                upsert_customers(cid, page)
                db.session.commit()
                customers_s += time.perf_counter() - started

            for page in order_pages(args.orders, args.customers, rng):
                started = time.perf_counter()
                upsert_orders(cid, page)
                db.session.commit()
                orders_s += time.perf_counter() - started

            started = time.perf_counter()
            recompute_stats(cid)
            db.session.commit()
            stats_s = time.perf_counter() - started
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()
    print(
        json.dumps(
            {
                "customers": args.customers,
                "orders": args.orders,
                "customers_per_s": round(args.customers / customers_s),
                "orders_per_s": round(args.orders / orders_s),
                "customers_s": round(customers_s, 1),
                "orders_s": round(orders_s, 1),
                "stats_s": round(stats_s, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
