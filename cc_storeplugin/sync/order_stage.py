"""The PostgreSQL import's order path: COPY each page into ``order_stage``, merge in batches.

``upsert_orders`` costs ~65 µs an order in page-sized statements; COPY costs a few µs and
the batch merge ~20 µs, so on a store with millions of orders the download, not the
database, sets the pace. The merge keeps ``mirror.upsert_orders``'s rules exactly:

- the newest version of a repeated order wins (``platform_updated_at``, then the later page);
- an order email without a contact gets a guest contact named from its latest order with
  a non-empty name (of the batch: the page path looks at one page);
- an existing order is rewritten only when something changed and never by an older version,
  and then its lines are replaced.

Staged pages are committed with the import's checkpoint; the merge deletes what it merged
in the same transaction, so a killed worker neither loses nor doubles a page.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import text

from cc_storeplugin.extensions import db
from cc_storeplugin.models import normalize_email, utcnow
from cc_storeplugin.platforms.base import OrderRecord
from cc_storeplugin.sync.mirror import _aware  # the UTC columns take aware datetimes only

STAGE_COLS = (
    "run_id", "platform_order_id", "order_number", "email", "state", "status", "is_purchase",
    "grand_total", "total_refunded", "currency", "placed_at", "platform_updated_at",
    "first_name", "last_name", "lines",
)  # fmt: skip
MERGE_EVERY = 30_000  # staged orders per merge: ~0.6 s of SQL, a few MB of server memory
_COPY = f"COPY order_stage ({', '.join(STAGE_COLS)}) FROM STDIN"
_GUESTS = text(r"""
INSERT INTO customers (connection_id, email, platform_customer_id, is_guest, first_name,
    last_name, customer_group, consent_state, consent_updated_at, platform_updated_at,
    purchase_count, total_spent, created_at, updated_at)
SELECT :conn, s.email, NULL, true,
    (array_agg(nullif(btrim(s.first_name, E' \t\r\n'), '') ORDER BY s.placed_at DESC, s.id DESC)
        FILTER (WHERE nullif(btrim(s.first_name, E' \t\r\n'), '') IS NOT NULL))[1],
    (array_agg(nullif(btrim(s.last_name, E' \t\r\n'), '') ORDER BY s.placed_at DESC, s.id DESC)
        FILTER (WHERE nullif(btrim(s.last_name, E' \t\r\n'), '') IS NOT NULL))[1],
    NULL, 'not_set', NULL, NULL, 0, 0, :now, :now
FROM (
    SELECT DISTINCT ON (platform_order_id) *
    FROM order_stage
    WHERE run_id = :run AND id <= :upto
    ORDER BY platform_order_id, platform_updated_at DESC NULLS LAST, id DESC
) s
WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.connection_id = :conn AND c.email = s.email)
GROUP BY s.email
ON CONFLICT (connection_id, email) DO NOTHING
""")

_ORDERS_AND_LINES = text("""
WITH src AS MATERIALIZED (
    SELECT DISTINCT ON (s.platform_order_id) s.*
    FROM order_stage s
    WHERE s.run_id = :run AND s.id <= :upto
    ORDER BY s.platform_order_id, s.platform_updated_at DESC NULLS LAST, s.id DESC
), up AS (
    INSERT INTO orders (connection_id, platform_order_id, order_number, customer_id, email,
        state, status, is_purchase, grand_total, total_refunded, currency, placed_at,
        platform_updated_at)
    SELECT :conn, src.platform_order_id, src.order_number, c.id, src.email, src.state,
        src.status, src.is_purchase, src.grand_total, src.total_refunded, src.currency,
        src.placed_at, src.platform_updated_at
    FROM src LEFT JOIN customers c ON c.connection_id = :conn AND c.email = src.email
    ON CONFLICT (connection_id, platform_order_id) DO UPDATE SET
        order_number = EXCLUDED.order_number,
        customer_id = EXCLUDED.customer_id,
        email = EXCLUDED.email,
        state = EXCLUDED.state,
        status = EXCLUDED.status,
        is_purchase = EXCLUDED.is_purchase,
        grand_total = EXCLUDED.grand_total,
        total_refunded = EXCLUDED.total_refunded,
        currency = EXCLUDED.currency,
        placed_at = EXCLUDED.placed_at,
        platform_updated_at = EXCLUDED.platform_updated_at
    WHERE (orders.order_number IS DISTINCT FROM EXCLUDED.order_number
        OR orders.customer_id IS DISTINCT FROM EXCLUDED.customer_id
        OR orders.email IS DISTINCT FROM EXCLUDED.email
        OR orders.state IS DISTINCT FROM EXCLUDED.state
        OR orders.status IS DISTINCT FROM EXCLUDED.status
        OR orders.is_purchase IS DISTINCT FROM EXCLUDED.is_purchase
        OR orders.grand_total IS DISTINCT FROM EXCLUDED.grand_total
        OR orders.total_refunded IS DISTINCT FROM EXCLUDED.total_refunded
        OR orders.currency IS DISTINCT FROM EXCLUDED.currency
        OR orders.placed_at IS DISTINCT FROM EXCLUDED.placed_at
        OR orders.platform_updated_at IS DISTINCT FROM EXCLUDED.platform_updated_at)
      AND NOT coalesce(EXCLUDED.platform_updated_at < orders.platform_updated_at, false)
    RETURNING orders.id, orders.platform_order_id, (orders.xmax = 0) AS inserted
), gone AS (
    DELETE FROM order_items i USING up WHERE i.order_id = up.id AND NOT up.inserted
)
INSERT INTO order_items (connection_id, order_id, sku, category, qty, price)
SELECT :conn, up.id, l.sku, l.category, l.qty, l.price
FROM up
JOIN src ON src.platform_order_id = up.platform_order_id
CROSS JOIN LATERAL jsonb_to_recordset(src.lines::jsonb)
    AS l(sku text, category text, qty numeric, price numeric)
""")


def stage_orders(run_id: int, records: Sequence[OrderRecord]) -> int:
    """COPY a page of orders into the stage (orders without an email are skipped, as the
    mirror does; adapters quarantine them). Returns the rows staged."""
    raw = db.session.connection().connection.driver_connection
    staged = 0
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        for r in records:
            if not (r.email and r.email.strip()):
                continue
            lines = [
                {"sku": ln.sku, "category": ln.category, "qty": str(ln.qty), "price": str(ln.price)}
                for ln in r.lines
            ]
            copy.write_row(
                (
                    run_id, r.platform_id, r.number, normalize_email(r.email), r.state, r.status,
                    r.is_purchase, r.grand_total, r.total_refunded, r.currency,
                    _aware(r.placed_at), _aware(r.updated_at), r.first_name, r.last_name,
                    json.dumps(lines),
                )
            )  # fmt: skip
            staged += 1
    return staged


def merge_staged_orders(connection_id: int, run_id: int) -> int:
    """Merge the run's committed staged orders into the mirror and clear them; the caller
    commits. Rows staged meanwhile by another transaction wait for the next merge."""
    conn = db.session.connection()
    params: dict[str, Any] = {"conn": connection_id, "run": run_id, "now": utcnow()}
    staged, upto = conn.execute(
        text("SELECT count(*), max(id) FROM order_stage WHERE run_id = :run"), params
    ).one()
    if not staged:
        return 0
    params["upto"] = upto
    # The newest-version sort of a batch (a few tens of MB) in memory, not in temp files.
    conn.execute(text("SELECT set_config('work_mem', '64MB', true)"))
    conn.execute(_GUESTS, params)
    conn.execute(_ORDERS_AND_LINES, params)
    conn.execute(text("DELETE FROM order_stage WHERE run_id = :run AND id <= :upto"), params)
    return staged


class BackgroundMerger:
    """Merges staged rows (``merge(connection_id, run_id)``: orders by default, or
    ``customer_stage.merge_staged_customers``) on its own database session in a thread, so
    PostgreSQL merges one batch on the second core while the import downloads and stages
    the next.

    One merge at a time; ``request()`` asks for another after the current one; ``close()``
    waits and re-raises a merge's error in the caller (the job then retries and the final
    merge picks up whatever is still staged).
    """

    def __init__(
        self,
        connection_id: int,
        run_id: int,
        merge: Callable[[int, int], int] | None = None,
    ) -> None:
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        self._ids = (connection_id, run_id)
        self._merge = merge or merge_staged_orders
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.merged = 0
        self._thread = threading.Thread(target=self._loop, name="cc-order-merge", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._raise()
        self._wanted.set()

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        with self._app.app_context():
            try:
                while True:
                    self._wanted.wait()
                    self._wanted.clear()
                    if self._stop.is_set():
                        return
                    self.merged += self._merge(*self._ids)
                    db.session.commit()
                    vacuum_stages()
            except BaseException as exc:  # handed to the import's thread
                db.session.rollback()
                self._error = exc
            finally:
                db.session.remove()


def vacuum_stages() -> None:
    """VACUUM the stage tables (PostgreSQL, outside any transaction).

    Every merge deletes what it merged, and each merge finds its rows through the run_id
    index: left to autovacuum (20 % of the table, or off), the dead rows of earlier merges
    stay behind that index, so on a 3M-order import every late merge read hundreds of MB
    of dead heap pages. Vacuumed after each merge, the stages stay a batch or two in size.
    """
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM customer_stage, order_stage")


def discard_staged(run_id: int) -> None:
    """Drop a run's staged rows (a run that ends without merging them)."""
    db.session.execute(text("DELETE FROM order_stage WHERE run_id = :run"), {"run": run_id})
