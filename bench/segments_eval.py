"""Evaluate the five built-in segments over a 1,000,000-customer mirror on PostgreSQL.

Creates a private database ``cc_bench_segments`` on TEST_DATABASE_URL's server (default
postgresql://127.0.0.1:5432/test), bulk-loads customers with realistic purchase stats by
INSERT … SELECT FROM generate_series, runs the first evaluation and the next day's, drops the
database, and prints one JSON line:
``{customers, load_s, first_eval_s, next_day_eval_s, entered, left, members}``.

    .venv/bin/python bench/segments_eval.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
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
from cc_storeplugin.segments.evaluate import evaluate_segments  # noqa: E402

DATABASE = "cc_bench_segments"
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

# ~30% never bought, ~35% once, the rest 2-10 times; last purchase spread over two years.
LOAD_CUSTOMERS = """
INSERT INTO customers (connection_id, email, is_guest, consent_state, purchase_count,
    total_spent, first_purchase_at, last_purchase_at, created_at, updated_at)
SELECT :conn, 'customer' || i || '@example.com', i % 7 = 0, 'subscribed', n,
    n * 57.30,
    CASE WHEN n > 0 THEN last - (n - 1) * interval '23 days' END,
    CASE WHEN n > 0 THEN last END,
    :now, :now
FROM (
    SELECT i,
        CASE WHEN (i * 7919) % 100 < 30 THEN 0
             WHEN (i * 7919) % 100 < 65 THEN 1
             ELSE 2 + i % 9 END AS n,
        CAST(:now AS timestamptz) - ((i * 104729) % 63072000) * interval '1 second' AS last
    FROM generate_series(CAST(1 AS bigint), :count) AS i
) AS s
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()

    server = normalize_database_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    )
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    url = make_url(server).set(database=DATABASE).render_as_string(hide_password=False)
    try:
        figures = run(url, args.customers)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        admin.dispose()
    print(json.dumps(figures))


def run(url: str, customers: int) -> dict[str, object]:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "bench",
            "REDIS_URL": None,
        }
    )
    with app.app_context():
        db.create_all()
        conn = StoreConnection(merchant=Merchant(cc_account_id="bench"), platform="magento")
        db.session.add(conn)
        db.session.commit()
        started = time.perf_counter()
        db.session.execute(text(LOAD_CUSTOMERS), {"conn": conn.id, "now": NOW, "count": customers})
        db.session.commit()
        db.session.execute(text("ANALYZE customers"))
        db.session.commit()
        load_s = time.perf_counter() - started

        started = time.perf_counter()
        evaluate_segments(conn.id, NOW)
        first_s = time.perf_counter() - started

        started = time.perf_counter()
        next_day = evaluate_segments(conn.id, NOW + timedelta(days=1))
        next_s = time.perf_counter() - started
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return {
        "customers": customers,
        "load_s": round(load_s, 2),
        "first_eval_s": round(first_s, 2),
        "next_day_eval_s": round(next_s, 2),
        "entered": sum(r["entered"] for r in next_day.values()),
        "left": sum(r["left"] for r in next_day.values()),
        "members": {key: r["members"] for key, r in next_day.items()},
    }


if __name__ == "__main__":
    main()
