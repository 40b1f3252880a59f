"""The PostgreSQL import's customer path: COPY each page into ``customer_stage``, merge in batches.

The page upsert (``mirror.upsert_customers``) keeps the import's main thread waiting on
four statements a page; staging is one COPY, and a background session merges tens of
thousands of staged customers at once while the next pages download. The merge keeps the
page upsert's rules (``sync.mirror``'s docstring) by grouping the batch as
``_merge_customers`` groups a page and feeding the groups to the same ON CONFLICT statement:

- one contact per normalized email; the account with the lowest platform id wins (shorter
  id first, then byte order), and for a repeated id its newest version (then the later
  page); the winner's non-empty names and group are kept, the others fill blanks;
- any account saying unsubscribed makes the claim unsubscribed, else any subscribed;
  the claim is applied to the stored contact only as the page upsert applies it, and every
  applied change is written to the consent ledger (source ``store``, with the run's id),
  dated by the email's latest version in the batch.

A batch spans many pages, so where the page path depends on which accounts share a page
(a loser filling the winner's blank name; one ledger entry per page that changed the
state), the batch gives the answer for all of its pages at once; contacts, winning
accounts and consent states are the same (tests/sync/test_customer_stage.py).

Staged rows are committed with the import's checkpoint and deleted by the merge that wrote
them, in its transaction, so a killed worker neither loses nor doubles a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, insert, literal, select, text

from cc_storeplugin.extensions import db
from cc_storeplugin.models import normalize_email, utcnow
from cc_storeplugin.platforms.base import CustomerRecord
from cc_storeplugin.sync import mirror
from cc_storeplugin.sync.mirror import CONTACT_COLS, _aware

STAGE_COLS = (
    "run_id", "email", "platform_customer_id", "first_name", "last_name", "customer_group",
    "subscribed", "platform_updated_at",
)  # fmt: skip
_COPY = f"COPY customer_stage ({', '.join(STAGE_COLS)}) FROM STDIN"
# rk: the page's order of an email's accounts (``_merge_customers``): lowest id first
# (shorter, then byte order), a repeated id's newest version first, then the later page.
_GROUPS = text("""
SELECT CAST(:conn AS BIGINT) AS connection_id, s.email,
    (array_agg(s.platform_customer_id ORDER BY s.rk))[1] AS platform_customer_id,
    false AS is_guest,
    (array_agg(s.first_name ORDER BY s.rk) FILTER (WHERE s.first_name IS NOT NULL))[1]
        AS first_name,
    (array_agg(s.last_name ORDER BY s.rk) FILTER (WHERE s.last_name IS NOT NULL))[1]
        AS last_name,
    (array_agg(s.customer_group ORDER BY s.rk) FILTER (WHERE s.customer_group IS NOT NULL))[1]
        AS customer_group,
    CASE WHEN bool_or(s.subscribed = false) THEN 'unsubscribed'
         WHEN bool_or(s.subscribed) THEN 'subscribed' ELSE 'not_set' END AS consent_state,
    CASE WHEN bool_or(s.subscribed IS NOT NULL)
         THEN coalesce(max(s.platform_updated_at), CAST(:now AS timestamptz)) END
        AS consent_updated_at,
    (array_agg(s.platform_updated_at ORDER BY s.rk))[1] AS platform_updated_at,
    0 AS purchase_count, 0 AS total_spent,
    CAST(:now AS timestamptz) AS created_at, CAST(:now AS timestamptz) AS updated_at
FROM (
    SELECT st.*, row_number() OVER (
        PARTITION BY st.email
        ORDER BY length(st.platform_customer_id), st.platform_customer_id COLLATE "C",
            st.platform_updated_at DESC NULLS LAST, st.id DESC
    ) AS rk
    FROM customer_stage st
    WHERE st.run_id = :run AND st.id <= :upto
) s
GROUP BY s.email
ORDER BY s.email
""").columns(*(mirror.CUSTOMERS.c[name] for name in CONTACT_COLS))
# Locks the batch's existing contacts (in email order) so their consent cannot change under
# the merge, and counts the batch's emails and those already contacts.
_LOCK = text("""
SELECT (SELECT count(DISTINCT s.email) FROM customer_stage s
        WHERE s.run_id = :run AND s.id <= :upto),
       (SELECT count(*) FROM (
            SELECT 1 FROM customers c
            WHERE c.connection_id = :conn
              AND c.email IN (SELECT s.email FROM customer_stage s
                              WHERE s.run_id = :run AND s.id <= :upto)
            ORDER BY c.email
            FOR UPDATE OF c) locked)
""")
# The stored consent before this statement (every CTE reads the statement's snapshot).
_BEFORE = (
    text("""
SELECT c.email, c.consent_state
FROM customers c
WHERE c.connection_id = :conn
  AND c.email IN (SELECT s.email FROM customer_stage s WHERE s.run_id = :run AND s.id <= :upto)
""")
    .columns(mirror.CUSTOMERS.c.email, mirror.CUSTOMERS.c.consent_state)
    .cte("before")
)


@cache
def _merge_statement() -> Any:
    """WITH before, up (the page upsert's ON CONFLICT fed by _GROUPS) INSERT the consent
    ledger entries of every contact whose state it changed: nothing comes back to Python."""
    up = mirror.customers_upsert_from(_GROUPS).cte("up")
    e = mirror.EVENTS.c
    changed = select(
        bindparam("conn", type_=BigInteger),
        up.c.id,
        up.c.email,
        up.c.consent_state,
        literal("store"),
        literal("the store reports the customer ") + up.c.consent_state,
        func.coalesce(up.c.consent_updated_at, bindparam("now")),
        bindparam("now"),
        bindparam("run", type_=BigInteger),
    ).select_from(up.outerjoin(_BEFORE, _BEFORE.c.email == up.c.email))
    changed = changed.where(up.c.consent_state != func.coalesce(_BEFORE.c.consent_state, "not_set"))
    cols = [e[name] for name in mirror.EVENT_COLS]
    return insert(mirror.EVENTS).from_select(cols, changed)


def stage_customers(run_id: int, records: Sequence[CustomerRecord]) -> dict[str, Any]:
    """COPY a page of registered customers into the stage; returns {"staged", "rejected"}
    (rejected: (platform id, reason) of records without an email, as the page upsert)."""
    raw = db.session.connection().connection.driver_connection
    staged, rejected = 0, []
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        for r in records:
            email = normalize_email(r.email or "")
            if not email:
                rejected.append((r.platform_id, "missing_field"))
                continue
            copy.write_row(
                (
                    run_id, email, r.platform_id, _stripped(r.first_name),
                    _stripped(r.last_name), _stripped(r.group), r.subscribed,
                    _aware(r.updated_at),
                )
            )  # fmt: skip
            staged += 1
    return {"staged": staged, "rejected": rejected}


def merge_staged_customers(connection_id: int, run_id: int) -> int:
    """Merge the run's committed staged customers into the contacts and clear them; the
    caller commits. Rows staged meanwhile by another transaction wait for the next merge."""
    conn = db.session.connection()
    now = utcnow()
    params: dict[str, Any] = {"conn": connection_id, "run": run_id, "now": now}
    staged, upto = conn.execute(
        text("SELECT count(*), max(id) FROM customer_stage WHERE run_id = :run"), params
    ).one()
    if not staged:
        return 0
    params["upto"] = upto
    conn.execute(text("SELECT set_config('work_mem', '64MB', true)"))
    emails, existing = conn.execute(_LOCK, params).one()
    conn.execute(_merge_statement(), params)
    mirror._note_writes(conn, mirror.CUSTOMERS, emails - existing)
    conn.execute(text("DELETE FROM customer_stage WHERE run_id = :run AND id <= :upto"), params)
    return staged


def discard_staged(run_id: int) -> None:
    """Drop a run's staged customers (a run that ends without merging them)."""
    db.session.execute(text("DELETE FROM customer_stage WHERE run_id = :run"), {"run": run_id})


def _stripped(value: str | None) -> str | None:
    return (value or "").strip() or None
