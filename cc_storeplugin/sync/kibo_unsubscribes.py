"""Unsubscribe sync-back (every KIBO_UNSUBSCRIBES_INTERVAL_S, 30 min by default): contacts
unsubscribed in Constant Contact get ``acceptsMarketing=false`` on their Kibo account.

One SyncRun (kind "unsubscribes") per connection and period (job id
``kibo-unsubscribes-<connection>-<period>``). The window starts at the last completed poll's
watermark minus an overlap, and the watermark moves only when a poll completes, so no window
is lost after an outage. A contact is captured once per opt-out (ledger: a ConsentEvent with
source "constantcontact", ``occurred_at`` = CC's opt_out_date and ``sync_run_id`` = the
capturing poll; the configuration page's View lists a poll's entries by that id).

Order per batch, in one commit: mirror ``unsubscribed``, the ledger entries and the
checkpoint's list of Kibo writes still to do; then GET-then-PUT each account (no PUT when it
already declines marketing). The ``customeraccount.updated`` event a PUT causes finds the
contact already unsubscribed in the mirror, so the flush neither records nor exports anything
(no loop), and nothing is ever written back to CC.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, select, update

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    StoreConnection,
    SyncRun,
    normalize_email,
    utcnow,
)
from cc_storeplugin.platforms.kibo.errors import KiboError
from cc_storeplugin.sync.adapters import adapter_for
from cc_storeplugin.sync.kibo_flush import OUTAGES, dispatch, kind_lock, refused, run_for
from cc_storeplugin.sync.runs import mark_complete, mark_running, quarantine, set_progress
from cc_storeplugin.sync.runs import mark_failed as mark_run_failed

log = logging.getLogger(__name__)
KIND = "unsubscribes"
OVERLAP = timedelta(minutes=15)
"""Re-read this much before the watermark: CC may record an opt-out a little late."""
PAGE = 500
REASON = "unsubscribed in Constant Contact; acceptsMarketing set to false in Kibo"


def job_id_for(connection_id: int, period: str) -> str:
    return f"kibo-unsubscribes-{connection_id}-{period}"


@app_job
def dispatch_unsubscribe_polls(now_iso: str | None = None) -> list[str]:
    """Cron tick: enqueue the poll of every active, enabled Kibo connection that is due."""
    return dispatch(KIND, run_unsubscribe_poll, job_id_for, now_iso)


def watermark(conn: StoreConnection) -> str | None:
    """Where the next poll's window starts (before the overlap): the last completed poll's
    start, else the daily sync's unsubscribe watermark, else None (every opt-out)."""
    settings = conn.settings or {}
    mine = (settings.get("kibo_unsubscribes") or {}).get("watermark")
    return mine or (settings.get("watermarks") or {}).get("unsubscribes")


@app_job
def run_unsubscribe_poll(connection_id: int, period: str) -> str:
    """Run (or resume) the connection's unsubscribe poll for ``period``."""
    run = run_for(KIND, connection_id, job_id_for(connection_id, period), period)
    if run.status == "COMPLETE":
        return "already complete"
    conn = db.session.get(StoreConnection, connection_id)
    reason = refused(conn)
    if reason:
        mark_run_failed(run.id, f"not run: {reason}")
        return "not run"
    with kind_lock(KIND, connection_id):
        mark_running(run.id)
        _Poll(run.id, conn).run()
    return "complete"


class _Poll:
    def __init__(self, run_id: int, conn: StoreConnection) -> None:
        self.run_id, self.connection_id = run_id, conn.id
        self.adapter = adapter_for(conn)
        self.cc = CCClient(conn.merchant_id)
        cp = dict(db.session.get(SyncRun, run_id).checkpoint or {})
        cp.setdefault("from", utcnow().isoformat())  # the next watermark, fixed at attempt 1
        cp.setdefault("since", watermark(conn))
        cp.setdefault("kibo_todo", [])
        cp.setdefault("totals", {"captured": 0, "updated_in_kibo": 0, "not_found": 0, "errors": 0})
        self.cp = cp

    def save(self, commit: bool = True) -> None:
        db.session.execute(
            update(SyncRun).where(SyncRun.id == self.run_id).values(checkpoint=dict(self.cp))
        )
        if commit:
            db.session.commit()

    def run(self) -> None:
        set_progress(self.run_id, self.cp["totals"]["captured"], phase="unsubscribes")
        self._write_kibo()  # a previous attempt's captures first
        params: dict[str, Any] = {"status": "unsubscribed", "limit": PAGE}
        if self.cp["since"]:
            since = datetime.fromisoformat(self.cp["since"]) - OVERLAP
            params["optout_after"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        batch: dict[str, datetime | None] = {}
        for contact in self.cc.paginate("/contacts", params, "contacts"):
            address = (contact.get("email_address") or {}).get("address")
            if address:
                when = (contact.get("email_address") or {}).get("opt_out_date")
                batch[normalize_email(address)] = _parse(when)
            if len(batch) >= PAGE:
                self._capture(batch)
                batch = {}
        if batch:
            self._capture(batch)
        totals = {**self.cp["totals"], "window_from": params.get("optout_after")}
        mark_complete(self.run_id, totals)
        conn = db.session.get(StoreConnection, self.connection_id)
        state = dict((conn.settings or {}).get("kibo_unsubscribes") or {})
        state["watermark"] = self.cp["from"]
        conn.settings = {**(conn.settings or {}), "kibo_unsubscribes": state}
        db.session.commit()
        done = self.cp["totals"]["captured"]
        set_progress(self.run_id, done, done, phase="complete")

    def _capture(self, batch: dict[str, datetime | None]) -> None:
        """Mirror + ledger + the Kibo to-do list in one commit, then the Kibo writes."""
        now = utcnow()
        rows = db.session.execute(
            select(
                Customer.id, Customer.email, Customer.platform_customer_id, Customer.consent_state
            ).where(Customer.connection_id == self.connection_id, Customer.email.in_(list(batch)))
        ).all()
        seen = self._already_captured([r.email for r in rows])
        fresh = [r for r in rows if (r.email, _key(batch[r.email])) not in seen]
        if not fresh:
            return
        flip = [r.id for r in fresh if r.consent_state != "unsubscribed"]
        if flip:
            db.session.execute(
                update(Customer)
                .where(Customer.id.in_(flip))
                .values(consent_state="unsubscribed", consent_updated_at=now)
            )
        db.session.execute(
            insert(ConsentEvent),
            [
                {
                    "connection_id": self.connection_id,
                    "customer_id": r.id,
                    "email": r.email,
                    "action": "unsubscribed",
                    "source": "constantcontact",
                    "actor": "contact",
                    "reason": REASON,
                    "occurred_at": batch[r.email] or now,
                    "recorded_at": now,
                    "sync_run_id": self.run_id,
                }
                for r in fresh
            ],
        )
        self.cp["totals"]["captured"] += len(fresh)
        self.cp["kibo_todo"] += [[r.email, r.platform_customer_id] for r in fresh]
        self.save(commit=False)
        db.session.commit()
        for r in fresh:
            log.info("connection %s: %s unsubscribed in Constant Contact (captured)",
                     self.connection_id, r.email)  # fmt: skip
        self._write_kibo()
        set_progress(self.run_id, self.cp["totals"]["captured"], phase="unsubscribes")

    def _already_captured(self, emails: list[str]) -> set[tuple[str, str]]:
        """(email, opt-out instant) pairs an earlier poll of this connection captured."""
        if not emails:
            return set()
        rows = db.session.execute(
            select(ConsentEvent.email, ConsentEvent.occurred_at)
            .join(SyncRun, SyncRun.id == ConsentEvent.sync_run_id)
            .where(
                and_(
                    ConsentEvent.connection_id == self.connection_id,
                    ConsentEvent.email.in_(emails),
                    ConsentEvent.action == "unsubscribed",
                    ConsentEvent.source == "constantcontact",
                    SyncRun.kind == KIND,
                )
            )
        ).all()
        return {(r.email, _key(r.occurred_at)) for r in rows}

    def _write_kibo(self) -> None:
        """acceptsMarketing=false for each captured contact, GET then PUT; progress saved."""
        totals = self.cp["totals"]
        while self.cp["kibo_todo"]:
            email, account_id = self.cp["kibo_todo"][0]
            if not account_id or not str(account_id).isdigit():
                log.info("connection %s: %s has no Kibo account (guest)", self.connection_id, email)
                totals["not_found"] += 1
            else:
                try:
                    changed = self.adapter.opt_out_if_subscribed(str(account_id))
                except OUTAGES:
                    raise
                except KiboError as exc:
                    if exc.status == 404:
                        log.info("connection %s: Kibo account %s of %s not found",
                                 self.connection_id, account_id, email)  # fmt: skip
                        totals["not_found"] += 1
                    else:
                        quarantine(self.connection_id, self.run_id,
                                   [(None, email, str(exc))], "platform_error")  # fmt: skip
                        totals["errors"] += 1
                else:
                    if changed:
                        totals["updated_in_kibo"] += 1
                        log.info("connection %s: Kibo account %s (%s) acceptsMarketing=false",
                                 self.connection_id, account_id, email)  # fmt: skip
            self.cp["kibo_todo"] = self.cp["kibo_todo"][1:]
            self.save()


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _key(when: datetime | None) -> str:
    """A comparable opt-out instant (second precision: databases round differently)."""
    if when is None:
        return ""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")
