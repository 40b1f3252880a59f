"""The Kibo event flush (every KIBO_EVENTS_INTERVAL_S, 30 min by default): queued customer
events → accounts fetched in batches → mirror → opted-in customers into the chosen CC list.

One SyncRun (kind "events") per connection and period, keyed by its job id
``kibo-flush-<connection>-<period>``; a second run of the period does nothing. Progress is the
events' own status: a batch's events are marked applied only after its export, and the
export's plan is checkpointed first, so a retried attempt finishes it (CC lists are sets).

Per customer the latest event wins (``coalesce_customer_events``: duplicates, per-site
fan-out and older topics are ``ignored``). Consent (DESIGN invariant 1):

- acceptsMarketing true on a contact the mirror does not have as unsubscribed → subscribed
  (``upsert_customers`` records the opt-in in the ledger) and exported;
- acceptsMarketing true on an unsubscribed contact → exported only when the account changed
  after the newest unsubscribe (ledger and mirror): a newer explicit opt-in, recorded in the
  ledger and sent through sign_up_form (the one legitimate re-opt-in, spec B5);
- acceptsMarketing false on a subscribed contact, changed after that consent → a store-side
  unsubscribe in the mirror and the ledger. The update our own unsubscribe write-back
  causes finds the contact already unsubscribed: nothing is recorded or exported (no loop);
- an email change leaves the old address alone; a deleted account is logged, nothing else.

A poison batch is split until the failing event stands alone; it is quarantined and marked
failed, and the flush goes on. Outages (Kibo, CC, database) raise, and RQ retries the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from redis.exceptions import LockError
from rq import Retry
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import OperationalError

from cc_storeplugin.constantcontact import bulk, lists
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.emails import check_email
from cc_storeplugin.constantcontact.errors import (
    CCError,
    CCUnavailable,
    QuotaExceeded,
    ReauthorizationRequired,
    Throttled,
)
from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job, enqueue
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    StoreConnection,
    StoreEvent,
    SyncRun,
    normalize_email,
    utcnow,
)
from cc_storeplugin.platforms.kibo.adapter import Reject, map_customer
from cc_storeplugin.platforms.kibo.errors import KiboUnauthorized, KiboUnavailable
from cc_storeplugin.queueing import queues
from cc_storeplugin.sync import kibo_settings
from cc_storeplugin.sync.adapters import adapter_for
from cc_storeplugin.sync.connections import paused_reason
from cc_storeplugin.sync.kibo_events import (
    CUSTOMER_TOPICS,
    apply_application_events,
    claim_tenant_events,
    coalesce_customer_events,
    mark_applied,
    mark_failed,
)
from cc_storeplugin.sync.mirror import upsert_customers
from cc_storeplugin.sync.runs import (
    create_run,
    mark_complete,
    mark_running,
    quarantine,
    set_progress,
)
from cc_storeplugin.sync.runs import mark_failed as mark_run_failed

log = logging.getLogger(__name__)
KIND = "events"
BATCH = 100
"""Customers per batch: one filtered Kibo call, one plan checkpoint, one mark."""
LOOKUP_ONE_BY_ONE = 50
"""Up to this many unknown emails are looked up in CC one GET each; more → one export."""
CHUNK = 5000
ENDED = {"finished", "failed", "stopped", "canceled"}
LOCK_KEY = "cc_storeplugin:lock:kibo:{}:{}"
LOCK_TTL_S = 3600
OUTAGES: tuple[type[BaseException], ...] = (
    KiboUnavailable,
    KiboUnauthorized,
    CCUnavailable,
    Throttled,
    QuotaExceeded,
    ReauthorizationRequired,
    bulk.ActivityPending,
    OperationalError,
    LockError,
    requests.RequestException,
)
"""Failures of a whole system, not of one record: the attempt stops and RQ retries it."""
OPTIN_REASON = "opted in to marketing on the Kibo store (acceptsMarketing)"
REOPTIN_REASON = "opted in again on the Kibo store after unsubscribing (acceptsMarketing)"
STORE_OPTOUT_REASON = "stopped accepting marketing on the Kibo store (acceptsMarketing)"


# --- scheduling: periods, runs, locks, dispatch (shared with kibo_unsubscribes) ---------


def period_for(now: datetime, interval_s: int) -> str:
    """The interval bucket ``now`` falls in, as its UTC start (``20261101T103000``)."""
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % max(1, interval_s), UTC)
    return start.strftime("%Y%m%dT%H%M%S")


def job_id_for(connection_id: int, period: str) -> str:
    return f"kibo-flush-{connection_id}-{period}"


def run_for(kind: str, connection_id: int, job_id: str, period: str) -> SyncRun:
    """The period's run, found by its job id (a retry or a second tick finds it), else new."""
    run = db.session.scalar(select(SyncRun).where(SyncRun.job_id == job_id))
    if run is None:
        run = create_run(kind, connection_id, period=period)
        run.job_id = job_id
        db.session.commit()
    return run


def run_status(job_id: str) -> str | None:
    return db.session.scalar(select(SyncRun.status).where(SyncRun.job_id == job_id))


def submit_period(
    func: Callable[..., Any], kind: str, connection_id: int, period: str, job_id: str
) -> str | None:
    """Create the period's run and enqueue its job once (unique job id); a job of the period
    that ended without completing its run is replaced. None when the period is complete."""
    run = run_for(kind, connection_id, job_id, period)
    if run.status == "COMPLETE":
        return None

    def send() -> Any:
        return enqueue(
            func,
            connection_id,
            period,
            queue="sync",
            job_id=job_id,
            timeout="1h",
            retry=Retry(max=3, interval=[30, 120, 600]),
            sync_run_id=run.id,
        )

    job = send()
    if job.get_status(refresh=True) in ENDED and run_status(job_id) != "COMPLETE":
        job.delete()
        send()
    return job_id


def due_connections(kind: str, now: datetime) -> list[int]:
    """Active, enabled Kibo connections whose next flush / poll is due at ``now`` (give or
    take a tick's jitter, so a run that started a few seconds late is not skipped a period)."""
    grace = timedelta(seconds=min(60, kibo_settings.interval_s(kind) // 2))
    conns = db.session.scalars(
        select(StoreConnection)
        .where(StoreConnection.platform == "kibo", StoreConnection.status == "active")
        .order_by(StoreConnection.id)
    ).all()
    return [
        c.id
        for c in conns
        if kibo_settings.is_enabled(c) and kibo_settings.next_run_at(c.id, kind, now) <= now + grace
    ]


def dispatch(kind: str, func: Callable[..., Any], job_id: Callable[[int, str], str], now_iso):
    now = datetime.fromisoformat(now_iso) if now_iso else datetime.now(UTC)
    period = period_for(now, kibo_settings.interval_s(kind))
    out = []
    for connection_id in due_connections(kind, now):
        if submit_period(func, kind, connection_id, period, job_id(connection_id, period)):
            out.append(job_id(connection_id, period))
    return out


@contextmanager
def kind_lock(kind: str, connection_id: int) -> Iterator[Any]:
    """One flush (or poll) of a connection at a time; LockError (retried) when busy."""
    lock = queues.connection.lock(LOCK_KEY.format(kind, connection_id), timeout=LOCK_TTL_S)
    if not lock.acquire(blocking=False):
        raise LockError(f"a Kibo {kind} run of connection {connection_id} is already running")
    try:
        yield lock
    finally:
        with suppress(LockError):
            lock.release()


def refused(conn: StoreConnection | None) -> str | None:
    """Why a Kibo job must not run for ``conn`` now, or None."""
    if conn is None or conn.platform != "kibo":
        return "not a Kibo connection"
    if not kibo_settings.is_enabled(conn):
        return "the app is not enabled in Kibo"
    return paused_reason(conn)


@app_job
def dispatch_kibo_flushes(now_iso: str | None = None) -> list[str]:
    """Cron tick: enqueue the flush of every active, enabled Kibo connection that is due."""
    return dispatch(KIND, run_kibo_flush, job_id_for, now_iso)


# --- the flush job ----------------------------------------------------------------------


@app_job
def run_kibo_flush(connection_id: int, period: str) -> str:
    """Run (or resume) the connection's flush for ``period``; returns what happened."""
    job_id = job_id_for(connection_id, period)
    run = run_for(KIND, connection_id, job_id, period)
    if run.status == "COMPLETE":
        return "already complete"
    conn = db.session.get(StoreConnection, connection_id)
    reason = refused(conn)
    if reason:
        mark_run_failed(run.id, f"not run: {reason}")
        return "not run"
    with kind_lock(KIND, connection_id):
        mark_running(run.id)
        flush = _Flush(run.id, conn)
        flush.run()
    return "complete"


class _Flush:
    """One attempt of a flush: its checkpoint, clients, and the batches in order."""

    def __init__(self, run_id: int, conn: StoreConnection) -> None:
        self.run_id, self.connection_id = run_id, conn.id
        self.tenant = str(conn.external_id)
        self.adapter = adapter_for(conn)
        self.cc = CCClient(conn.merchant_id)
        run = db.session.get(SyncRun, run_id)
        self.started_at = run.started_at
        self.cp: dict[str, Any] = dict(run.checkpoint or {})
        self.cp.setdefault("totals", {"customers": 0, "exported": 0, "skipped": 0, "errors": 0})

    def save(self) -> None:
        db.session.execute(
            update(SyncRun).where(SyncRun.id == self.run_id).values(checkpoint=dict(self.cp))
        )
        db.session.commit()

    def add(self, counts: dict[str, int]) -> None:
        for key in ("customers", "exported", "skipped", "errors"):
            self.cp["totals"][key] += int(counts.get(key, 0))

    def run(self) -> None:
        claim_tenant_events(self.connection_id)
        apply_application_events(self.tenant)
        set_progress(self.run_id, self.cp["totals"]["customers"], phase="events")
        if self.cp.get("pending"):
            self._export(self.cp["pending"])
        while True:
            latest = coalesce_customer_events(self.tenant, limit=BATCH)
            if not latest:
                break
            self._guarded(list(latest.values()))
            set_progress(self.run_id, self.cp["totals"]["customers"], phase="events")
        totals = {"events": self._events_handled(), **self.cp["totals"]}
        mark_complete(self.run_id, totals)
        set_progress(self.run_id, totals["customers"], totals["customers"], phase="complete")

    def _events_handled(self) -> int:
        return db.session.scalar(
            select(func.count()).where(
                StoreEvent.platform == "kibo",
                StoreEvent.tenant_id == self.tenant,
                StoreEvent.topic.in_(CUSTOMER_TOPICS),
                StoreEvent.status != "queued",
                StoreEvent.processed_at >= self.started_at,
            )
        )

    def _guarded(self, events: list[StoreEvent]) -> None:
        """Apply a batch; on a record's fault split it until the poison event stands alone."""
        ids = [e.id for e in events]
        try:
            self._batch(events)
        except OUTAGES:
            raise
        except Exception as exc:
            db.session.rollback()
            self.cp["pending"] = None
            events = list(
                db.session.scalars(
                    select(StoreEvent)
                    .where(StoreEvent.id.in_(ids), StoreEvent.status == "queued")
                    .order_by(StoreEvent.id)
                )
            )
            if not events:
                return
            if len(events) > 1:
                half = len(events) // 2
                self._guarded(events[:half])
                self._guarded(events[half:])
                return
            event = events[0]
            log.exception("Kibo event %s (%s) quarantined", event.event_id, event.entity_id)
            quarantine(
                self.connection_id,
                self.run_id,
                [(None, f"customer {event.entity_id}", f"{type(exc).__name__}: {exc}")],
                "internal",
                record_type="event",
            )
            mark_failed([event.id])
            self.add({"errors": 1})
            self.save()

    def _batch(self, events: list[StoreEvent]) -> None:
        done: list[int] = []
        live: dict[int, StoreEvent] = {}
        for event in events:
            if event.topic == "customeraccount.deleted":
                log.info("Kibo account %s deleted: nothing unsubscribed", event.entity_id)
                done.append(event.id)
            elif not str(event.entity_id or "").isdigit():
                self._poison(event, "platform_error", "entityId is not an account id")
            else:
                live[int(event.entity_id)] = event
        accounts = self.adapter.accounts_by_ids(list(live)) if live else []
        records = []
        for account in accounts:
            event = live.pop(int(account.get("id") or 0), None)
            if event is None:
                continue
            try:
                records.append(map_customer(account))
            except (Reject, ValueError, TypeError) as exc:
                self._poison(event, "missing_field", str(exc) or type(exc).__name__)
                continue
            done.append(event.id)
        for account_id, event in live.items():
            log.info("Kibo account %s no longer exists: nothing unsubscribed", account_id)
            done.append(event.id)
        plan = self._consent(records) if records else {}
        self.cp["pending"] = {"event_ids": done, **plan}
        self.save()
        self._export(self.cp["pending"])

    def _poison(self, event: StoreEvent, reason: str, message: str) -> None:
        ref = f"customer {event.entity_id}"
        quarantine(
            self.connection_id, self.run_id, [(None, ref, message)], reason, record_type="event"
        )
        mark_failed([event.id])
        self.add({"errors": 1})

    def _export(self, pending: dict[str, Any]) -> None:
        counts = {"customers": len(pending.get("customer_ids") or []), "skipped": 0}
        counts["skipped"] += int(pending.get("skipped", 0))
        if pending.get("export"):
            got = export_opted_in(
                self.cc,
                self.connection_id,
                self.run_id,
                pending["export"],
                welcome_ids=pending.get("welcome") or (),
                resubscribe_ids=pending.get("resubscribe") or (),
            )
            for key in ("exported", "skipped", "errors"):
                counts[key] = counts.get(key, 0) + got[key]
        mark_applied(pending.get("event_ids") or [])
        self.add(counts)
        self.cp["pending"] = None
        self.save()

    def _consent(self, records: list) -> dict[str, Any]:
        """Mirror the accounts and decide who is exported (see the module docstring)."""
        emails = {normalize_email(r.email) for r in records}
        before = _consent_rows(self.connection_id, emails)
        unsub_at = _last_unsubscribe(self.connection_id, emails)
        upsert_customers(self.connection_id, records, run_id=self.run_id)
        db.session.commit()
        after = _consent_rows(self.connection_id, emails)
        now = utcnow()
        export, welcome, resub, skipped = [], [], [], 0
        ledger: list[dict[str, Any]] = []
        flips: dict[str, list[int]] = {"subscribed": [], "unsubscribed": []}
        for rec in records:
            email = normalize_email(rec.email)
            row, old = after.get(email), before.get(email)
            if row is None:
                continue
            was = old.consent_state if old else "not_set"
            changed = _aware(rec.updated_at)
            since = max(
                (t for t in (_aware(old.consent_updated_at) if old else None, unsub_at.get(email))
                 if t is not None),
                default=None,
            )  # fmt: skip
            newer = changed is not None and (since is None or changed > since)
            if rec.subscribed:
                if row.consent_state == "subscribed":
                    export.append(row.id)
                    if was != "subscribed":
                        welcome.append(row.id)
                elif row.consent_state == "unsubscribed" and newer:
                    flips["subscribed"].append(row.id)
                    ledger.append(_entry(self, row, "subscribed", REOPTIN_REASON, changed, now))
                    export.append(row.id)
                    resub.append(row.id)
                else:
                    skipped += 1
            else:
                skipped += 1  # not opted in: never exported
                if row.consent_state == "subscribed" and was == "subscribed" and newer:
                    flips["unsubscribed"].append(row.id)
                    entry = _entry(self, row, "unsubscribed", STORE_OPTOUT_REASON, changed, now)
                    ledger.append(entry)
        for state, ids in flips.items():
            if ids:
                db.session.execute(
                    update(Customer)
                    .where(Customer.id.in_(ids))
                    .values(consent_state=state, consent_updated_at=now)
                )
        if ledger:
            db.session.execute(insert(ConsentEvent), ledger)
        db.session.commit()
        return {
            "customer_ids": [after[normalize_email(r.email)].id for r in records
                             if normalize_email(r.email) in after],
            "export": export,
            "welcome": welcome,
            "resubscribe": resub,
            "skipped": skipped,
        }  # fmt: skip


def _entry(flush: _Flush, row: Any, action: str, reason: str, when, now) -> dict[str, Any]:
    return {
        "connection_id": flush.connection_id,
        "customer_id": row.id,
        "email": row.email,
        "action": action,
        "source": "store",
        "actor": "contact",
        "reason": reason,
        "occurred_at": when or now,
        "recorded_at": now,
        "sync_run_id": flush.run_id,
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _consent_rows(connection_id: int, emails: Collection[str]) -> dict[str, Any]:
    rows = db.session.execute(
        select(
            Customer.id, Customer.email, Customer.consent_state, Customer.consent_updated_at
        ).where(Customer.connection_id == connection_id, Customer.email.in_(list(emails)))
    ).all()
    return {r.email: r for r in rows}


def _last_unsubscribe(connection_id: int, emails: Collection[str]) -> dict[str, datetime]:
    """Per email, when the ledger last recorded an unsubscribe (any source)."""
    rows = db.session.execute(
        select(ConsentEvent.email, func.max(ConsentEvent.occurred_at))
        .where(
            ConsentEvent.connection_id == connection_id,
            ConsentEvent.email.in_(list(emails)),
            ConsentEvent.action == "unsubscribed",
        )
        .group_by(ConsentEvent.email)
    ).all()
    return {email: _aware(when) for email, when in rows if when is not None}


# --- export to the chosen list ------------------------------------------------------------


def export_opted_in(
    client: CCClient,
    connection_id: int,
    run_id: int,
    customer_ids: Sequence[int] | None = None,
    *,
    welcome_ids: Collection[int] = (),
    resubscribe_ids: Collection[int] = (),
) -> dict[str, int]:
    """Send opted-in customers (all of the connection, or ``customer_ids``) to the list
    chosen on the Settings tab; returns ``{"exported", "skipped", "errors", "signups",
    "imported", "added"}``.

    Only contacts the mirror has as ``subscribed`` are sent (invariant 1). A contact CC
    already has only gets the list membership (its names are never overwritten); a new one
    is imported with its names, or — ``welcome_ids`` with the welcome email on — created
    through sign_up_form so CC's welcome email fires. ``resubscribe_ids`` (a newer explicit
    opt-in after an unsubscribe) go through sign_up_form too, without names for a known
    contact. Invalid emails and contacts CC rejects are quarantined.
    """
    conn = db.session.get(StoreConnection, connection_id)
    settings = kibo_settings.load(conn)
    counts = dict.fromkeys(("exported", "skipped", "errors", "signups", "imported", "added"), 0)
    welcome = set(welcome_ids) if settings.welcome_email else set()
    resub = set(resubscribe_ids)
    for rows in _opted_in(connection_id, customer_ids, counts):
        if not settings.list_id:
            counts["skipped"] += len(rows)
            continue
        _export_chunk(client, connection_id, run_id, settings.list_id, rows, welcome, resub, counts)
    if not settings.list_id:
        log.warning(
            "connection %s: no Constant Contact list chosen; nothing exported", connection_id
        )
    return counts


def _opted_in(
    connection_id: int, customer_ids: Sequence[int] | None, counts: dict[str, int]
) -> Iterator[list[Any]]:
    """Subscribed customers in chunks (by id); the others are counted as skipped."""
    cols = (Customer.id, Customer.email, Customer.first_name, Customer.last_name)
    cols += (Customer.cc_contact_id,)
    base = select(*cols).where(Customer.connection_id == connection_id)
    if customer_ids is not None:
        wanted = list(dict.fromkeys(int(i) for i in customer_ids))
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start : start + CHUNK]
            rows = db.session.execute(
                base.where(Customer.id.in_(part), Customer.consent_state == "subscribed")
            ).all()
            counts["skipped"] += len(part) - len(rows)
            if rows:
                yield rows
        return
    counts["skipped"] += db.session.scalar(
        select(func.count()).where(
            Customer.connection_id == connection_id, Customer.consent_state != "subscribed"
        )
    )
    after = 0
    while True:
        rows = db.session.execute(
            base.where(Customer.consent_state == "subscribed", Customer.id > after)
            .order_by(Customer.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        yield rows


def _export_chunk(client, connection_id, run_id, list_id, rows, welcome, resub, counts) -> None:
    bad, good = [], []
    for row in rows:
        email, reason = check_email(row.email)
        if email is None:
            bad.append((row.id, row.email, reason or "invalid email"))
        else:
            good.append((row, email))
    if bad:
        quarantine(connection_id, run_id, bad, "invalid_email")
        counts["errors"] += len(bad)
    known = {email: row.cc_contact_id for row, email in good if row.cc_contact_id}
    unknown = [email for row, email in good if not row.cc_contact_id]
    found = _lookup_contacts(client, unknown)
    learned = [{"cid": row.id, "ccid": found[e]} for row, e in good if found.get(e)]
    if learned:
        table = Customer.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("cid"))
            .values(cc_contact_id=bindparam("ccid")),
            learned,
        )
        db.session.commit()
    known.update({e: c for e, c in found.items() if c})
    signups, imports, members = [], [], []
    for row, email in good:
        contact_id = known.get(email)
        if row.id in resub or (row.id in welcome and not contact_id):
            signups.append((row, email, contact_id))
        elif contact_id:
            members.append(contact_id)
        else:
            imports.append(bulk.import_row(email, row.first_name, row.last_name))
    for row, email, contact_id in signups:
        _sign_up(client, connection_id, run_id, list_id, row, email, contact_id, counts)
    if members:
        activity_ids = lists.add_members(client, list_id, members)
        results = bulk.wait_for_activities(client, activity_ids)
        _count_activities(connection_id, run_id, results.values(), counts, "added", len(members))
    if imports:
        results = bulk.import_contacts(client, imports, [list_id])
        _count_activities(connection_id, run_id, results, counts, "imported", len(imports))


def _lookup_contacts(client: CCClient, emails: list[str]) -> dict[str, str | None]:
    """``{email: CC contact_id or None}``: one GET each for a few, one export for many."""
    if not emails:
        return {}
    if len(emails) > LOOKUP_ONE_BY_ONE:
        ids = bulk.export_contact_ids(client, emails=emails)
        return {e: ids.get(e) for e in emails}
    out: dict[str, str | None] = {}
    for email in emails:
        page = client.request("GET", "/contacts", params={"email": email, "status": "all"})
        live = [c for c in (page or {}).get("contacts") or [] if not c.get("deleted_at")]
        out[email] = live[0]["contact_id"] if live else None
    return out


def _sign_up(client, connection_id, run_id, list_id, row, email, contact_id, counts) -> None:
    """POST /contacts/sign_up_form (explicit consent); names only for a contact CC lacks."""
    body: dict[str, Any] = {"email_address": email, "list_memberships": [list_id]}
    if not contact_id:
        body.update(
            {k: v for k, v in bulk.import_row(email, row.first_name, row.last_name).items()
             if k != "email"}
        )  # fmt: skip
    try:
        got = client.request("POST", "/contacts/sign_up_form", json=body)
    except CCError as exc:
        if exc.blocks_run or exc.status >= 500 or exc.status in (0, 401, 429):
            raise
        quarantine(connection_id, run_id, [(row.id, email, str(exc))], "cc_rejected")
        counts["errors"] += 1
        return
    log.info("connection %s: %s signed up to list %s (%s)", connection_id, email, list_id,
             (got or {}).get("action"))  # fmt: skip
    if got and got.get("contact_id") and not contact_id:
        db.session.execute(
            update(Customer).where(Customer.id == row.id).values(cc_contact_id=got["contact_id"])
        )
        db.session.commit()
    counts["signups"] += 1
    counts["exported"] += 1


def _count_activities(connection_id, run_id, results, counts, key, sent) -> None:
    errors = cannot = 0
    for result in results:
        errors += result.error_count
        cannot += result.cannot_add_to_list_count
        rejected = [(None, e["email"], e["message"]) for e in result.errors if e.get("email")]
        if rejected:
            quarantine(connection_id, run_id, rejected, "cc_rejected")
    counts[key] += sent - errors - cannot
    counts["exported"] += sent - errors - cannot
    counts["skipped"] += cannot
    counts["errors"] += errors
