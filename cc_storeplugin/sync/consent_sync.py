"""Consent facts from Constant Contact, applied to the mirror and the ledger, in bulk.

Invariant 1: a contact who unsubscribed is never re-subscribed. Before anything is sent to
CC, the unsubscribes CC knows about are pulled (500 a call) and the contacts are marked
``unsubscribed``; every list update then leaves them out, and the ledger says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, literal, select, update

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.extensions import db
from cc_storeplugin.models import ConsentEvent, Customer, normalize_email, utcnow

SKIP_REASON = "unsubscribed — left out of every Constant Contact list"


def pull_cc_unsubscribes(
    client: CCClient,
    connection_id: int,
    *,
    since: datetime | None = None,
    run_id: int | None = None,
) -> int:
    """Mark contacts CC reports as unsubscribed (optionally since a time); returns how many."""
    params: dict[str, Any] = {"status": "unsubscribed", "limit": 500}
    if since is not None:
        params["optout_after"] = since.isoformat().replace("+00:00", "Z")
    changed = 0
    batch: dict[str, str | None] = {}
    for contact in client.paginate("/contacts", params, "contacts"):
        address = (contact.get("email_address") or {}).get("address")
        if address:
            batch[normalize_email(address)] = (contact.get("email_address") or {}).get(
                "opt_out_date"
            )
        if len(batch) >= 500:
            changed += _apply_unsubscribes(connection_id, batch, run_id)
            batch = {}
    if batch:
        changed += _apply_unsubscribes(connection_id, batch, run_id)
    return changed


def _apply_unsubscribes(
    connection_id: int, batch: dict[str, str | None], run_id: int | None
) -> int:
    rows = db.session.execute(
        select(Customer.id, Customer.email).where(
            Customer.connection_id == connection_id,
            Customer.email.in_(list(batch)),
            Customer.consent_state != "unsubscribed",
        )
    ).all()
    if not rows:
        return 0
    now = utcnow()
    db.session.execute(
        update(Customer)
        .where(Customer.id.in_([r.id for r in rows]))
        .values(consent_state="unsubscribed", consent_updated_at=now)
    )
    db.session.execute(
        insert(ConsentEvent),
        [
            {
                "connection_id": connection_id,
                "customer_id": r.id,
                "email": r.email,
                "action": "unsubscribed",
                "source": "constantcontact",
                "actor": "contact",
                "reason": "unsubscribed in Constant Contact",
                "occurred_at": _parse(batch[r.email]) or now,
                "sync_run_id": run_id,
            }
            for r in rows
        ],
    )
    db.session.commit()
    return len(rows)


def record_skipped_unsubscribed(connection_id: int, run_id: int) -> int:
    """Ledger entry 'skipped' for every unsubscribed contact of the connection, once per run."""
    already = exists().where(
        ConsentEvent.sync_run_id == run_id,
        ConsentEvent.customer_id == Customer.id,
        ConsentEvent.action == "skipped",
    )
    now = utcnow()
    source = select(
        literal(connection_id),
        Customer.id,
        Customer.email,
        literal("skipped"),
        literal("plugin"),
        literal(SKIP_REASON),
        literal(now, ConsentEvent.occurred_at.type),
        literal(now, ConsentEvent.recorded_at.type),
        literal(run_id),
    ).where(
        and_(
            Customer.connection_id == connection_id,
            Customer.consent_state == "unsubscribed",
            ~already,
        )
    )
    result = db.session.execute(
        insert(ConsentEvent).from_select(
            [
                "connection_id",
                "customer_id",
                "email",
                "action",
                "source",
                "reason",
                "occurred_at",
                "recorded_at",
                "sync_run_id",
            ],
            source,
        ),
        execution_options={"preserve_rowcount": True},
    )
    db.session.commit()
    return max(result.rowcount or 0, 0)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
