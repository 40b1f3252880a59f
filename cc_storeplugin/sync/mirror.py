"""Bulk writes of one page of store records into the mirror: customers, orders, carts.

Each call takes one page (a few hundred records) and issues a handful of set-based
statements on the session's connection: one INSERT ... ON CONFLICT per table and page
(PostgreSQL: rows as one JSON parameter; SQLite: executemany), never a row-at-a-time ORM
loop. The caller commits, so a page and its checkpoint commit together. PostgreSQL and
SQLite >= 3.35 (RETURNING). Stats are recomputed separately (``sync.stats``).

Rules (DESIGN: contacts keyed by normalized email; invariants 1-3):
- One contact per (connection, normalized email). Registered accounts whose emails differ
  only in case (Magento allows it across websites) are one contact; the account with the
  lowest platform id wins (shorter id first, then byte order: numeric order for Magento's
  integer ids), whatever the page order. The winner's non-empty names and group are kept;
  a loser only fills blanks. A non-empty name is never overwritten by an empty one.
- A registered customer upgrades a guest contact with the same email (same row).
- Store consent: applied when the contact's state is ``not_set``, and ``subscribed`` ->
  ``unsubscribed``. An import never re-subscribes an unsubscribed contact; the store's
  claim is then not applied and not written to the ledger (it repeats on every sync and
  nothing changed; the list sync records the ``skipped`` fact when it leaves them out).
  Every applied change appends a ConsentEvent (source ``store``) in bulk.
- Rows are rewritten only when something changed, and an older version of a record
  (same platform id, older ``updated_at``) never overwrites a newer one, so replaying a
  page (a resumed job, an event seen twice) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Table, and_, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Cart, ConsentEvent, Customer, Order, OrderItem, utcnow
from cc_storeplugin.models import normalize_email as _norm
from cc_storeplugin.platforms.base import CartRecord, CustomerRecord, OrderRecord

CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
ORDERS: Table = Order.__table__  # type: ignore[assignment]
ITEMS: Table = OrderItem.__table__  # type: ignore[assignment]
CARTS: Table = Cart.__table__  # type: ignore[assignment]
EVENTS: Table = ConsentEvent.__table__  # type: ignore[assignment]
CONTACT_COLS = ("connection_id", "email", "platform_customer_id", "is_guest", "first_name")
CONTACT_COLS += ("last_name", "customer_group", "consent_state", "consent_updated_at")
CONTACT_COLS += ("platform_updated_at", "purchase_count", "total_spent", "created_at")
CONTACT_COLS += ("updated_at",)
ORDER_COLS = ("connection_id", "platform_order_id", "order_number", "customer_id", "email")
ORDER_COLS += ("state", "status", "is_purchase", "grand_total", "total_refunded", "currency")
ORDER_COLS += ("placed_at", "platform_updated_at")
ITEM_COLS = ("connection_id", "order_id", "sku", "category", "qty", "price")
EVENT_COLS = ("connection_id", "customer_id", "email", "action", "source", "reason")
EVENT_COLS += ("occurred_at", "recorded_at", "sync_run_id")
CART_COLS = ("connection_id", "platform_cart_id", "customer_id", "email", "is_active")
CART_COLS += ("items_count", "grand_total", "converted_order_id", "platform_created_at")
CART_COLS += ("platform_updated_at",)
_CLAIM = {True: "subscribed", False: "unsubscribed", None: "not_set"}
_KEY_CHUNK = 500  # keys per lookup statement
_WRITTEN: dict[str, int] = {}  # rows this process inserted per table (see _note_writes)
_ANALYZE_AT: dict[str, int] = {}


def upsert_customers(
    connection_id: int, records: Sequence[CustomerRecord], *, run_id: int | None = None
) -> dict[str, Any]:
    """Upsert a page of registered customers; returns {inserted, updated, unchanged,
    consent_changes, rejected} (rejected: (platform id, reason) of records without email).

    Counts are exact unless another writer inserts the same email concurrently."""
    conn, now = db.session.connection(), utcnow()
    rows, rejected = _merge_customers(connection_id, records, now)
    if not rows:
        return _counts(0, 0, 0, rejected, 0)
    before = {
        r.email: r.consent_state
        for r in _lookup(conn, CUSTOMERS, "email", connection_id, rows, with_lock=True)
    }
    written = _run(conn, _customers_upsert, list(rows.values())).all()
    events = [
        {
            "connection_id": connection_id,
            "customer_id": r.id,
            "email": r.email,
            "action": r.consent_state,
            "source": "store",
            "reason": f"the store reports the customer {r.consent_state}",
            "occurred_at": r.consent_updated_at or now,
            "recorded_at": now,
            "sync_run_id": run_id,
        }
        for r in written
        if r.consent_state != before.get(r.email, "not_set")
    ]
    if events:
        _run(conn, _plain_insert, events, EVENTS, EVENT_COLS)
    inserted = sum(1 for r in written if r.email not in before)
    _note_writes(conn, CUSTOMERS, inserted)
    unchanged = len(rows) - len(written)
    return _counts(inserted, len(written) - inserted, unchanged, rejected, len(events))


def upsert_orders(connection_id: int, records: Sequence[OrderRecord]) -> set[int]:
    """Upsert a page of orders with their lines, make guest purchasers contacts and link
    orders to contacts; returns the ids of contacts whose purchase stats may have changed.

    Orders without an email cannot belong to a contact and are skipped (adapters quarantine
    them). Lines are replaced only for orders that were inserted or changed.
    """
    conn, now = db.session.connection(), utcnow()
    page: dict[str, OrderRecord] = {}
    for rec in sorted(records, key=lambda r: _version(r.updated_at)):
        if rec.email and rec.email.strip():
            page[rec.platform_id] = rec  # the newest version of a repeated order wins
    if not page:
        return set()
    contacts = _ensure_guest_contacts(conn, connection_id, page.values(), now)
    before = {
        r.platform_order_id: r.customer_id
        for r in _lookup(conn, ORDERS, "platform_order_id", connection_id, page)
    }
    rows = []
    for r in page.values():
        email = _norm(r.email)
        rows.append(
            {
                "connection_id": connection_id,
                "platform_order_id": r.platform_id,
                "order_number": r.number,
                "customer_id": contacts.get(email),
                "email": email,
                "state": r.state,
                "status": r.status,
                "is_purchase": r.is_purchase,
                "grand_total": r.grand_total,
                "total_refunded": r.total_refunded,
                "currency": r.currency,
                "placed_at": _aware(r.placed_at),
                "platform_updated_at": _aware(r.updated_at),
            }
        )
    written = _run(conn, _orders_upsert, rows).all()
    _note_writes(conn, ORDERS, sum(1 for w in written if w.platform_order_id not in before))
    replaced = [w.id for w in written if w.platform_order_id in before]
    for chunk in _chunks(replaced, _KEY_CHUNK):
        conn.execute(sa.delete(ITEMS).where(_one_of(conn, ITEMS.c.order_id, chunk)))
    items = [
        {
            "connection_id": connection_id,
            "order_id": w.id,
            "sku": line.sku,
            "category": line.category,
            "qty": line.qty,
            "price": line.price,
        }
        for w in written
        for line in page[w.platform_order_id].lines
    ]
    if items:
        _run(conn, _plain_insert, items, ITEMS, ITEM_COLS)
    affected = {w.customer_id for w in written} | {before.get(w.platform_order_id) for w in written}
    return {cid for cid in affected if cid is not None}


def upsert_carts(connection_id: int, records: Sequence[CartRecord]) -> dict[str, Any]:
    """Upsert a page of carts, linked to the contact by normalized email (or by the store's
    customer id when the cart has no email); returns {inserted, updated, unchanged}."""
    conn = db.session.connection()
    page: dict[str, CartRecord] = {}
    for rec in sorted(records, key=lambda r: _version(r.updated_at)):
        page[rec.platform_id] = rec
    if not page:
        return _counts(0, 0, 0, [])
    emails = {_norm(r.email) for r in page.values() if r.email and r.email.strip()}
    by_email = {r.email: r.id for r in _lookup(conn, CUSTOMERS, "email", connection_id, emails)}
    pids = {r.customer_platform_id for r in page.values() if r.customer_platform_id}
    by_pid = {
        r.platform_customer_id: r.id
        for r in _lookup(conn, CUSTOMERS, "platform_customer_id", connection_id, pids)
    }
    before = {
        r.platform_cart_id for r in _lookup(conn, CARTS, "platform_cart_id", connection_id, page)
    }
    rows = []
    for r in page.values():
        email = _norm(r.email) if r.email and r.email.strip() else None
        customer_id = by_email.get(email) if email else None
        rows.append(
            {
                "connection_id": connection_id,
                "platform_cart_id": r.platform_id,
                "customer_id": customer_id or by_pid.get(r.customer_platform_id),
                "email": email,
                "is_active": r.is_active,
                "items_count": r.items_count,
                "grand_total": r.grand_total,
                "converted_order_id": r.converted_order_id,
                "platform_created_at": _aware(r.created_at),
                "platform_updated_at": _aware(r.updated_at),
            }
        )
    written = _run(conn, _carts_upsert, rows).scalars().all()
    inserted = sum(1 for pid in written if pid not in before)
    _note_writes(conn, CARTS, inserted)
    return _counts(inserted, len(written) - inserted, len(rows) - len(written), [])


def _merge_customers(
    connection_id: int, records: Iterable[CustomerRecord], now: datetime
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """One row per normalized email: the lowest platform id wins, others fill its blanks;
    if any account says unsubscribed the contact is unsubscribed (the safer claim)."""
    groups: dict[str, list[CustomerRecord]] = {}
    rejected: list[tuple[str, str]] = []
    for rec in records:
        email = _norm(rec.email or "")
        if email:
            groups.setdefault(email, []).append(rec)
        else:
            rejected.append((rec.platform_id, "missing_field"))
    rows: dict[str, dict[str, Any]] = {}
    for email, recs in groups.items():
        # lowest id first; for a repeated id, its newest version first
        recs.sort(key=lambda r: (_id_rank(r.platform_id), -_version(r.updated_at)))
        claims = {r.subscribed for r in recs}
        subscribed = False if False in claims else (True if True in claims else None)
        latest = max((r.updated_at for r in recs if r.updated_at), default=None)
        rows[email] = {
            "connection_id": connection_id,
            "email": email,
            "platform_customer_id": recs[0].platform_id,
            "is_guest": False,
            "first_name": _first(r.first_name for r in recs),
            "last_name": _first(r.last_name for r in recs),
            "customer_group": _first(r.group for r in recs),
            "consent_state": _CLAIM[subscribed],
            "consent_updated_at": _aware(latest or now) if subscribed is not None else None,
            "platform_updated_at": _aware(recs[0].updated_at),
            "purchase_count": 0,
            "total_spent": 0,
            "created_at": now,
            "updated_at": now,
        }
    return rows, rejected


def _ensure_guest_contacts(
    conn: Connection, connection_id: int, orders: Iterable[OrderRecord], now: datetime
) -> dict[str, int]:
    """Insert a guest contact for every order email without one; map email -> contact id."""
    guests: dict[str, dict[str, Any]] = {}
    for r in sorted(orders, key=lambda r: r.placed_at):  # the latest order's names win
        email = _norm(r.email)
        row = guests.get(email) or dict.fromkeys(CONTACT_COLS)
        row.update(connection_id=connection_id, email=email, is_guest=True, created_at=now)
        row.update(consent_state="not_set", purchase_count=0, total_spent=0, updated_at=now)
        row["first_name"] = (r.first_name or "").strip() or row["first_name"]
        row["last_name"] = (r.last_name or "").strip() or row["last_name"]
        guests[email] = row
    found = {r.email: r.id for r in _lookup(conn, CUSTOMERS, "email", connection_id, guests)}
    missing = [row for email, row in guests.items() if email not in found]
    if missing:
        found.update({r.email: r.id for r in _run(conn, _guests_insert, missing)})
        _note_writes(conn, CUSTOMERS, len(missing))
        raced = [row["email"] for row in missing if row["email"] not in found]
        found.update(
            {r.email: r.id for r in _lookup(conn, CUSTOMERS, "email", connection_id, raced)}
        )
    return found


# --- statements, built once per dialect ------------------------------------------------


def _insert(table: Table, cols: Sequence[str], dialect: str) -> Any:
    """INSERT of a page in one statement, with ON CONFLICT available.

    PostgreSQL: INSERT ... SELECT FROM json_populate_recordset(NULL::table, :page), one JSON
    text parameter the server types by the table's own row type (a 300-row multi-VALUES
    costs psycopg ~30 ms a page to parse; per-column arrays ~13 ms to dump).
    SQLite: executemany (insertmanyvalues).
    """
    if dialect != "postgresql":
        return sqlite.insert(table)
    doc = sa.cast(sa.bindparam("page", type_=sa.Text), sa.JSON)
    page = func.json_populate_recordset(sa.literal_column(f"NULL::{table.name}"), doc)
    src = page.table_valued(*cols).alias("page")
    return postgresql.insert(table).from_select(list(cols), select(*src.c), include_defaults=False)


def _run(conn: Connection, build: Any, rows: list[dict[str, Any]], *args: Any) -> Any:
    """Execute the statement ``build(*args, dialect)`` for ``rows``."""
    stmt = build(*args, conn.dialect.name)
    if conn.dialect.name == "postgresql":
        return conn.execute(stmt, {"page": json.dumps(rows, default=str)})
    return conn.execute(stmt, rows)


@cache
def _plain_insert(table: Table, cols: tuple[str, ...], dialect: str) -> Any:
    return _insert(table, cols, dialect)


@cache
def _guests_insert(dialect: str) -> Any:
    c = CUSTOMERS.c
    stmt = _insert(CUSTOMERS, CONTACT_COLS, dialect)
    return stmt.on_conflict_do_nothing(index_elements=[c.connection_id, c.email]).returning(
        c.email, c.id
    )


@cache
def _customers_upsert(dialect: str) -> Any:
    return _customer_conflict(_insert(CUSTOMERS, CONTACT_COLS, dialect), dialect)


def customers_upsert_from(source: Any) -> Any:
    """PostgreSQL: the page upsert's statement with ``source`` (a select of CONTACT_COLS,
    one row per email) instead of a page parameter; returns id, email, consent_state,
    consent_updated_at of the rows it wrote. Used by the import's staged customer merge."""
    stmt = postgresql.insert(CUSTOMERS).from_select(list(CONTACT_COLS), source)
    return _customer_conflict(stmt, "postgresql")


def _customer_conflict(stmt: Any, dialect: str) -> Any:
    """The contact rules of the module docstring as ON CONFLICT (connection_id, email)."""
    c, x = CUSTOMERS.c, stmt.excluded
    pid, xpid = c.platform_customer_id, x.platform_customer_id
    wins = or_(
        c.is_guest,
        pid.is_(None),
        func.length(xpid) < func.length(pid),
        and_(
            func.length(xpid) == func.length(pid),
            _bytewise(xpid, dialect) <= _bytewise(pid, dialect),
        ),
    )
    applies = and_(
        x.consent_state != "not_set",
        or_(
            c.consent_state == "not_set",
            and_(c.consent_state == "subscribed", x.consent_state == "unsubscribed"),
        ),
    )

    def pick(col: str) -> ColumnElement[Any]:
        mine, theirs = func.nullif(c[col], ""), x[col]
        return case((wins, func.coalesce(theirs, mine)), else_=func.coalesce(mine, theirs))

    new = {
        "platform_customer_id": case((wins, xpid), else_=pid),
        "first_name": pick("first_name"),
        "last_name": pick("last_name"),
        "customer_group": pick("customer_group"),
        "consent_state": case((applies, x.consent_state), else_=c.consent_state),
        "consent_updated_at": case((applies, x.consent_updated_at), else_=c.consent_updated_at),
        "platform_updated_at": case(
            (wins, func.coalesce(x.platform_updated_at, c.platform_updated_at)),
            else_=c.platform_updated_at,
        ),
    }
    stale = and_(pid == xpid, x.platform_updated_at < c.platform_updated_at)
    return stmt.on_conflict_do_update(
        index_elements=[c.connection_id, c.email],
        set_={**new, "is_guest": sa.false(), "updated_at": x.updated_at},
        where=and_(_changed(CUSTOMERS, new, c.is_guest), _not(stale)),
    ).returning(c.id, c.email, c.consent_state, c.consent_updated_at)


@cache
def _orders_upsert(dialect: str) -> Any:
    return _versioned_upsert(ORDERS, ORDER_COLS, "platform_order_id", dialect).returning(
        ORDERS.c.id, ORDERS.c.platform_order_id, ORDERS.c.customer_id
    )


@cache
def _carts_upsert(dialect: str) -> Any:
    stmt = _versioned_upsert(CARTS, CART_COLS, "platform_cart_id", dialect)
    return stmt.returning(CARTS.c.platform_cart_id)


def _versioned_upsert(table: Table, cols: tuple[str, ...], key: str, dialect: str) -> Any:
    """Upsert keyed by (connection_id, key): rewrite only changed rows, never with an older
    version (``platform_updated_at``)."""
    stmt = _insert(table, cols, dialect)
    c, x = table.c, stmt.excluded
    new = {k: x[k] for k in cols if k not in ("connection_id", key)}
    return stmt.on_conflict_do_update(
        index_elements=[c.connection_id, c[key]],
        set_=new,
        where=and_(_changed(table, new), _not(x.platform_updated_at < c.platform_updated_at)),
    )


def _bytewise(col: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Compare ids byte-wise on PostgreSQL too (SQLite's default collation already is)."""
    return col.collate("C") if dialect == "postgresql" else col


def _changed(table: Table, new: dict[str, Any], *extra: Any) -> ColumnElement[bool]:
    """True when any new value differs (NULL-safe) from the stored one."""
    return or_(*(expr.is_distinct_from(table.c[name]) for name, expr in new.items()), *extra)


def _not(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """NOT cond, with an unknown (NULL) cond counting as false."""
    return sa.not_(func.coalesce(cond, sa.false()))


# --- lookups and small helpers ---------------------------------------------------------


def _lookup(
    conn: Connection,
    table: Table,
    key: str,
    connection_id: int,
    keys: Iterable[Any],
    *,
    with_lock: bool = False,
) -> list[Any]:
    """Rows of ``table`` in the connection whose ``key`` is one of ``keys``."""
    cols = {
        "customers": ("id", "email", "consent_state", "platform_customer_id"),
        "orders": ("id", "platform_order_id", "customer_id"),
        "carts": ("id", "platform_cart_id"),
    }[table.name]
    out: list[Any] = []
    for chunk in _chunks(sorted(set(keys)), _KEY_CHUNK):
        q = select(*(table.c[n] for n in cols)).where(
            table.c.connection_id == connection_id, _one_of(conn, table.c[key], chunk)
        )
        if with_lock:
            q = q.with_for_update()  # PostgreSQL: stable consent 'before' states; no-op on SQLite
        out.extend(conn.execute(q).all())
    return out


def _one_of(conn: Connection, col: Any, keys: Sequence[Any]) -> ColumnElement[bool]:
    """col IN keys: one array parameter on PostgreSQL (= ANY), an IN list on SQLite."""
    if conn.dialect.name == "postgresql":
        return col == sa.any_(sa.bindparam(None, list(keys), type_=ARRAY(col.type)))
    return col.in_(keys)


def _note_writes(conn: Connection, table: Table, rows: int) -> None:
    """ANALYZE a table this process keeps filling, each time its inserts double (from 1,000).

    Page lookups need the unique (connection_id, key) index; with stale planner statistics
    (a new table, or a new connection on a big one, before autovacuum catches up)
    PostgreSQL picks a connection_id-only index and every page scans the connection's rows.
    """
    if conn.dialect.name != "postgresql" or not rows:
        return
    written = _WRITTEN[table.name] = _WRITTEN.get(table.name, 0) + rows
    if written >= _ANALYZE_AT.get(table.name, 1_000):
        conn.exec_driver_sql(f"ANALYZE {table.name}")
        _ANALYZE_AT[table.name] = written * 2


def _aware(value: datetime | None) -> datetime | None:
    """The UTC columns take aware datetimes only (as UTCDateTime does)."""
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
    return value


def _id_rank(platform_id: str) -> tuple[int, str]:
    """Shorter ids first, then byte order: numeric order for integer ids, total otherwise."""
    return (len(platform_id), platform_id)


def _version(updated_at: datetime | None) -> float:
    return updated_at.timestamp() if updated_at else float("-inf")


def _first(values: Iterable[str | None]) -> str | None:
    return next((v.strip() for v in values if v and v.strip()), None)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _counts(
    inserted: int, updated: int, unchanged: int, rejected: list[Any], changes: int | None = None
) -> dict[str, Any]:
    out = {"inserted": inserted, "updated": updated, "unchanged": unchanged, "rejected": rejected}
    return out if changes is None else {**out, "consent_changes": changes}
